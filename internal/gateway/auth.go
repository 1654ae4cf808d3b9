package gateway

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
	"unsafe"

	lru "github.com/hashicorp/golang-lru/v2"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Errors of Authorize.
var (
	ErrUnauthenticated = errors.New("no valid bearer token")
	ErrForbidden       = errors.New("not allowed")
)

// Access is what a request asks to do, in RBAC terms: verb on group/resource/subresource.
type Access struct {
	Namespace, Name                    string
	Verb, Group, Resource, Subresource string
}

// Credential is what a request presents: a bearer token (a Kubernetes token or an API key) or an
// API key in X-Api-Key.
type Credential struct {
	Token string
	// APIKey is set when Token came from X-Api-Key: it is only looked up among the keys.
	APIKey bool
}

// Authorizer decides whether a credential may do something.
type Authorizer interface {
	Authorize(ctx context.Context, c Credential, a Access) (user string, err error)
}

// KubernetesAuthorizer checks tokens with the API server: a TokenReview says who the caller is
// (ServiceAccount tokens, or any token the cluster's authenticators accept), a SubjectAccessReview
// whether RBAC lets them. Access is granted with ordinary Roles, e.g. verb create on resource
// queues/messages of group millrace.io.
//
// Answers are cached for CacheTTL (by a hash of the token, and by user and access), as the API
// server caches webhook answers: a request then costs no API call, and a revoked RoleBinding or
// token takes effect within CacheTTL. Each cache holds at most CacheSize answers and evicts the
// least recently used one; tokens the API server refused are kept apart from the identities it
// confirmed, so a flood of junk tokens evicts only other junk and never a caller who is using
// the gateway.
type KubernetesAuthorizer struct {
	Client client.Client
	// Audiences the tokens must be issued for (empty: the API server's).
	Audiences []string
	// CacheTTL is how long an answer is reused (default 10s; negative: never).
	CacheTTL time.Duration
	// CacheSize is the most answers each cache holds (default 10,000).
	CacheSize int
	// Keys, when set, are API keys accepted besides tokens. They are looked up on every request
	// (in an informer cache), so a deleted key stops working at once.
	Keys *APIKeys
	// Metrics, when set, counts authentications by method and result, and cache evictions.
	Metrics *Metrics

	once        sync.Once
	identities  *lru.Cache[[32]byte, cached[authenticationv1.UserInfo]] // tokens the API server accepted
	refusedToks *lru.Cache[[32]byte, cached[struct{}]]                  // tokens it refused
	access      *lru.Cache[accessKey, cached[bool]]
}

// accessKey is what a permission answer depends on: who asks, for what.
type accessKey struct {
	user, uid, groups string
	access            Access
}

type cached[T any] struct {
	value   T
	expires time.Time
}

// DefaultCacheSize bounds each answer cache unless CacheSize says otherwise.
const DefaultCacheSize = 10000

func (k *KubernetesAuthorizer) caches() {
	k.once.Do(func() {
		size := k.CacheSize
		if size <= 0 {
			size = DefaultCacheSize
		}
		k.identities = newCache[[32]byte, authenticationv1.UserInfo](size, k.Metrics, "identity")
		k.refusedToks = newCache[[32]byte, struct{}](size, k.Metrics, "refused")
		k.access = newCache[accessKey, bool](size, k.Metrics, "access")
	})
}

func newCache[K comparable, T any](size int, m *Metrics, name string) *lru.Cache[K, cached[T]] {
	c, _ := lru.NewWithEvict(size, func(K, cached[T]) { m.countEviction(name) })
	return c
}

// lookup returns an unexpired answer.
func lookup[K comparable, T any](c *lru.Cache[K, cached[T]], key K) (T, bool) {
	e, found := c.Get(key)
	if !found || !time.Now().Before(e.expires) {
		var zero T
		return zero, false
	}
	return e.value, true
}

