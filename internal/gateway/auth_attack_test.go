package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/gateway"
)

// reviewer stands in for the API server's TokenReview and SubjectAccessReview: tokens starting
// with "good-" are ServiceAccounts allowed everything, anything else is refused.
type reviewer struct {
	client.Client
	mu      sync.Mutex
	reviews map[string]int // TokenReviews by token
}

func (f *reviewer) Create(_ context.Context, obj client.Object, _ ...client.CreateOption) error {
	switch o := obj.(type) {
	case *authenticationv1.TokenReview:
		f.mu.Lock()
		f.reviews[o.Spec.Token]++
		f.mu.Unlock()
		if name, ok := strings.CutPrefix(o.Spec.Token, "good-"); ok {
			o.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{Username: "system:serviceaccount:shop:" + name}}
		}
	case *authorizationv1.SubjectAccessReview:
		o.Status.Allowed = true
	}
	return nil
}

func (f *reviewer) count(token string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reviews[token]
}

func (f *reviewer) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.reviews {
		n += c
	}
	return n
}

var sendToOrders = gateway.Access{Namespace: "shop", Name: "orders", Verb: "create", Group: "millrace.io", Resource: "queues", Subresource: "messages"}

func authorize(t *testing.T, auth gateway.Authorizer, token string) error {
	t.Helper()
	_, err := auth.Authorize(context.Background(), gateway.Credential{Token: token}, sendToOrders)
	return err
}

// Today's cache started over when full: 10,000 junk tokens flushed every caller's identity, and
// each caller's next request cost a TokenReview again.
func TestJunkTokensDoNotFlushCachedIdentities(t *testing.T) {
	api := &reviewer{reviews: map[string]int{}}
	auth := &gateway.KubernetesAuthorizer{Client: api}
	if err := authorize(t, auth, "good-checkout"); err != nil {
		t.Fatal(err)
	}
	for i := range 2 * gateway.DefaultCacheSize {
		if err := authorize(t, auth, "junk-"+strconv.Itoa(i)); !errors.Is(err, gateway.ErrUnauthenticated) {
			t.Fatalf("junk token: %v", err)
		}
	}
	if err := authorize(t, auth, "good-checkout"); err != nil {
		t.Fatal(err)
	}
	if n := api.count("good-checkout"); n != 1 {
		t.Errorf("%d TokenReviews of the caller's token, want 1: the junk flushed its identity", n)
	}
}

func TestTheTokenCacheEvictsTheLeastRecentlyUsedIdentity(t *testing.T) {
	api := &reviewer{reviews: map[string]int{}}
	auth := &gateway.KubernetesAuthorizer{Client: api, CacheSize: 3}
	for _, token := range []string{"good-a", "good-b", "good-c", "good-a", "good-d"} { // d evicts b, used least recently
		if err := authorize(t, auth, token); err != nil {
			t.Fatal(err)
		}
	}
	for _, token := range []string{"good-a", "good-b"} {
		if err := authorize(t, auth, token); err != nil {
			t.Fatal(err)
		}
	}
	if a, b := api.count("good-a"), api.count("good-b"); a != 1 || b != 2 {
		t.Errorf("TokenReviews: a %d (want 1, kept), b %d (want 2, evicted)", a, b)
	}
}

// One address sending junk tokens gets a few checked, then 429 with Retry-After without a
// TokenReview; another address is still checked.
func TestJunkTokensFromOneAddressAreThrottled(t *testing.T) {
	api := &reviewer{reviews: map[string]int{}}
	srv := &gateway.Server{Auth: &gateway.KubernetesAuthorizer{Client: api}, FailedAuth: gateway.FailedAuthLimit{Burst: 5, PerSecond: 0.01},
		Metrics: gateway.NewMetrics(nil)}
	h := srv.Handler()
	send := func(from, token string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/v1/namespaces/shop/queues/orders/messages", strings.NewReader(`{}`))
		req.RemoteAddr = from
		req.Header.Set("Authorization", "Bearer "+token)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	codes := map[int]int{}
	for i := range 1000 {
		w := send("203.0.113.7:40000", fmt.Sprintf("junk-%d", i))
		codes[w.Code]++
		if w.Code == http.StatusTooManyRequests && w.Header().Get("Retry-After") == "" {
			t.Fatal("429 without Retry-After")
		}
	}
	if n := api.total(); n != 5 {
		t.Errorf("%d TokenReviews for 1,000 junk tokens from one address, want 5 (the burst)", n)
	}
	if codes[http.StatusUnauthorized] != 5 || codes[http.StatusTooManyRequests] != 995 {
		t.Errorf("answers %v, want 5 × 401 and 995 × 429", codes)
	}
	if w := send("198.51.100.1:40000", "junk-other"); w.Code != http.StatusUnauthorized {
		t.Errorf("another address: %d, want 401", w.Code)
	}
	// IPv6 sources count by /64: a host cannot change address for every guess.
	for i := range 10 {
		send(fmt.Sprintf("[2001:db8::%x]:1", i+1), "junk-v6")
	}
	if n := api.count("junk-v6"); n != 1 { // refused once, then cached; the /64's failures still count
		t.Errorf("%d TokenReviews of junk-v6", n)
	}
	if w := send("[2001:db8::ff]:1", "junk-v6b"); w.Code != http.StatusTooManyRequests {
		t.Errorf("a tenth address of the same /64: %d, want 429", w.Code)
	}
}

// A tenant with an exposed Queue of its own (default maximum message size, 1 MiB) opened
// connections that each announced a 1 MiB body and sent one byte: the gateway allocated the
// announced size at once (its body buffer was sized from Content-Length), while the server's body
// budget is charged only for bytes received. 150 such connections held ~150 MiB of the gateway's
// heap (its limit is 256 MiB) until the read timeout. The buffer allocated on the caller's word
// alone is bounded now.
func TestAnnouncedBodiesAreNotAllocatedBeforeTheyArrive(t *testing.T) {
	e := setup(t, nil)
	e.queue(t, "bench", millracev1.QueueSpec{HTTP: &millracev1.QueueHTTP{Enabled: true}}) // 1 MiB messages
	addr := strings.TrimPrefix(e.url, "http://")
	// Warm the token's cached identity, so each stalled request goes straight to reading its body.
	if status, answer, _ := e.post(t, call{path: "/v1/namespaces/" + e.ns + "/queues/bench/messages", token: e.allowed, body: `{}`}); status != http.StatusAccepted {
		t.Fatalf("%d %v", status, answer)
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	const n = 150
	before := heap()
	for range n {
		c, err := net.Dial("tcp", addr)
		must(t, err)
		t.Cleanup(func() { _ = c.Close() })
		_, err = fmt.Fprintf(c, "POST /v1/namespaces/%s/queues/bench/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", e.ns, e.allowed, 1<<20)
		must(t, err)
	}
	time.Sleep(2 * time.Second) // every request in its handler, waiting for the rest of its body
	grew := int64(heap()) - int64(before)
	t.Logf("%d connections announcing 1 MiB and sending 1 byte: the heap grew by %d MiB", n, grew>>20)
	if grew > 32<<20 {
		t.Errorf("the gateway holds %d MiB for %d bytes received", grew>>20, n)
	}
}
