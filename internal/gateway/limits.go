package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"net/http"
	"sync"

	"golang.org/x/time/rate"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
)

// limiters holds a token bucket per route target (queue or workflow), rebuilt when its limit changes.
type limiters struct {
	mu sync.Mutex
	m  map[string]*limiter
}

type limiter struct {
	spec millracev1.RateLimit
	*rate.Limiter
}

// limit applies a target's rate limit: 429 with Retry-After when the bucket is empty.
func (s *Server) limit(r *http.Request, kind, ns, name string, spec *millracev1.RateLimit) error {
	if spec == nil {
		return nil
	}
	key := kind + "/" + ns + "/" + name
	s.limits.mu.Lock()
	if s.limits.m == nil {
		s.limits.m = map[string]*limiter{}
	}
	l := s.limits.m[key]
	if l == nil || l.spec != *spec {
		burst := int(spec.Burst)
		if burst == 0 {
			burst = int(spec.RequestsPerSecond)
		}
		l = &limiter{spec: *spec, Limiter: rate.NewLimiter(rate.Limit(spec.RequestsPerSecond), burst)}
		s.limits.m[key] = l
	}
	s.limits.mu.Unlock()
	res := l.Reserve()
	if delay := res.Delay(); delay > 0 {
		res.Cancel()
		return &apiError{status: http.StatusTooManyRequests, msg: "rate limit of " + kind + " " + ns + "/" + name + " exceeded",
			retryAfter: int(math.Ceil(delay.Seconds()))}
	}
	return nil
}

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:16]
}
