// Package tasktoken issues and verifies workflow task tokens: HMAC-SHA256-signed capabilities scoped
// to one run (namespace, name and UID), one state (with its Parallel/Map path) and one attempt. A
// token cannot be forged without the key, and a token of an earlier attempt or state is recognisably
// stale, so the callback API can refuse it. A token also expires: it carries the time it was issued,
// and is refused DefaultMaxAge after that, or earlier when its state's TimeoutSeconds has passed
// (Claims.Expired, checked by the run), so a leaked token is not valid forever.
package tasktoken

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Claims are what a token grants: reporting the result of one attempt of one state of one run.
type Claims struct {
	Namespace string `json:"ns"`
	Run       string `json:"run"`
	RunUID    string `json:"uid"`
	State     string `json:"state"`
	Path      []int  `json:"path,omitempty"`
	Attempt   int    `json:"attempt"`
	// Visit tells apart the visits of a state the run enters more than once (a loop, a retried
	// Parallel or Map): asl.Active.Visit.
	Visit string `json:"visit,omitempty"`
	// IssuedAt is set by Issue (to the second) unless the caller sets it; Verify refuses tokens
	// without it.
	IssuedAt time.Time `json:"iat"`
}

// DefaultMaxAge bounds every token, also one of a state without TimeoutSeconds: a year, Step
// Functions' longest run and so the longest a task can wait for its token.
const DefaultMaxAge = 365 * 24 * time.Hour

// ClockSkew is allowed between the clock of the replica that issued a token and the one that
// checks it, on top of every bound.
const ClockSkew = time.Minute

// Errors of Verify.
var (
	ErrMalformed = errors.New("malformed task token")
	ErrForged    = errors.New("task token signature does not verify")
	ErrExpired   = errors.New("task token has expired")
)

// Signer issues and verifies tokens with one key.
type Signer struct{ key []byte }

// NewSigner returns a signer; the key must have at least 32 bytes.
func NewSigner(key []byte) (*Signer, error) {
	if len(key) < 32 {
		return nil, fmt.Errorf("task token key has %d bytes; at least 32 are needed", len(key))
	}
	return &Signer{key: key}, nil
}

var enc = base64.RawURLEncoding

// Issue returns the token for the claims, issued now unless c.IssuedAt says otherwise.
func (s *Signer) Issue(c Claims) (string, error) {
	if c.IssuedAt.IsZero() {
		c.IssuedAt = time.Now().UTC().Truncate(time.Second)
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	p := enc.EncodeToString(payload)
	return p + "." + enc.EncodeToString(s.mac(p)), nil
}

// Verify checks the signature and the age and returns the claims: ErrExpired for a token without
// an issue time (issued before tokens had one) or older than DefaultMaxAge.
func (s *Signer) Verify(token string) (Claims, error) {
	p, sig, ok := strings.Cut(strings.TrimSpace(token), ".")
	if !ok || p == "" || sig == "" {
		return Claims{}, ErrMalformed
	}
	got, err := enc.DecodeString(sig)
	if err != nil {
		return Claims{}, ErrMalformed
	}
	if !hmac.Equal(got, s.mac(p)) {
		return Claims{}, ErrForged
	}
	payload, err := enc.DecodeString(p)
	if err != nil {
		return Claims{}, ErrMalformed
	}
	var c Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return Claims{}, ErrMalformed
	}
	if c.IssuedAt.IsZero() {
		return Claims{}, fmt.Errorf("%w: it has no issue time", ErrExpired)
	}
	if c.Expired(DefaultMaxAge, time.Now()) {
		return Claims{}, fmt.Errorf("%w: issued at %s, more than %s ago", ErrExpired, c.IssuedAt.Format(time.RFC3339), DefaultMaxAge)
	}
	return c, nil
}

// Expired reports whether a token issued for a task that may run for timeout (0: no bound of its
// own) is past that bound at now. A token issued when its task started is never needed after
// the task has timed out.
func (c Claims) Expired(timeout time.Duration, now time.Time) bool {
	return timeout > 0 && now.After(c.IssuedAt.Add(timeout+ClockSkew))
}

func (s *Signer) mac(payload string) []byte {
	h := hmac.New(sha256.New, s.key)
	h.Write([]byte("millrace-task-token-v1."))
	h.Write([]byte(payload))
	return h.Sum(nil)
}

// Sum is the key's HMAC-SHA256 of parts under purpose (base64url): a proof, other than a task
// token, that the manager wrote something. Each part is length-prefixed, and the purpose keeps a
// proof of one kind from passing for another (or for a task token).
func (s *Signer) Sum(purpose string, parts ...string) string {
	h := hmac.New(sha256.New, s.key)
	h.Write([]byte("millrace-" + purpose + "-v1."))
	for _, p := range parts {
		h.Write([]byte(strconv.Itoa(len(p)) + ":" + p))
	}
	return enc.EncodeToString(h.Sum(nil))
}

// Check reports whether sig is Sum(purpose, parts...).
func (s *Signer) Check(sig, purpose string, parts ...string) bool {
	got, err := enc.DecodeString(sig)
	if err != nil || sig == "" {
		return false
	}
	want, _ := enc.DecodeString(s.Sum(purpose, parts...))
	return hmac.Equal(got, want)
}

// SameTask reports whether two claims name the same attempt of the same state of the same run.
func (c Claims) SameTask(o Claims) bool {
	if c.Namespace != o.Namespace || c.Run != o.Run || c.RunUID != o.RunUID || c.State != o.State || c.Attempt != o.Attempt || len(c.Path) != len(o.Path) {
		return false
	}
	for i := range c.Path {
		if c.Path[i] != o.Path[i] {
			return false
		}
	}
	return true
}
