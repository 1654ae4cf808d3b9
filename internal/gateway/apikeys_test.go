package gateway_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/millrace-io/millrace/internal/gateway"
	"github.com/millrace-io/millrace/internal/testenv"
)

func TestAPIKeyIdentity(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	key := strings.Repeat("k", gateway.MinAPIKeyLength)
	secret := func(k string, annotations map[string]string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Annotations: annotations}, Data: map[string][]byte{"key": []byte(k)}}
	}
	sa := gateway.APIKeyServiceAccountAnnotation
	for _, tc := range []struct {
		name   string
		secret *corev1.Secret
		user   string
		err    string
	}{
		{"a key", secret(key, map[string]string{sa: "shop/checkout"}), "system:serviceaccount:shop:checkout", ""},
		{"a key not yet expired", secret(key, map[string]string{sa: "shop/checkout", gateway.APIKeyExpiresAnnotation: "2026-11-28T00:00:00Z"}), "system:serviceaccount:shop:checkout", ""},
		{"an expired key", secret(key, map[string]string{sa: "shop/checkout", gateway.APIKeyExpiresAnnotation: "2026-11-27T12:00:00Z"}), "", "expired"},
		{"an unreadable expiry", secret(key, map[string]string{sa: "shop/checkout", gateway.APIKeyExpiresAnnotation: "tomorrow"}), "", "RFC 3339"},
		{"a short key", secret("short", map[string]string{sa: "shop/checkout"}), "", "data.key has 5 characters"},
		{"no service account", secret(key, nil), "", "not namespace/serviceaccount"},
		{"a service account without namespace", secret(key, map[string]string{sa: "checkout"}), "", "not namespace/serviceaccount"},
		{"an invalid namespace", secret(key, map[string]string{sa: "Shop/checkout"}), "", "not namespace/serviceaccount"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := gateway.APIKeyIdentity(tc.secret, now)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one naming %q", err, tc.err)
				}
				return
			}
			if err != nil || u.Username != tc.user || len(u.Groups) != 3 || u.Groups[1] != "system:serviceaccounts:shop" {
				t.Fatalf("%+v %v", u, err)
			}
		})
	}
}

