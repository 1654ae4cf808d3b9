package gateway

import (
	"context"
	"errors"
	"net/http"
	"strings"

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

// Authorizer decides whether a bearer token may do something.
type Authorizer interface {
	Authorize(ctx context.Context, token string, a Access) (user string, err error)
}

// KubernetesAuthorizer checks tokens with the API server: a TokenReview says who the caller is
// (ServiceAccount tokens, or any token the cluster's authenticators accept), a SubjectAccessReview
// whether RBAC lets them. Access is granted with ordinary Roles, e.g. verb create on resource
// queues/messages of group millrace.io.
type KubernetesAuthorizer struct {
	Client client.Client
	// Audiences the tokens must be issued for (empty: the API server's).
	Audiences []string
}

// Authorize implements Authorizer.
func (k *KubernetesAuthorizer) Authorize(ctx context.Context, token string, a Access) (string, error) {
	if token == "" {
		return "", ErrUnauthenticated
	}
	tr := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: k.Audiences}}
	if err := k.Client.Create(ctx, tr); err != nil {
		return "", err
	}
	if !tr.Status.Authenticated {
		return "", ErrUnauthenticated
	}
	u := tr.Status.User
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
		return u.Username, err
	}
	if !sar.Status.Allowed {
		return u.Username, ErrForbidden
	}
	return u.Username, nil
}

// bearer returns the request's bearer token ("" if none).
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "Bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}
