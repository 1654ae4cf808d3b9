package gateway

import (
	"math"
	"net"
	"net/http"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// FailedAuthLimit bounds failed authentications per source, so that guessing tokens or API keys,
// or flooding the API server with TokenReviews of junk tokens, is slow. Zero fields take defaults.
type FailedAuthLimit struct {
	// Burst failures are allowed at once (default 20) ...
	Burst int
	// ... then PerSecond (default 1); beyond that the source's requests get 429 with Retry-After
	// and their credential is not checked at all.
	PerSecond float64
	// Sources is the most sources remembered, least recently failing forgotten first (default
	// 10,000).
	Sources int
}

// failedAuths holds a token bucket per source that failed authentication; a failure takes a token.
type failedAuths struct {
	once    sync.Once
	limit   FailedAuthLimit
	buckets *lru.Cache[string, *rate.Limiter]
}

func (f *failedAuths) init(l FailedAuthLimit) {
	f.once.Do(func() {
		if l.Burst <= 0 {
			l.Burst = 20
		}
		if l.PerSecond <= 0 {
			l.PerSecond = 1
		}
		if l.Sources <= 0 {
			l.Sources = 10000
		}
		f.limit = l
		f.buckets, _ = lru.New[string, *rate.Limiter](l.Sources)
	})
}

// wait is how long the source must wait before its credential is checked again (0: now).
func (f *failedAuths) wait(source string) time.Duration {
	b, found := f.buckets.Get(source)
	if !found {
		return 0
	}
	if missing := 1 - b.Tokens(); missing > 0 {
		return time.Duration(missing / f.limit.PerSecond * float64(time.Second))
	}
	return 0
}

// failed takes a token from the source's bucket.
func (f *failedAuths) failed(source string) {
	b, found := f.buckets.Get(source)
	if !found {
		b = rate.NewLimiter(rate.Limit(f.limit.PerSecond), f.limit.Burst)
		f.buckets.Add(source, b)
	}
	b.Allow()
}

// source is who a request counts against: the client's IP address, or its /64 for IPv6 (one host
// is usually given a whole /64 and could otherwise change address for every guess). The address
// is the connection's own: a header such as X-Forwarded-For is the client's to write.
func source(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.To4() != nil {
		return host
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// throttled answers 429 when the request's source has failed authentication too often.
func (s *Server) throttled(r *http.Request) error {
	s.authFailures.init(s.FailedAuth)
	wait := s.authFailures.wait(source(r))
	if wait <= 0 {
		return nil
	}
	if s.Metrics != nil {
		s.Metrics.AuthThrottled.Inc()
	}
	return &apiError{status: http.StatusTooManyRequests, msg: "too many failed authentications from this address; try again later",
		retryAfter: int(math.Ceil(wait.Seconds()))}
}
