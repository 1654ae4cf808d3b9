package tasktoken

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var key = []byte("0123456789abcdef0123456789abcdef")

func TestTokens(t *testing.T) {
	s, err := NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	c := Claims{Namespace: "shop", Run: "order-42", RunUID: "u1", State: "Charge", Path: []int{0, 3}, Attempt: 2, IssuedAt: time.Now().UTC().Truncate(time.Second)}
	tok, err := s.Issue(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Verify(tok)
	if err != nil || !got.SameTask(c) || !got.IssuedAt.Equal(c.IssuedAt) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	other, _ := NewSigner([]byte(strings.Repeat("k", 32)))
	forgedByOtherKey, _ := other.Issue(c)
	p, sig, _ := strings.Cut(tok, ".")
	tampered := enc.EncodeToString([]byte(`{"ns":"shop","run":"order-42","uid":"u1","state":"Refund","attempt":2}`)) + "." + sig
	cases := []struct {
		name  string
		token string
		want  error
	}{
		{"a token signed with another key is forged", forgedByOtherKey, ErrForged},
		{"a token whose claims were changed is forged", tampered, ErrForged},
		{"a token without a signature is malformed", p, ErrMalformed},
		{"garbage is malformed", "not a token", ErrMalformed},
		{"a signature that is not base64 is malformed", p + ".!!", ErrMalformed},
		{"a token without an issue time (valid forever before) has expired", signed(s, `{"ns":"shop","run":"order-42","uid":"u1","state":"Charge","attempt":2}`), ErrExpired},
		{"a token older than the maximum age has expired", issued(s, c, time.Now().Add(-DefaultMaxAge-2*ClockSkew)), ErrExpired},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.Verify(tc.token); !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := NewSigner([]byte("short")); err == nil {
		t.Fatal("a short key was accepted")
	}
	stale := c
	stale.Attempt = 1
	if c.SameTask(stale) || c.SameTask(Claims{Namespace: "shop", Run: "order-42", RunUID: "u1", State: "Charge", Path: []int{0, 4}, Attempt: 2}) {
		t.Fatal("SameTask does not tell attempts or paths apart")
	}
}

// signed signs a raw payload with s's key, as a token issued by an older version would be.
func signed(s *Signer, payload string) string {
	p := enc.EncodeToString([]byte(payload))
	return p + "." + enc.EncodeToString(s.mac(p))
}

func issued(s *Signer, c Claims, at time.Time) string {
	c.IssuedAt = at
	tok, _ := s.Issue(c)
	return tok
}

func TestIssueSetsTheIssueTime(t *testing.T) {
	s, _ := NewSigner(key)
	tok, _ := s.Issue(Claims{Namespace: "shop", Run: "r", State: "A", Attempt: 1})
	if c, err := s.Verify(tok); err != nil || c.IssuedAt.IsZero() {
		t.Fatalf("%+v %v", c, err)
	}
}

func TestATokenExpiresWithItsTasksTimeout(t *testing.T) {
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	c := Claims{IssuedAt: at}
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		now     time.Time
		expired bool
	}{
		{"within the timeout", 30 * time.Second, at.Add(10 * time.Second), false},
		{"past the timeout but within the clock skew", 30 * time.Second, at.Add(30*time.Second + ClockSkew), false},
		{"past the timeout and the clock skew", 30 * time.Second, at.Add(31*time.Second + ClockSkew), true},
		{"without a timeout of its own", 0, at.Add(100 * 24 * time.Hour), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := c.Expired(tc.timeout, tc.now); got != tc.expired {
				t.Errorf("Expired = %v, want %v", got, tc.expired)
			}
		})
	}
}