// API keys in Secrets of the keys' namespace act as the ServiceAccount they name, through the
// same RBAC check as tokens; anything else about a key is refused with 401, and a deleted key stops
// working at once. The Secrets are read by a real informer cache, as cmd/gateway does.
func TestAPIKeys(t *testing.T) {
	e := setup(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	keysNS := e.ns + "-keys"
	must(t, k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: keysNS}}))
	c, err := cache.New(restConfig, cache.Options{Scheme: k8s.Scheme(), ByObject: map[client.Object]cache.ByObject{&corev1.Secret{}: {
		Namespaces: map[string]cache.Config{keysNS: {}}, Label: labels.SelectorFromSet(labels.Set{gateway.APIKeyLabel: "true"})}}})
	must(t, err)
	must(t, c.IndexField(ctx, &corev1.Secret{}, gateway.APIKeyIndex, gateway.IndexAPIKey))
	go func() { _ = c.Start(ctx) }()
	c.WaitForCacheSync(ctx)

	counter := &countingClient{Client: k8s}
	srv := httptest.NewServer((&gateway.Server{Reader: k8s, Writer: k8s, SQS: sqsClient, Auth: &gateway.KubernetesAuthorizer{Client: counter,
		Keys: &gateway.APIKeys{Reader: c, Namespace: keysNS, ServiceAccountNamespaces: []string{e.ns}}}}).Handler())
	defer srv.Close()
	e.url = srv.URL

	newKey := func(name, ns, sa string, labelled bool, extra map[string]string) string {
		key := name + "-" + strings.Repeat("0123456789", 4)
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{},
			Annotations: map[string]string{gateway.APIKeyServiceAccountAnnotation: sa}}, StringData: map[string]string{"key": key}}
		if labelled {
			s.Labels[gateway.APIKeyLabel] = "true"
		}
		for k, v := range extra {
			s.Annotations[k] = v
		}
		must(t, k8s.Create(ctx, s))
		return key
	}
	sender, stranger := e.ns+"/sender", e.ns+"/stranger"
	good := newKey("good", keysNS, sender, true, nil)
	denied := newKey("denied", keysNS, stranger, true, nil)
	expired := newKey("expired", keysNS, sender, true, map[string]string{gateway.APIKeyExpiresAnnotation: "2020-01-01T00:00:00Z"})
	unlabelled := newKey("unlabelled", keysNS, sender, false, nil)
	elsewhere := newKey("elsewhere", e.ns, sender, true, nil)
	// Another tenant's ServiceAccount, allowed to send to its own queue: a key naming it would act
	// for that tenant, but its namespace is not one keys may act for.
	victim := setup(t, nil)
	foreign := newKey("foreign", keysNS, victim.ns+"/sender", true, nil)
	testenv.Eventually(t, 10*time.Second, func() error { // the cache has seen the keys
		var list corev1.SecretList
		must(t, c.List(ctx, &list, client.InNamespace(keysNS)))
		if len(list.Items) != 4 {
			return errString("keys not cached yet")
		}
		return nil
	})

	orders := "/v1/namespaces/" + e.ns + "/queues/orders/messages"
	withKey := func(k string) map[string]string { return map[string]string{gateway.HeaderAPIKey: k} }
	for _, tc := range []struct {
		name string
		call call
		code int
	}{
		{"a key in X-Api-Key", call{path: orders, body: `{"by":"header"}`, headers: withKey(good)}, 202},
		{"a key as bearer token", call{path: orders, body: `{"by":"bearer"}`, token: good}, 202},
		{"a key whose service account may not send", call{path: orders, body: `{}`, headers: withKey(denied)}, 403},
		{"an expired key", call{path: orders, body: `{}`, headers: withKey(expired)}, 401},
		{"an unknown key", call{path: orders, body: `{}`, headers: withKey(strings.Repeat("x", 40))}, 401},
		{"a Secret without the label", call{path: orders, body: `{}`, headers: withKey(unlabelled)}, 401},
		{"a Secret in another namespace", call{path: orders, body: `{}`, headers: withKey(elsewhere)}, 401},
		{"a key acting as a ServiceAccount of an unlisted namespace", call{path: "/v1/namespaces/" + victim.ns + "/queues/orders/messages", body: `{}`, headers: withKey(foreign)}, 401},
		{"a token still works", call{path: orders, body: `{"by":"token"}`, token: e.allowed}, 202},
	} {
		if code, answer, _ := e.post(t, tc.call); code != tc.code {
			t.Errorf("%s: %d %v, want %d", tc.name, code, answer, tc.code)
		}
	}
	// One TokenReview: for the ServiceAccount token; keys and X-Api-Key never ask for one.
	// (Two SubjectAccessReviews: sender and stranger, one per user.)
	if counter.creates != 1+2+1 {
		t.Errorf("%d reviews, want 1 TokenReview and 3 SubjectAccessReviews", counter.creates)
	}
	if msgs := receive(t, e.queues["orders"]); len(msgs) != 3 {
		t.Errorf("%d messages in SQS, want 3", len(msgs))
	}

	// Deleted: refused as soon as the cache has seen it go, although the ServiceAccount's
	// permission is still cached.
	must(t, k8s.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: keysNS, Name: "good"}}))
	testenv.Eventually(t, 10*time.Second, func() error {
		if err := c.Get(ctx, client.ObjectKey{Namespace: keysNS, Name: "good"}, &corev1.Secret{}); err == nil {
			return errString("the cache still has the key")
		}
		return nil
	})
	if code, _, _ := e.post(t, call{path: orders, body: `{}`, headers: withKey(good)}); code != http.StatusUnauthorized {
		t.Errorf("a deleted key: %d, want 401", code)
	}
	// Two Secrets holding one key: refused (which ServiceAccount would it be?), as is a key
	// stored with a trailing newline (kubectl create secret --from-file) sent without it.
	twin := newKey("twin-a", keysNS, sender, true, nil)
	must(t, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: keysNS, Name: "twin-b", Labels: map[string]string{gateway.APIKeyLabel: "true"},
		Annotations: map[string]string{gateway.APIKeyServiceAccountAnnotation: stranger}}, StringData: map[string]string{"key": twin}}))
	newline := strings.Repeat("n", 40)
	must(t, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: keysNS, Name: "newline", Labels: map[string]string{gateway.APIKeyLabel: "true"},
		Annotations: map[string]string{gateway.APIKeyServiceAccountAnnotation: sender}}, StringData: map[string]string{"key": newline + "\n"}}))
	testenv.Eventually(t, 10*time.Second, func() error {
		var list corev1.SecretList
		must(t, c.List(ctx, &list, client.InNamespace(keysNS)))
		if len(list.Items) != 6 {
			return errString("keys not cached yet")
		}
		return nil
	})
	if code, _, _ := e.post(t, call{path: orders, body: `{}`, headers: withKey(twin)}); code != http.StatusUnauthorized {
		t.Errorf("a key held by two Secrets: %d, want 401", code)
	}
	if code, answer, _ := e.post(t, call{path: orders, body: `{"by":"newline"}`, headers: withKey(newline)}); code != http.StatusAccepted {
		t.Errorf("a key stored with a newline: %d %v, want 202", code, answer)
	}
}

type errString string

func (e errString) Error() string { return string(e) }
