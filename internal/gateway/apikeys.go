package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// API keys are Secrets in a namespace kept for them alone (the gateway may list every Secret there)
// that let a caller without a Kubernetes token act as a ServiceAccount:
//
//	metadata:
//	  labels:      {millrace.io/api-key: "true"}
//	  annotations: {millrace.io/service-account: shop/checkout, millrace.io/expires: "2027-06-30T00:00:00Z"}
//	stringData:    {key: <at least 32 characters>}
//
// The key is sent as `X-Api-Key: <key>` or `Authorization: Bearer <key>`; what it may do is what
// RBAC lets that ServiceAccount do (SubjectAccessReview), so keys and tokens are granted the same
// way. Deleting the Secret revokes the key at once (the gateway watches them); `expires` is optional.
const (
	APIKeyLabel                    = "millrace.io/api-key"
	APIKeyServiceAccountAnnotation = "millrace.io/service-account"
	APIKeyExpiresAnnotation        = "millrace.io/expires"
	APIKeyDataField                = "key"
	// APIKeyIndex is the cache index of key Secrets by the SHA-256 of their key.
	APIKeyIndex = "millrace.io/api-key-sha256"
	// HeaderAPIKey carries an API key (as in API Gateway).
	HeaderAPIKey = "X-Api-Key"
	// MinAPIKeyLength is the shortest key accepted: shorter keys could be guessed.
	MinAPIKeyLength = 32
)

// APIKeyHash is the index value of a key.
func APIKeyHash(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

// IndexAPIKey is the index function of APIKeyIndex: a labelled Secret's key hash (none for others).
func IndexAPIKey(o client.Object) []string {
	s, ok := o.(*corev1.Secret)
	if !ok || s.Labels[APIKeyLabel] != "true" || len(s.Data[APIKeyDataField]) == 0 {
		return nil
	}
	return []string{APIKeyHash(secretKey(s))}
}

// secretKey is a Secret's key without surrounding white space (a file ending in a newline, as
// `kubectl create secret --from-file` stores it; header values lose theirs too).
func secretKey(s *corev1.Secret) string { return strings.TrimSpace(string(s.Data[APIKeyDataField])) }

// APIKeyIdentity is the user a key Secret acts as at time now, or an error naming what is wrong.
func APIKeyIdentity(s *corev1.Secret, now time.Time) (authenticationv1.UserInfo, error) {
	if n := len(secretKey(s)); n < MinAPIKeyLength {
		return authenticationv1.UserInfo{}, fmt.Errorf("data.%s has %d characters, fewer than %d", APIKeyDataField, n, MinAPIKeyLength)
	}
	sa := s.Annotations[APIKeyServiceAccountAnnotation]
	ns, name, ok := strings.Cut(sa, "/")
	if !ok || len(validation.IsDNS1123Label(ns)) > 0 || len(validation.IsDNS1123Subdomain(name)) > 0 {
		return authenticationv1.UserInfo{}, fmt.Errorf("annotation %s is %q, not namespace/serviceaccount", APIKeyServiceAccountAnnotation, sa)
	}
	if exp, set := s.Annotations[APIKeyExpiresAnnotation]; set {
		t, err := time.Parse(time.RFC3339, exp)
		if err != nil {
			return authenticationv1.UserInfo{}, fmt.Errorf("annotation %s is %q, not an RFC 3339 time", APIKeyExpiresAnnotation, exp)
		}
		if !now.Before(t) {
			return authenticationv1.UserInfo{}, fmt.Errorf("the key expired at %s", exp)
		}
	}
	return authenticationv1.UserInfo{
		Username: "system:serviceaccount:" + ns + ":" + name,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
		Extra:    map[string]authenticationv1.ExtraValue{"millrace.io/api-key": {s.Name}},
	}, nil
}

// APIKeys finds key Secrets in a cache indexed by APIKeyIndex.
type APIKeys struct {
	Reader    client.Reader
	Namespace string
	// ServiceAccountNamespaces are the namespaces whose ServiceAccounts a key may act as, listed
	// by an administrator: whoever may write a Secret in the keys' namespace could otherwise
	// name a ServiceAccount of any namespace, the cluster's own included. Empty: none.
	ServiceAccountNamespaces []string
}

// find returns the identity of a key; found is false when no Secret holds it.
func (k *APIKeys) find(ctx context.Context, key string) (u authenticationv1.UserInfo, found bool, err error) {
	var list corev1.SecretList
	if err := k.Reader.List(ctx, &list, client.InNamespace(k.Namespace), client.MatchingFields{APIKeyIndex: APIKeyHash(key)}); err != nil {
		return u, false, err
	}
	if len(list.Items) == 0 {
		return u, false, nil
	}
	s := &list.Items[0]
	if len(list.Items) > 1 {
		return u, true, fmt.Errorf("Secrets %s and %s in %s hold the same key: it is refused until one is removed", s.Name, list.Items[1].Name, k.Namespace)
	}
	u, err = APIKeyIdentity(s, time.Now())
	if err == nil {
		err = k.allowed(s)
	}
	if err != nil {
		return u, true, fmt.Errorf("API key Secret %s/%s: %w", s.Namespace, s.Name, err)
	}
	return u, true, nil
}

// allowed checks that a key's ServiceAccount is in a namespace keys may act for.
func (k *APIKeys) allowed(s *corev1.Secret) error {
	sa := s.Annotations[APIKeyServiceAccountAnnotation]
	ns, _, _ := strings.Cut(sa, "/")
	if !slices.Contains(k.ServiceAccountNamespaces, ns) {
		return fmt.Errorf("annotation %s names %q, but API keys may act only as ServiceAccounts of %v (the gateway's --api-key-service-account-namespaces)",
			APIKeyServiceAccountAnnotation, sa, k.ServiceAccountNamespaces)
	}
	return nil
}
