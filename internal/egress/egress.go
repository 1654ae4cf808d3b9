// Package egress is the one HTTP client through which Millrace calls addresses a tenant chose
// (millrace:http workflow tasks). The destination is checked when dialling, after name
// resolution, so a redirect or a DNS answer that changes between check and use cannot reach
// anything the namespace was not granted: loopback, link-local (the cloud metadata service),
// private and the cluster's own ranges are refused unless a cidr rule names them. No proxy from
// the environment is used, connections are never pooled across calls (a connection opened under
// one namespace's grants is never reused under another's), and every call is bounded in time,
// answer size and concurrency.
package egress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/millrace-io/millrace/internal/tenancy"
)

// Options bound the client.
type Options struct {
	// ClusterRanges are the cluster's pod and service ranges, refused like private ones.
	ClusterRanges []netip.Prefix
	// ConnectTimeout bounds each dial and TLS handshake (default 5s).
	ConnectTimeout time.Duration
	// MaxTimeout bounds a whole call, whatever the task asks (default 5m).
	MaxTimeout time.Duration
	// MaxBody is the largest answer body read (default 256 KiB); a larger one fails the call.
	MaxBody int64
	// MaxConcurrent bounds the calls in flight (default 32); more wait for a slot within their
	// timeout.
	MaxConcurrent int
	// MaxRedirects is how many redirects a call follows (default 5), each checked like the first
	// destination.
	MaxRedirects int
	// Resolver resolves host names (default net.DefaultResolver); tests inject DNS answers.
	Resolver interface {
		LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
	}
}

// Client performs calls on behalf of tenants.
type Client struct {
	o     Options
	slots chan struct{}
}

// New returns a client with o's bounds.
func New(o Options) *Client {
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 5 * time.Second
	}
	if o.MaxTimeout <= 0 {
		o.MaxTimeout = 5 * time.Minute
	}
	if o.MaxBody <= 0 {
		o.MaxBody = 256 << 10
	}
	if o.MaxConcurrent <= 0 {
		o.MaxConcurrent = 32
	}
	if o.MaxRedirects <= 0 {
		o.MaxRedirects = 5
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	return &Client{o: o, slots: make(chan struct{}, o.MaxConcurrent)}
}

// ForbiddenError is a destination the namespace may not reach; nothing was sent to it.
type ForbiddenError struct {
	Destination string
	Reason      string
}

func (e *ForbiddenError) Error() string {
	return fmt.Sprintf("destination %s is not allowed: %s", e.Destination, e.Reason)
}

// ErrBodyTooLarge is an answer body over Options.MaxBody.
var ErrBodyTooLarge = errors.New("the answer body is too large")

// Response is a finished call: its body was read whole (within MaxBody).
type Response struct {
	StatusCode int
	Header     http.Header
	Body       []byte
}

// Methods a call may use.
var Methods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions}

