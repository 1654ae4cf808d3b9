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
// token takes effect within CacheTTL.
type KubernetesAuthorizer struct {
	Client client.Client
	// Audiences the tokens must be issued for (empty: the API server's).
	Audiences []string
	// CacheTTL is how long an answer is reused (default 10s; negative: never).
	CacheTTL time.Duration
	// Keys, when set, are API keys accepted besides tokens. They are looked up on every request
	// (in an informer cache), so a deleted key stops working at once.
	Keys *APIKeys
	// Metrics, when set, counts authentications by method and result.
	Metrics *Metrics

	mu      sync.Mutex
	reviews map[[32]byte]cached[authenticationv1.UserInfo]
	access  map[accessKey]cached[bool]
}

// accessKey is what a permission answer depends on: who asks, for what.
type accessKey struct {
	user, uid, groups string
	access            Access
}

type cached[T any] struct {
	value   T
	ok      bool
	expires time.Time
}

// maxCached bounds each cache; past it the cache starts over.
const maxCached = 10000

func lookup[K comparable, T any](k *KubernetesAuthorizer, m map[K]cached[T], key K) (cached[T], bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	c, found := m[key]
	return c, found && time.Now().Before(c.expires)
}

func store[K comparable, T any](k *KubernetesAuthorizer, m *map[K]cached[T], key K, value T, ok bool) {
	ttl := k.CacheTTL
	if ttl == 0 {
		ttl = 10 * time.Second
	}
	if ttl < 0 {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if *m == nil || len(*m) >= maxCached {
		*m = map[K]cached[T]{}
	}
	(*m)[key] = cached[T]{value: value, ok: ok, expires: time.Now().Add(ttl)}
}

// Authorize implements Authorizer.
func (k *KubernetesAuthorizer) Authorize(ctx context.Context, c Credential, a Access) (string, error) {
	if c.Token == "" {
		return "", ErrUnauthenticated
	}
	u, method, err := k.identify(ctx, c)
	k.Metrics.countAuth(method, err)
	if err != nil {
		return "", err
	}
	key := accessKey{user: u.Username, uid: u.UID, groups: strings.Join(u.Groups, "\x00"), access: a}
	if c, hit := lookup(k, k.access, key); hit {
		if !c.value {
			return u.Username, ErrForbidden
		}
		return u.Username, nil
	}
	allowed, err := k.review(ctx, u, a)
	if err != nil {
		return u.Username, err
	}
	store(k, &k.access, key, allowed, true)
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

// authenticate asks the API server who a token is (TokenReview), or the cache.
func (k *KubernetesAuthorizer) authenticate(ctx context.Context, token string) (authenticationv1.UserInfo, error) {
	hash := sha256.Sum256([]byte(token))
	if c, hit := lookup(k, k.reviews, hash); hit {
		if !c.ok {
			return authenticationv1.UserInfo{}, ErrUnauthenticated
		}
		return c.value, nil
	}
	tr := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: k.Audiences}}
	if err := k.Client.Create(ctx, tr); err != nil {
		return authenticationv1.UserInfo{}, err
	}
	store(k, &k.reviews, hash, tr.Status.User, tr.Status.Authenticated)
	if !tr.Status.Authenticated {
		return authenticationv1.UserInfo{}, ErrUnauthenticated
	}
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
