package metricsauth_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/millrace-io/millrace/internal/metricsauth"
	"github.com/millrace-io/millrace/internal/testenv"
)

var (
	cfg       *rest.Config
	clientset *kubernetes.Clientset
)

func TestMain(m *testing.M) {
	testenv.ExitIfShort("a control plane")
	cp, err := testenv.StartBareControlPlane()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cfg = cp.Config
	if clientset, err = kubernetes.NewForConfig(cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = cp.Stop()
	os.Exit(code)
}

// refused is any 4xx or 5xx status.
const refused = -1

// The manager's metrics endpoint with its default flags: a scrape without a token, or with the
// token of a ServiceAccount that may not GET /metrics, is refused; a reader's token is served.
func TestMetricsAreServedOnlyToAuthorizedScrapers(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr := testenv.FreeAddr(t)
	opts, err := metricsauth.Options(metricsauth.Flags{Addr: addr, Secure: true})
	if err != nil {
		t.Fatal(err)
	}
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	server, err := metricsserver.NewServer(opts, cfg, httpClient)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- server.Start(ctx) }()
	defer func() { cancel(); <-done }()

	ns := "monitoring"
	if _, err := clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, sa := range []string{"prometheus", "nosy"} {
		if _, err := clientset.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// What the chart's metrics-reader ClusterRole grants, bound to prometheus only.
	reader := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "metrics-reader"},
		Rules: []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}}}
	if _, err := clientset.RbacV1().ClusterRoles().Create(ctx, reader, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "metrics-reader"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "metrics-reader"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: ns, Name: "prometheus"}}}
	if _, err := clientset.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The certificate is self-signed: a scraper skips verification or is given the CA.
	scraper := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	scrape := func(token string) (int, string, error) {
		req, _ := http.NewRequest(http.MethodGet, "https://"+addr+"/metrics", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := scraper.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		return res.StatusCode, string(body), nil
	}
	testenv.Eventually(t, 20*time.Second, func() error { _, _, err := scrape(""); return err })

	for _, tc := range []struct {
		name, token string
		want        int
	}{
		{"a scrape without a token is refused", "", http.StatusUnauthorized},
		// The API server's TokenReview answers with an error, which the filter turns into a 500.
		{"a scrape with a token the API server does not know is refused", "not-a-token", refused},
		{"a scrape by a ServiceAccount without GET on /metrics is refused", token(t, ns, "nosy"), http.StatusForbidden},
		{"a scrape by the metrics reader is served", token(t, ns, "prometheus"), http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// RBAC bindings reach the authorizer within a moment; a refusal is cached for 30 s, so
			// the reader's scrape runs last and retries.
			testenv.Eventually(t, 40*time.Second, func() error {
				code, body, err := scrape(tc.token)
				if err != nil {
					return err
				}
				if code != tc.want && (tc.want != refused || code < 400) {
					return fmt.Errorf("status %d, want %d: %.200s", code, tc.want, body)
				}
				if code == http.StatusOK && !strings.Contains(body, "# TYPE") {
					return fmt.Errorf("no metrics in the answer: %.200s", body)
				}
				if code != http.StatusOK && strings.Contains(body, "# TYPE") {
					return fmt.Errorf("metrics in a refusal: %.200s", body)
				}
				return nil
			})
		})
	}

	// Plain HTTP on the same port gets no metrics either.
	res, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/metrics")
	if err == nil {
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if strings.Contains(string(body), "# TYPE") {
			t.Error("metrics served over plain HTTP")
		}
	}
}

func token(t *testing.T, ns, sa string) string {
	t.Helper()
	tr, err := clientset.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

func TestUnauthenticatedMetricsOnlyOnLoopback(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{":8080", false},
		{"0.0.0.0:8080", false},
		{"10.0.0.7:8080", false},
		{"[::]:8080", false},
		{"127.0.0.1:8080", true},
		{"[::1]:8080", true},
		{"localhost:8080", true},
		{"0", true},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			o, err := metricsauth.Options(metricsauth.Flags{Addr: tc.addr, Secure: false})
			if (err == nil) != tc.ok {
				t.Fatalf("plain metrics on %s: err %v, want allowed=%v", tc.addr, err, tc.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "loopback") {
				t.Errorf("the error does not say what to do: %v", err)
			}
			if o.SecureServing || o.FilterProvider != nil {
				t.Errorf("plain metrics with secure serving on")
			}
		})
	}
}