func store[K comparable, T any](k *KubernetesAuthorizer, c *lru.Cache[K, cached[T]], key K, value T) {
	ttl := k.CacheTTL
	if ttl == 0 {
		ttl = 10 * time.Second
	}
	if ttl < 0 {
		return
	}
	c.Add(key, cached[T]{value: value, expires: time.Now().Add(ttl)})
}

// Authorize implements Authorizer.
func (k *KubernetesAuthorizer) Authorize(ctx context.Context, c Credential, a Access) (string, error) {
	if c.Token == "" {
		return "", ErrUnauthenticated
	}
	k.caches()
	u, method, err := k.identify(ctx, c)
	k.Metrics.countAuth(method, err)
	if err != nil {
		return "", err
	}
	key := accessKey{user: u.Username, uid: u.UID, groups: strings.Join(u.Groups, "\x00"), access: a}
	allowed, hit := lookup(k.access, key)
	if !hit {
		if allowed, err = k.review(ctx, u, a); err != nil {
			return u.Username, err
		}
		store(k, k.access, key, allowed)
	}
	if !allowed {
		return u.Username, ErrForbidden
	}
	return u.Username, nil
}

// identify returns who a credential is: an API key's ServiceAccount, else what a TokenReview says.
func (k *KubernetesAuthorizer) identify(ctx context.Context, c Credential) (authenticationv1.UserInfo, string, error) {
	if k.Keys != nil {
		u, found, err := k.Keys.find(ctx, c.Token)
		switch {
		case found && err != nil:
			return u, "apikey", fmt.Errorf("%w: %w", ErrUnauthenticated, err)
		case found:
			return u, "apikey", nil
		case err != nil:
			return u, "apikey", err
		}
	}
	if c.APIKey {
		return authenticationv1.UserInfo{}, "apikey", ErrUnauthenticated
	}
	u, err := k.authenticate(ctx, c.Token)
	return u, "token", err
}

// authenticate asks the API server who a token is (TokenReview), or the caches.
func (k *KubernetesAuthorizer) authenticate(ctx context.Context, token string) (authenticationv1.UserInfo, error) {
	hash := sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token))) // read only: no copy of the token
	if u, hit := lookup(k.identities, hash); hit {
		return u, nil
	}
	if _, hit := lookup(k.refusedToks, hash); hit {
		return authenticationv1.UserInfo{}, ErrUnauthenticated
	}
	tr := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: k.Audiences}}
	if err := k.Client.Create(ctx, tr); err != nil {
		return authenticationv1.UserInfo{}, err
	}
	if !tr.Status.Authenticated {
		store(k, k.refusedToks, hash, struct{}{})
		return authenticationv1.UserInfo{}, ErrUnauthenticated
	}
	store(k, k.identities, hash, tr.Status.User)
	return tr.Status.User, nil
}

// review asks the API server whether RBAC lets the user do a (SubjectAccessReview).
func (k *KubernetesAuthorizer) review(ctx context.Context, u authenticationv1.UserInfo, a Access) (bool, error) {
	extra := map[string]authorizationv1.ExtraValue{}
	for key, v := range u.Extra {
		extra[key] = authorizationv1.ExtraValue(v)
	}
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: u.Username, Groups: u.Groups, UID: u.UID, Extra: extra,
		ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: a.Namespace, Name: a.Name, Verb: a.Verb,
			Group: a.Group, Resource: a.Resource, Subresource: a.Subresource},
	}}
	if err := k.Client.Create(ctx, sar); err != nil {
		return false, err
	}
	return sar.Status.Allowed, nil
}

// credential returns the request's API key header or bearer token (empty if none).
func credential(r *http.Request) Credential {
	if key := r.Header.Get(HeaderAPIKey); key != "" {
		return Credential{Token: key, APIKey: true}
	}
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "Bearer ") {
		return Credential{Token: strings.TrimSpace(h[7:])}
	}
	return Credential{}
}
