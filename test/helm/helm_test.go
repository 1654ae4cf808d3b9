// Package helm_test checks the Helm chart (charts/millrace) with Helm v3.22.0 built by the project
// (hack/helm.sh): lint, rendering against golden files, the values schema, and install, upgrade
// and uninstall on a real kube-apiserver, with SubjectAccessReviews proving what the manager's
// service account may and may not do.
package helm_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/millrace-io/millrace/internal/testenv"
)

var (
	update     = flag.Bool("update", false, "rewrite the golden files")
	helm       string
	chart      string
	kubeconfig string
	k8s        client.Client
)

func TestMain(m *testing.M) {
	testenv.ExitIfShort("Helm, a control plane and the SQS emulator")
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	var err error
	if helm, err = testenv.HelmBinary(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	chart = filepath.Join(root, "charts", "millrace")
	cp, err := testenv.StartBareControlPlane()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = cp.Stop() }()
	admin, err := cp.Env.AddUser(envtest.User{Name: "helm-admin", Groups: []string{"system:masters"}}, cp.Config)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	raw, err := admin.KubeConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dir, err := os.MkdirTemp("", "millrace-helm")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, raw, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// Helm keeps caches and config under these; keep them out of the user's home.
	for k, v := range map[string]string{"HELM_CACHE_HOME": "cache", "HELM_CONFIG_HOME": "config", "HELM_DATA_HOME": "data"} {
		_ = os.Setenv(k, filepath.Join(dir, v))
	}
	if k8s, err = cp.Client(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// helmRun runs helm and returns its combined output.
func helmRun(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helm, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func mustHelm(t *testing.T, args ...string) string {
	t.Helper()
	out, err := helmRun(t, args...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func TestLint(t *testing.T) {
	mustHelm(t, "lint", "--strict", chart)
	mustHelm(t, "lint", "--strict", chart, "-f", "testdata/full-values.yaml")
}

// generatedKey masks the task-token key, which the chart generates at the first install.
var generatedKey = regexp.MustCompile(`(?m)^(  key: )[A-Za-z0-9+/=]{64}$`)

func TestTemplateGolden(t *testing.T) {
	for name, args := range map[string][]string{
		// With the cluster: without one, the default values (a generated task-token key) refuse
		// to render (TestTheTaskTokenKeyNeverChangesBetweenRenders).
		"default": {"--dry-run=server", "--kubeconfig", kubeconfig},
		"full":    {"-f", "testdata/full-values.yaml"},
	} {
		t.Run(name, func(t *testing.T) {
			out := mustHelm(t, append([]string{"template", "millrace", chart, "--namespace", "millrace-system"}, args...)...)
			out = generatedKey.ReplaceAllString(out, "${1}<generated at install>")
			golden := filepath.Join("testdata", name+".golden.yaml")
			if *update {
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run `go test ./test/helm -update` to create it)", err)
			}
			if out != string(want) {
				t.Errorf("helm template differs from %s (if the change is intended, run `go test ./test/helm -update` and review the diff):\n%s", golden, firstDiff(string(want), out))
			}
		})
	}
}

func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(w), len(g)); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			return fmt.Sprintf("line %d:\n want %q\n  got %q", i+1, a, b)
		}
	}
	return ""
}

func TestTheSchemaRefusesBadValues(t *testing.T) {
	for _, tc := range []struct{ set, want string }{
		{"logLevel=loud", "logLevel"},
		{"replicaCount=0", "replicaCount"},
		{"aws.region=mars", "/aws/region"},
		{"aws.endpoint=localstack:4566", "/aws/endpoint"},
		{"rbac.watchNamespaces={Team_A}", "watchNamespaces"},
		{"metrics.serviceMonitor.interval=soon", "interval"},
		{"workflowRunWorkers=0", "workflowRunWorkers"},
		{"image.pullPolicy=Sometimes", "pullPolicy"},
		{"replicas=3", "replicas"},
		{"taskToken.key=too-short", "/taskToken/key"},
		{"metrics.readers[0].namespace=Monitoring,metrics.readers[0].name=prometheus", "/metrics/readers/0/namespace"},
		{"networkPolicy.egress.apiServerPorts={0}", "/networkPolicy/egress/apiServerPorts/0"},
		{"networkPolicy.metrics.namespaceSelector.team=observability", "/networkPolicy/metrics/namespaceSelector"},
		{"gateway.serviceAccount.name=shared", "/gateway/serviceAccount"},
	} {
		t.Run(tc.set, func(t *testing.T) {
			out, err := helmRun(t, "template", "millrace", chart, "--set", tc.set)
			if err == nil {
				t.Fatalf("--set %s was accepted", tc.set)
			}
			if !strings.Contains(out, "values don't meet the specifications of the schema") || !strings.Contains(out, tc.want) {
				t.Errorf("--set %s: the error does not name %s:\n%s", tc.set, tc.want, out)
			}
		})
	}
}

