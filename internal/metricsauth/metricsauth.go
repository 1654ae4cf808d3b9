// Package metricsauth builds the options of a controller-runtime metrics server that only serves
// callers the API server vouches for: HTTPS, each request's bearer token checked with a
// TokenReview and its GET on the non-resource URL /metrics with a SubjectAccessReview. Plain HTTP
// without those checks is allowed only on a loopback address, an explicit opt-in.
package metricsauth

import (
	"crypto/tls"
	"fmt"
	"net"

	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// Flags are a process's settings for its Prometheus endpoint.
type Flags struct {
	// Addr is where metrics are served ("0" disables them).
	Addr string
	// Secure serves HTTPS behind the API server's authentication and authorization. Off is
	// allowed only on a loopback address: metrics name namespaces, queues and workflows.
	Secure bool
	// CertDir holds tls.crt and tls.key (e.g. a cert-manager Secret, reloaded when it changes);
	// empty: a self-signed certificate made at start.
	CertDir string
}

// Options returns the metrics server's options for f. The process's rest.Config needs the
// right to create TokenReviews and SubjectAccessReviews; a scraper needs GET on /metrics (the
// chart's metrics-reader ClusterRole).
func Options(f Flags) (metricsserver.Options, error) {
	o := metricsserver.Options{BindAddress: f.Addr}
	if f.Addr == "0" {
		return o, nil
	}
	if !f.Secure {
		if !Loopback(f.Addr) {
			return o, fmt.Errorf("--metrics-secure=false serves metrics to anyone who can connect: bind them to a loopback address (e.g. --metrics-bind-address=127.0.0.1:8080), not %q", f.Addr)
		}
		return o, nil
	}
	o.SecureServing = true
	o.FilterProvider = filters.WithAuthenticationAndAuthorization
	// HTTP/1.1 only: HTTP/2's stream resets let one client keep the server busy (CVE-2023-44487),
	// and a scrape gains nothing from it.
	o.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }}
	if f.CertDir != "" {
		o.CertDir, o.CertName, o.KeyName = f.CertDir, "tls.crt", "tls.key"
	}
	return o, nil
}

// Loopback reports whether a listen address accepts connections from this host only.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
