package webhookcert_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/millrace-io/millrace/internal/testenv"
	"github.com/millrace-io/millrace/internal/webhookcert"
)

var k8s client.Client

func TestMain(m *testing.M) {
	testenv.ExitIfShort("a control plane")
	cp, err := testenv.StartBareControlPlane()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if k8s, err = cp.Client(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = cp.Stop()
	os.Exit(code)
}

func webhookConfiguration(t *testing.T, name string) {
	t.Helper()
	none := admissionregistrationv1.SideEffectClassNone
	cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: "vworkflowrun.millrace.io", SideEffects: &none, AdmissionReviewVersions: []string{"v1"},
			FailurePolicy: ptr.To(admissionregistrationv1.Ignore),
			ClientConfig:  admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{Namespace: "default", Name: "millrace-webhook"}},
		}}}
	if err := k8s.Create(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
}

func caBundle(t *testing.T, name string) []byte {
	t.Helper()
	cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Name: name}, cfg); err != nil {
		t.Fatal(err)
	}
	return cfg.Webhooks[0].ClientConfig.CABundle
}

// The first replica makes the certificate, a second one serves the same, the configuration gets
// the CA, and a client that trusts only that CA accepts the served certificate under the
// Service's name.
func TestReplicasShareOneCertificateAndTheCAIsInjected(t *testing.T) {
	ctx := context.Background()
	webhookConfiguration(t, "shared")
	opts := func(dir string) webhookcert.Options {
		return webhookcert.Options{Namespace: "default", Secret: "shared-cert", Service: "millrace-webhook", WebhookConfiguration: "shared", CertDir: dir}
	}
	first, second := t.TempDir(), t.TempDir()
	if err := webhookcert.Ensure(ctx, k8s, opts(first)); err != nil {
		t.Fatal(err)
	}
	if err := webhookcert.Ensure(ctx, k8s, opts(second)); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(filepath.Join(first, "tls.crt"))
	b, _ := os.ReadFile(filepath.Join(second, "tls.crt"))
	if len(a) == 0 || string(a) != string(b) {
		t.Fatal("the two replicas serve different certificates")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caBundle(t, "shared")) {
		t.Fatal("no CA in the webhook configuration")
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(first, "tls.crt"), filepath.Join(first, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "millrace-webhook.default.svc"}); err != nil {
		t.Fatalf("the served certificate does not verify against the injected CA: %v", err)
	}
	var secret corev1.Secret
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: "default", Name: "shared-cert"}, &secret); err != nil || secret.Type != corev1.SecretTypeTLS {
		t.Fatalf("secret: %v %s", err, secret.Type)
	}
}

// A configuration replaced without its caBundle (a reinstall, a GitOps sync) gets it back.
func TestTheKeeperPutsTheCABack(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	webhookConfiguration(t, "kept")
	o := webhookcert.Options{Namespace: "default", Secret: "kept-cert", Service: "millrace-webhook", WebhookConfiguration: "kept", CertDir: t.TempDir()}
	if err := webhookcert.Ensure(ctx, k8s, o); err != nil {
		t.Fatal(err)
	}
	want := caBundle(t, "kept")
	if err := k8s.Delete(ctx, &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "kept"}}); err != nil {
		t.Fatal(err)
	}
	webhookConfiguration(t, "kept")
	go func() { _ = (&webhookcert.Keeper{Client: k8s, Options: o, Interval: 50 * time.Millisecond}).Start(ctx) }()
	testenv.Eventually(t, 10*time.Second, func() error {
		if got := caBundle(t, "kept"); string(got) != string(want) {
			return fmt.Errorf("caBundle %d bytes, want the CA's %d", len(got), len(want))
		}
		return nil
	})
}
