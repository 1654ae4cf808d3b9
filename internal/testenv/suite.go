package testenv

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

var namespaces atomic.Int64

// NewNamespace creates a namespace of its own for a test: <prefix><n>-<generated>.
func NewNamespace(t testing.TB, c client.Client, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: fmt.Sprintf("%s%d-", prefix, namespaces.Add(1))}}
	if err := c.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// Create creates obj, or fails the test.
func Create(t testing.TB, c client.Client, obj client.Object) {
	t.Helper()
	if err := c.Create(context.Background(), obj); err != nil {
		t.Fatalf("creating %s: %v", obj.GetName(), err)
	}
}

// NewManager is a test suite's controller manager: the test scheme (unless opts has one), and
// no metrics or health listeners.
func NewManager(cfg *rest.Config, opts ctrl.Options) (ctrl.Manager, error) {
	if opts.Scheme == nil {
		opts.Scheme = Scheme()
	}
	opts.Metrics = metricsserver.Options{BindAddress: "0"}
	opts.HealthProbeBindAddress = "0"
	return ctrl.NewManager(cfg, opts)
}

// RunManager starts mgr in the background until ctx ends, printing the error it ends with.
func RunManager(ctx context.Context, mgr ctrl.Manager) {
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}()
}