func eventually(t *testing.T, check func() error) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, check)
}

// can asks the API server whether the service account may do verb on resource (group/resource or
// group/resource/subresource) in namespace ("" for all namespaces), or on a non-resource URL
// (url:/metrics).
func can(t *testing.T, sa, namespace, verb, resource string) bool {
	t.Helper()
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   sa,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + strings.Split(sa, ":")[2], "system:authenticated"},
	}}
	if url, ok := strings.CutPrefix(resource, "url:"); ok {
		sar.Spec.NonResourceAttributes = &authorizationv1.NonResourceAttributes{Path: url, Verb: verb}
	} else {
		group, rest, _ := strings.Cut(resource, "/")
		res, sub, _ := strings.Cut(rest, "/")
		sar.Spec.ResourceAttributes = &authorizationv1.ResourceAttributes{Namespace: namespace, Verb: verb, Group: group, Resource: res, Subresource: sub}
	}
	if err := k8s.Create(context.Background(), sar); err != nil {
		t.Fatal(err)
	}
	return sar.Status.Allowed
}

type access struct {
	namespace, verb, resource string
}

func checkAccess(t *testing.T, sa string, allowed, denied []access) {
	t.Helper()
	for _, a := range allowed {
		if !can(t, sa, a.namespace, a.verb, a.resource) {
			t.Errorf("%s cannot %s %s in %q; it needs to", sa, a.verb, a.resource, a.namespace)
		}
	}
	for _, a := range denied {
		if can(t, sa, a.namespace, a.verb, a.resource) {
			t.Errorf("%s can %s %s in %q; it must not", sa, a.verb, a.resource, a.namespace)
		}
	}
}

// Denied to the manager whatever the install mode.
var neverAllowed = []access{
	{"team-a", "get", "/secrets"}, {"millrace-system", "get", "/secrets"}, {"", "list", "/secrets"},
	{"team-a", "create", "/pods/exec"}, {"team-a", "create", "/pods"}, {"team-a", "delete", "/pods"},
	{"", "delete", "/namespaces"}, {"team-a", "create", "coordination.k8s.io/leases"},
	{"", "escalate", "rbac.authorization.k8s.io/clusterroles"}, {"", "bind", "rbac.authorization.k8s.io/clusterroles"},
	{"", "impersonate", "/users"}, {"team-a", "*", "*/*"}, {"", "create", "apiextensions.k8s.io/customresourcedefinitions"},
	{"team-a", "delete", "millrace.io/queues"},
}

