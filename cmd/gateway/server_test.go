package main

import (
	"net"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/gateway"
	"github.com/millrace-io/millrace/internal/httpserver"
	"github.com/millrace-io/millrace/internal/httpserver/slowclient"
)

// Before any authentication, anyone who reaches the gateway could hold connections open by
// sending a body a byte at a time (40 such connections stayed open for 24 s and more). The read
// timeout cuts them off.
func TestSlowBodiesCannotExhaustTheUnauthenticatedGateway(t *testing.T) {
	srv := &gateway.Server{Auth: &gateway.KubernetesAuthorizer{}}
	s := httpServer("", srv.Handler(), httpserver.Limits{Read: 300 * time.Millisecond, Write: 500 * time.Millisecond})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(ln) }()
	defer s.Close()
	if held := slowclient.Held(ln.Addr().String(), 40, slowclient.SlowBody("POST", "/v1/namespaces/shop/queues/orders/messages"), 10*time.Second); held > 0 {
		t.Errorf("%d of 40 slow connections still open after 10s", held)
	}
}

// WorkflowRuns are read from the API server: a cached client would watch every run of every
// namespace (statuses of up to etcd's object size, which tenants control) in the gateway's memory.
func TestTheGatewayCachesNoWorkflowRuns(t *testing.T) {
	scheme := runtime.NewScheme()
	utilruntime.Must(millracev1.AddToScheme(scheme))
	opts := managerOptions(scheme, config{keysNamespace: "millrace-system"})
	uncached := false
	for _, obj := range opts.Client.Cache.DisableFor {
		if _, ok := obj.(*millracev1.WorkflowRun); ok {
			uncached = true
		}
	}
	if !uncached {
		t.Fatal("the gateway's client would cache (watch) every WorkflowRun of the cluster")
	}
	if len(opts.Cache.ByObject) != 2 {
		t.Fatalf("the key Secrets are not watched in one namespace only, or Workflows are cached whole: %+v", opts.Cache.ByObject)
	}
	// A cached Workflow keeps what the gateway reads (spec.http), not its definition.
	big := &millracev1.Workflow{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "order", ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
		Spec: millracev1.WorkflowSpec{Definition: apiextensionsv1.JSON{Raw: []byte(`{"StartAt":"A","States":{"A":{"Type":"Pass","Result":"` + strings.Repeat("x", 1<<20) + `","End":true}}}`)},
			HTTP: &millracev1.WorkflowHTTP{Enabled: true}}}
	for obj, by := range opts.Cache.ByObject {
		if _, ok := obj.(*millracev1.Workflow); ok {
			kept, err := by.Transform(big)
			wf, _ := kept.(*millracev1.Workflow)
			if err != nil || wf == nil || wf.Name != "order" || wf.Spec.HTTP == nil || !wf.Spec.HTTP.Enabled || wf.Spec.Definition.Raw != nil || wf.ManagedFields != nil {
				t.Fatalf("cached Workflow %+v (%v)", kept, err)
			}
		}
	}
}
