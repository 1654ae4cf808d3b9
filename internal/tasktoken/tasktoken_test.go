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
	c := Claims{Namespace: "shop", Run: "order-42", RunUID: "u1", State: "Charge", Path: []int{0, 3}, Attempt: 2, IssuedAt: time.Unix(1, 0).UTC()}
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