func TestInstallUpgradeUninstall(t *testing.T) {
	ctx := context.Background()
	for _, ns := range []string{"team-a"} {
		_ = k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	mustHelm(t, "install", "millrace", chart, "--kubeconfig", kubeconfig, "--namespace", "millrace-system", "--create-namespace",
		"--set", "metrics.readers[0].namespace=monitoring", "--set", "metrics.readers[0].name=prometheus")
	for _, crd := range []string{"queues", "consumers", "workflows", "workflowruns"} {
		eventually(t, func() error {
			c := &apiextensionsv1.CustomResourceDefinition{}
			if err := k8s.Get(ctx, client.ObjectKey{Name: crd + ".millrace.io"}, c); err != nil {
				return err
			}
			for _, cond := range c.Status.Conditions {
				if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
					return nil
				}
			}
			return fmt.Errorf("%s is not Established", crd)
		})
	}
	key := func() string {
		s := &corev1.Secret{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: "millrace-system", Name: "millrace-task-token"}, s); err != nil {
			t.Fatal(err)
		}
		return string(s.Data["key"])
	}
	first := key()
	if len(first) < 32 {
		t.Fatalf("task-token key of %d bytes", len(first))
	}
	// Rendering with the cluster (Flux's helm-controller, helm diff, --dry-run=server) shows the
	// installed key, not a new one.
	for range 2 {
		out := mustHelm(t, "template", "millrace", chart, "--namespace", "millrace-system", "--dry-run=server", "--kubeconfig", kubeconfig)
		if !strings.Contains(out, "  key: "+base64.StdEncoding.EncodeToString([]byte(first))+"\n") {
			t.Error("a render with the cluster does not carry the installed task-token key")
		}
	}

	sa := "system:serviceaccount:millrace-system:millrace"
	checkAccess(t, sa, []access{
		{"", "list", "millrace.io/queues"}, {"", "watch", "millrace.io/workflowruns"},
		{"team-a", "patch", "millrace.io/queues/status"}, {"team-a", "update", "millrace.io/queues/finalizers"},
		{"team-a", "patch", "millrace.io/workflowruns/status"}, {"team-a", "delete", "millrace.io/workflowruns"},
		// A DISTRIBUTED Map's items run as child WorkflowRuns the manager creates.
		{"team-a", "create", "millrace.io/workflowruns"},
		{"team-a", "create", "apps/deployments"}, {"team-a", "patch", "apps/deployments"},
		{"team-a", "create", "events.k8s.io/events"}, {"millrace-system", "update", "coordination.k8s.io/leases"},
		// The metrics endpoint checks scrapers' tokens and permissions.
		{"", "create", "authentication.k8s.io/tokenreviews"}, {"", "create", "authorization.k8s.io/subjectaccessreviews"},
	}, neverAllowed)
	// Only the ServiceAccounts of metrics.readers may scrape the manager.
	checkAccess(t, "system:serviceaccount:monitoring:prometheus", []access{{"", "get", "url:/metrics"}},
		[]access{{"team-a", "get", "/secrets"}, {"", "list", "millrace.io/queues"}})
	for _, other := range []string{"system:serviceaccount:monitoring:default", "system:serviceaccount:team-a:default", sa} {
		checkAccess(t, other, nil, []access{{"", "get", "url:/metrics"}})
	}

	mustHelm(t, "upgrade", "millrace", chart, "--kubeconfig", kubeconfig, "--namespace", "millrace-system", "--reuse-values", "--set", "logLevel=debug")
	if key() != first {
		t.Error("the task-token key changed on upgrade: every token in flight would be refused")
	}
	eventually(t, func() error {
		out := mustHelm(t, "get", "manifest", "millrace", "--kubeconfig", kubeconfig, "--namespace", "millrace-system")
		if !strings.Contains(out, "--zap-log-level=debug") {
			return fmt.Errorf("the upgrade did not reach the Deployment")
		}
		return nil
	})

	mustHelm(t, "uninstall", "millrace", "--kubeconfig", kubeconfig, "--namespace", "millrace-system")
	eventually(t, func() error {
		if can(t, sa, "", "list", "millrace.io/queues") {
			return fmt.Errorf("the manager's permissions outlive the release")
		}
		return nil
	})
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := k8s.Get(ctx, client.ObjectKey{Name: "queues.millrace.io"}, crd); err != nil {
		t.Errorf("the CRDs must stay after uninstall (Helm never deletes them; deleting them would delete every Queue): %v", err)
	}
}