// Do performs req for a namespace with grants g, within timeout (capped at MaxTimeout).
func (c *Client) Do(ctx context.Context, g tenancy.Grants, req *http.Request, timeout time.Duration) (*Response, error) {
	if timeout <= 0 || timeout > c.o.MaxTimeout {
		timeout = c.o.MaxTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	select {
	case c.slots <- struct{}{}:
		defer func() { <-c.slots }()
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for one of %d outbound call slots: %w", c.o.MaxConcurrent, ctx.Err())
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return nil, &ForbiddenError{Destination: req.URL.Redacted(), Reason: "only http and https URLs are allowed"}
	}
	transport := &http.Transport{
		Proxy:                  nil,
		DialContext:            c.dialer(g),
		DisableKeepAlives:      true,
		TLSHandshakeTimeout:    c.o.ConnectTimeout,
		MaxResponseHeaderBytes: 64 << 10,
		ForceAttemptHTTP2:      true,
	}
	defer transport.CloseIdleConnections()
	hc := &http.Client{Transport: transport, CheckRedirect: func(_ *http.Request, via []*http.Request) error {
		if len(via) > c.o.MaxRedirects {
			return fmt.Errorf("stopped after %d redirects", c.o.MaxRedirects)
		}
		return nil
	}}
	resp, err := hc.Do(req.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.o.MaxBody+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > c.o.MaxBody {
		return nil, fmt.Errorf("%w: over %d bytes", ErrBodyTooLarge, c.o.MaxBody)
	}
	return &Response{StatusCode: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

// dialer checks every address it would connect to against g, after resolution, and connects to
// the address it checked (never resolving twice).
func (c *Client) dialer(g tenancy.Grants) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: c.o.ConnectTimeout}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, portText, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		port, err := strconv.Atoi(portText)
		if err != nil {
			return nil, err
		}
		target, err := c.allowedAddress(ctx, g, host, port)
		if err != nil {
			return nil, err
		}
		return d.DialContext(ctx, network, netip.AddrPortFrom(target, uint16(port)).String())
	}
}

func (c *Client) allowedAddress(ctx context.Context, g tenancy.Grants, host string, port int) (netip.Addr, error) {
	dest := net.JoinHostPort(host, strconv.Itoa(port))
	if ip, err := netip.ParseAddr(host); err == nil {
		if g.AddressAllowed(ip, port) {
			return ip.Unmap(), nil
		}
		return netip.Addr{}, &ForbiddenError{Destination: dest, Reason: fmt.Sprintf("no cidr rule of namespace %s admits it", g.Namespace)}
	}
	byName := g.HostAllowed(host, port)
	if !byName && !g.HasRanges() {
		// Not even resolved: a name no rule admits must not make the manager's resolver ask
		// anything (a DNS query can carry data out).
		return netip.Addr{}, &ForbiddenError{Destination: dest, Reason: fmt.Sprintf("no rule of namespace %s admits this host and port", g.Namespace)}
	}
	addrs, err := c.o.Resolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return netip.Addr{}, err
	}
	var refused []string
	for _, a := range addrs {
		a = a.Unmap()
		if g.AddressAllowed(a, port) {
			return a, nil
		}
		if !byName {
			continue
		}
		if why := c.Blocked(a); why != "" {
			refused = append(refused, a.String()+" is "+why)
			continue
		}
		return a, nil
	}
	if !byName {
		return netip.Addr{}, &ForbiddenError{Destination: dest, Reason: fmt.Sprintf("no rule of namespace %s admits this host and port", g.Namespace)}
	}
	return netip.Addr{}, &ForbiddenError{Destination: dest, Reason: "it resolves only to addresses a host rule never admits (" + strings.Join(refused, "; ") + ")"}
}

// specialRanges are refused for host rules: addresses that are not the public internet, or that
// embed an IPv4 address a tenant could aim at the metadata service through.
var specialRanges = []struct {
	prefix netip.Prefix
	why    string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "in this network (0.0.0.0/8)"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared address space (100.64.0.0/10)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments (192.0.0.0/24)"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking (198.18.0.0/15)"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved (240.0.0.0/4)"},
	{netip.MustParsePrefix("64:ff9b::/96"), "NAT64 (64:ff9b::/96)"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local NAT64 (64:ff9b:1::/48)"},
	{netip.MustParsePrefix("2002::/16"), "6to4 (2002::/16)"},
	{netip.MustParsePrefix("2001::/32"), "Teredo (2001::/32)"},
	{netip.MustParsePrefix("fd00:ec2::/32"), "the cloud metadata range (fd00:ec2::/32)"},
}

// Blocked says why a host rule may not reach a, or "" when it is a public unicast address.
func (c *Client) Blocked(a netip.Addr) string {
	a = a.Unmap()
	switch {
	case a.IsUnspecified():
		return "unspecified"
	case a.IsLoopback():
		return "loopback"
	case a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast():
		return "link-local (the cloud metadata service lives there)"
	case a.IsMulticast() || a.IsInterfaceLocalMulticast():
		return "multicast"
	case a.IsPrivate():
		return "private"
	case !a.IsGlobalUnicast():
		return "not global unicast"
	}
	for _, r := range specialRanges {
		if r.prefix.Contains(a) {
			return r.why
		}
	}
	for _, r := range c.o.ClusterRanges {
		if r.Contains(a) {
			return "in the cluster's range " + r.String()
		}
	}
	return ""
}