// With rbac.watchNamespaces the manager gets Roles in those namespaces and nothing cluster-wide.
func TestANamespacedInstallHasNoClusterWidePermissions(t *testing.T) {
	ctx := context.Background()
	for _, ns := range []string{"team-b", "team-c"} {
		_ = k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	mustHelm(t, "install", "scoped", chart, "--kubeconfig", kubeconfig, "--namespace", "millrace-scoped", "--create-namespace",
		"--set", "rbac.watchNamespaces={team-b}", "--set", "admissionPolicy.enabled=false")
	defer mustHelm(t, "uninstall", "scoped", "--kubeconfig", kubeconfig, "--namespace", "millrace-scoped")
	sa := "system:serviceaccount:millrace-scoped:scoped-millrace"
	checkAccess(t, sa, []access{
		{"team-b", "list", "millrace.io/queues"}, {"team-b", "patch", "millrace.io/consumers/status"},
		{"team-b", "create", "apps/deployments"}, {"millrace-scoped", "update", "coordination.k8s.io/leases"},
	}, append([]access{
		{"", "list", "millrace.io/queues"}, {"team-c", "list", "millrace.io/queues"}, {"team-c", "create", "apps/deployments"},
	}, neverAllowed...))
	out := mustHelm(t, "get", "manifest", "scoped", "--kubeconfig", kubeconfig, "--namespace", "millrace-scoped")
	if !strings.Contains(out, "--watch-namespaces=team-b") {
		t.Errorf("namespaced manifest:\n%s", out)
	}
	// Cluster-wide, only what the metrics endpoint needs: reviewing scrapers' tokens and
	// permissions (kinds that exist only cluster-wide), the reader role for scrapers, and the
	// webhook configuration's caBundle.
	for _, o := range objectsOf(t, out) {
		if o.GetKind() != "ClusterRole" {
			continue
		}
		role := &rbacv1.ClusterRole{}
		fromUnstructured(t, o, role)
		for _, r := range role.Rules {
			review := slices.Equal(r.Verbs, []string{"create"}) && len(r.Resources) == 1 &&
				(r.Resources[0] == "tokenreviews" || r.Resources[0] == "subjectaccessreviews")
			reader := slices.Equal(r.NonResourceURLs, []string{"/metrics"}) && slices.Equal(r.Verbs, []string{"get"})
			// The webhook's CA goes into its own configuration (a cluster-scoped kind), by name.
			caBundle := slices.Equal(r.Resources, []string{"validatingwebhookconfigurations"}) && len(r.ResourceNames) == 1 &&
				slices.Equal(r.Verbs, []string{"get", "patch"})
			if !review && !reader && !caBundle {
				t.Errorf("ClusterRole %s grants %v cluster-wide", role.Name, r)
			}
		}
	}
}

// The gateway is off by default; enabled, its service account may check tokens and permissions,
// read what it exposes and start runs, and nothing else; with API keys, read Secrets of its
// namespace too.
func TestTheGatewayInstall(t *testing.T) {
	if out := mustHelm(t, "template", "millrace", chart, "--set", "taskToken.existingSecret=k"); strings.Contains(out, "component: gateway") {
		t.Error("the default install has a gateway")
	}
	// With the egress policies too: the API server accepts them as rendered.
	mustHelm(t, "install", "gw", chart, "--kubeconfig", kubeconfig, "--namespace", "millrace-gw", "--create-namespace",
		"--set", "gateway.enabled=true", "--set", "admissionPolicy.enabled=false", "--set", "networkPolicy.egress.enabled=true",
		"--set", "aws.endpoint=http://fauxqs.sqs:4566")
	defer mustHelm(t, "uninstall", "gw", "--kubeconfig", kubeconfig, "--namespace", "millrace-gw")
	gateway := "system:serviceaccount:millrace-gw:gw-millrace-gateway"
	checkAccess(t, gateway, []access{
		{"", "create", "authentication.k8s.io/tokenreviews"}, {"", "create", "authorization.k8s.io/subjectaccessreviews"},
		{"team-a", "get", "millrace.io/queues"}, {"team-a", "list", "millrace.io/workflows"}, {"team-a", "create", "millrace.io/workflowruns"},
	}, append([]access{
		{"team-a", "get", "/secrets"}, {"team-a", "update", "millrace.io/queues"}, {"team-a", "delete", "millrace.io/workflowruns"},
		{"team-a", "patch", "millrace.io/workflowruns/status"}, {"team-a", "create", "apps/deployments"}, {"team-a", "*", "*/*"},
		{"millrace-gw", "list", "/secrets"},
	}, gatewayNeverAllowed...))
	// API keys need a namespace of their own: not none, not the release's (the task-token key).
	// And a list of the namespaces whose ServiceAccounts a key may act as.
	for set, want := range map[string]string{
		"gateway.apiKeys.enabled=true":                                         "gateway.apiKeys.namespace",
		"gateway.apiKeys.enabled=true,gateway.apiKeys.namespace=millrace-gw":   "gateway.apiKeys.namespace",
		"gateway.apiKeys.enabled=true,gateway.apiKeys.namespace=millrace-keys": "gateway.apiKeys.serviceAccountNamespaces",
	} {
		if out, err := helmRun(t, "template", "gw", chart, "--namespace", "millrace-gw", "--set", "gateway.enabled=true", "--set", "taskToken.existingSecret=k", "--set", set); err == nil || !strings.Contains(out, want) {
			t.Errorf("--set %s: %v\n%s", set, err, out)
		}
	}
	// With API keys, it lists and watches the Secrets of that namespace, and reads no other.
	_ = k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "millrace-gw-keys"}})
	mustHelm(t, "upgrade", "gw", chart, "--kubeconfig", kubeconfig, "--namespace", "millrace-gw", "--reuse-values",
		"--set", "gateway.apiKeys.enabled=true", "--set", "gateway.apiKeys.namespace=millrace-gw-keys", "--set", "gateway.apiKeys.serviceAccountNamespaces={team-a}")
	checkAccess(t, "system:serviceaccount:millrace-gw:gw-millrace-gateway", []access{
		{"millrace-gw-keys", "list", "/secrets"}, {"millrace-gw-keys", "watch", "/secrets"},
	}, []access{
		{"millrace-gw-keys", "get", "/secrets"}, {"millrace-gw", "list", "/secrets"}, {"millrace-gw", "get", "/secrets"},
		{"team-a", "list", "/secrets"}, {"", "list", "/secrets"}, {"millrace-gw-keys", "create", "/secrets"},
	})
	if out := mustHelm(t, "get", "manifest", "gw", "--kubeconfig", kubeconfig, "--namespace", "millrace-gw"); !strings.Contains(out, "--api-keys-namespace=millrace-gw-keys") {
		t.Error("the gateway is not told where its keys are")
	}
	// Whatever the values, the gateway gets none of the manager's rights.
	checkAccess(t, gateway, nil, gatewayNeverAllowed)
}

// Denied to the gateway's ServiceAccount: everything the manager may do and the gateway need not
// (manage Queues, Consumers' Deployments, status, leader election), reading the manager's metrics,
// and what would let it become someone else.
var gatewayNeverAllowed = []access{
	{"team-a", "patch", "millrace.io/queues/status"}, {"team-a", "update", "millrace.io/queues/finalizers"},
	{"team-a", "patch", "millrace.io/queues"}, {"team-a", "patch", "millrace.io/consumers"}, {"team-a", "create", "millrace.io/consumers"},
	{"team-a", "update", "millrace.io/workflowruns"}, {"team-a", "patch", "millrace.io/workflows/status"},
	{"team-a", "patch", "apps/deployments"}, {"team-a", "delete", "apps/deployments"},
	{"millrace-gw", "update", "coordination.k8s.io/leases"}, {"millrace-gw", "get", "/secrets"}, {"millrace-gw", "get", "/configmaps"},
	{"team-a", "create", "/serviceaccounts/token"}, {"millrace-gw", "create", "/serviceaccounts/token"}, {"team-a", "create", "/pods"},
	{"", "impersonate", "/serviceaccounts"}, {"", "impersonate", "/users"}, {"", "impersonate", "/groups"},
	{"", "escalate", "rbac.authorization.k8s.io/clusterroles"}, {"", "bind", "rbac.authorization.k8s.io/clusterroles"},
	{"team-a", "create", "rbac.authorization.k8s.io/rolebindings"}, {"", "get", "url:/metrics"},
	{"", "create", "certificates.k8s.io/certificatesigningrequests"}, {"", "list", "/secrets"},
}
