package helm_test

// What the chart's defaults leave open in a shared cluster (issue 12, point 9): network reach, the
// gateway's identity, the task-token key under GitOps, metrics without authentication, and the
// samples under Pod Security Admission.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8slabels "k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/consumer"
	"github.com/millrace-io/millrace/internal/testenv"
)

// objectsOf splits a multi-document manifest into objects.
func objectsOf(t *testing.T, manifest string) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(manifest)))
	for {
		doc, err := dec.Read()
		if errors.Is(err, io.EOF) {
			return objs
		} else if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, &u.Object); err != nil {
			t.Fatalf("%v\n%s", err, doc)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
}

func fromUnstructured(t *testing.T, u *unstructured.Unstructured, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, into); err != nil {
		t.Fatal(err)
	}
}

// rendered is the output of helm template, by kind and name.
type rendered map[string]*unstructured.Unstructured

// render runs helm template (release millrace, namespace millrace-system) with the given --set
// values and the task-token key of a Secret of the user's, which renders without a cluster.
func render(t *testing.T, sets ...string) rendered {
	t.Helper()
	args := []string{"template", "millrace", chart, "--namespace", "millrace-system", "--set", "taskToken.existingSecret=millrace-task-token"}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	r := rendered{}
	for _, o := range objectsOf(t, mustHelm(t, args...)) {
		r[o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName()] = o
	}
	return r
}

// get returns the object of that kind, namespace and name, decoded into into; false if absent.
func (r rendered) get(t *testing.T, kind, namespace, name string, into any) bool {
	t.Helper()
	o, ok := r[kind+"/"+namespace+"/"+name]
	if ok {
		fromUnstructured(t, o, into)
	}
	return ok
}

func (r rendered) kinds(kind string) []string {
	var names []string
	for k := range r {
		if strings.HasPrefix(k, kind+"/") {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	return names
}

// Argo CD renders with `helm template`, without the cluster: a key generated then changes at
// every sync and invalidates every task token in flight. Such a render must fail and say what to
// do, unless the key is the user's (existingSecret, or taskToken.key: the same at every render).
func TestTheTaskTokenKeyNeverChangesBetweenRenders(t *testing.T) {
	t.Run("a render without the cluster and without a key of the user's fails and says why", func(t *testing.T) {
		out, err := helmRun(t, "template", "millrace", chart, "--namespace", "millrace-system")
		if err == nil {
			t.Fatal("rendered with a task-token key that would change at the next render")
		}
		for _, want := range []string{"taskToken.existingSecret", "taskToken.key", "--dry-run=server", "invalidate every task token"} {
			if !strings.Contains(out, want) {
				t.Errorf("the error does not mention %q:\n%s", want, out)
			}
		}
	})
	t.Run("with existingSecret the chart renders no Secret and mounts the user's", func(t *testing.T) {
		r := render(t, "taskToken.existingSecret=gitops-task-token")
		if secrets := r.kinds("Secret"); len(secrets) != 0 {
			t.Errorf("the chart renders %v", secrets)
		}
		d := &appsv1.Deployment{}
		if !r.get(t, "Deployment", "millrace-system", "millrace", d) {
			t.Fatal("no manager Deployment")
		}
		if v := d.Spec.Template.Spec.Volumes[0]; v.Name != "task-token" || v.Secret == nil || v.Secret.SecretName != "gitops-task-token" {
			t.Errorf("the manager mounts %+v", v)
		}
	})
	t.Run("with taskToken.key two renders are the same", func(t *testing.T) {
		key := strings.Repeat("k3y-", 10)
		args := []string{"template", "millrace", chart, "--namespace", "millrace-system", "--set", "taskToken.key=" + key}
		first, second := mustHelm(t, args...), mustHelm(t, args...)
		if first != second {
			t.Errorf("two renders differ:\n%s", firstDiff(first, second))
		}
		if !strings.Contains(first, "  key: "+base64.StdEncoding.EncodeToString([]byte(key))+"\n") {
			t.Error("the Secret does not hold taskToken.key")
		}
	})
	t.Run("a short key or both ways at once is refused", func(t *testing.T) {
		for _, set := range []string{"taskToken.key=short", "taskToken.key=" + strings.Repeat("x", 32) + ",taskToken.existingSecret=s"} {
			if out, err := helmRun(t, "template", "millrace", chart, "--set", set); err == nil || !strings.Contains(out, "taskToken") {
				t.Errorf("--set %s: %v\n%s", set, err, out)
			}
		}
	})
}

// The manager takes the callback port from Consumer pods only and the metrics port from
// monitoring only; the gateway its HTTP port from the configured peers and metrics from
// monitoring; egress, when on, never reaches the instance metadata service.
func TestNetworkPoliciesConfineTheManagerAndTheGateway(t *testing.T) {
	// The labels the manager gives a Consumer's pods.
	consumerPods := consumer.Render(&millracev1.Consumer{ObjectMeta: metav1.ObjectMeta{Name: "billing", Namespace: "team-a"}}, 1,
		consumer.Target{}, consumer.Options{}).Spec.Template.Labels
	monitoring := map[string]string{"kubernetes.io/metadata.name": "monitoring"}

	r := render(t, "gateway.enabled=true")
	manager := &networkingv1.NetworkPolicy{}
	if !r.get(t, "NetworkPolicy", "millrace-system", "millrace-manager", manager) {
		t.Fatalf("no NetworkPolicy for the manager; rendered %v", r.kinds("NetworkPolicy"))
	}
	d := &appsv1.Deployment{}
	r.get(t, "Deployment", "millrace-system", "millrace", d)
	if !selects(manager.Spec.PodSelector, d.Spec.Template.Labels) {
		t.Errorf("the manager's policy selects %v, not its pods %v", manager.Spec.PodSelector, d.Spec.Template.Labels)
	}
	if !slices.Equal(manager.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
		t.Errorf("policy types %v; egress is off by default", manager.Spec.PolicyTypes)
	}
	wantIngress(t, "manager", manager, d, map[string]func(networkingv1.NetworkPolicyPeer) bool{
		"webhook": nil, // the API server, which no selector names
		"callback": func(p networkingv1.NetworkPolicyPeer) bool {
			return p.PodSelector != nil && selects(*p.PodSelector, consumerPods) && p.NamespaceSelector != nil
		},
		"metrics": func(p networkingv1.NetworkPolicyPeer) bool {
			return p.NamespaceSelector != nil && equalMaps(p.NamespaceSelector.MatchLabels, monitoring)
		},
	})

	gateway := &networkingv1.NetworkPolicy{}
	if !r.get(t, "NetworkPolicy", "millrace-system", "millrace-gateway", gateway) {
		t.Fatalf("no NetworkPolicy for the gateway; rendered %v", r.kinds("NetworkPolicy"))
	}
	gd := &appsv1.Deployment{}
	r.get(t, "Deployment", "millrace-system", "millrace-gateway", gd)
	if !selects(gateway.Spec.PodSelector, gd.Spec.Template.Labels) {
		t.Errorf("the gateway's policy selects %v, not its pods %v", gateway.Spec.PodSelector, gd.Spec.Template.Labels)
	}
	wantIngress(t, "gateway", gateway, gd, map[string]func(networkingv1.NetworkPolicyPeer) bool{
		"http": nil, // from anywhere by default
		"metrics": func(p networkingv1.NetworkPolicyPeer) bool {
			return p.NamespaceSelector != nil && equalMaps(p.NamespaceSelector.MatchLabels, monitoring)
		},
	})

	t.Run("the gateway's callers and the scrapers are configurable", func(t *testing.T) {
		r := render(t, "gateway.enabled=true", "networkPolicy.gateway.from[0].namespaceSelector.matchLabels.ingress=nginx",
			"networkPolicy.metrics.namespaceSelector.matchLabels.team=observability")
		gateway := &networkingv1.NetworkPolicy{}
		r.get(t, "NetworkPolicy", "millrace-system", "millrace-gateway", gateway)
		gd := &appsv1.Deployment{}
		r.get(t, "Deployment", "millrace-system", "millrace-gateway", gd)
		wantIngress(t, "gateway", gateway, gd, map[string]func(networkingv1.NetworkPolicyPeer) bool{
			"http": func(p networkingv1.NetworkPolicyPeer) bool {
				return p.NamespaceSelector != nil && p.NamespaceSelector.MatchLabels["ingress"] == "nginx"
			},
			"metrics": func(p networkingv1.NetworkPolicyPeer) bool {
				return p.NamespaceSelector != nil && p.NamespaceSelector.MatchLabels["team"] == "observability"
			},
		})
	})
	t.Run("with watchNamespaces only their Consumer pods reach the callback API", func(t *testing.T) {
		r := render(t, "rbac.watchNamespaces={team-a,team-b}")
		manager := &networkingv1.NetworkPolicy{}
		r.get(t, "NetworkPolicy", "millrace-system", "millrace-manager", manager)
		from := manager.Spec.Ingress[0].From[0].NamespaceSelector
		if from == nil || len(from.MatchExpressions) != 1 || !slices.Equal(from.MatchExpressions[0].Values, []string{"team-a", "team-b"}) {
			t.Errorf("callback callers' namespaces: %+v", from)
		}
	})
	t.Run("egress allows DNS, HTTPS, the API server and Pod Identity, not instance metadata", func(t *testing.T) {
		r := render(t, "gateway.enabled=true", "networkPolicy.egress.enabled=true")
		for _, name := range []string{"millrace-manager", "millrace-gateway"} {
			np := &networkingv1.NetworkPolicy{}
			r.get(t, "NetworkPolicy", "millrace-system", name, np)
			if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
				t.Errorf("%s: no egress policy", name)
			}
			var ports []string
			for _, rule := range np.Spec.Egress {
				for _, p := range rule.Ports {
					ports = append(ports, p.Port.String())
					if p.Port.String() == "80" && (len(rule.To) == 0 || rule.To[0].IPBlock == nil || !strings.HasPrefix(rule.To[0].IPBlock.CIDR, "169.254.170.23/")) {
						t.Errorf("%s: port 80 open to %+v", name, rule.To)
					}
				}
				for _, to := range rule.To {
					if to.IPBlock != nil && strings.HasPrefix(to.IPBlock.CIDR, "169.254.169.254") {
						t.Errorf("%s: instance metadata allowed", name)
					}
				}
			}
			for _, want := range []string{"53", "443", "6443", "80"} {
				if !slices.Contains(ports, want) {
					t.Errorf("%s: egress ports %v lack %s", name, ports, want)
				}
			}
		}
	})
	t.Run("Consumer pods of watched namespaces take metrics scrapes only", func(t *testing.T) {
		r := render(t, "rbac.watchNamespaces={team-a}", "networkPolicy.consumers.enabled=true")
		np := &networkingv1.NetworkPolicy{}
		if !r.get(t, "NetworkPolicy", "team-a", "millrace-consumers", np) {
			t.Fatalf("rendered %v", r.kinds("NetworkPolicy"))
		}
		if !selects(np.Spec.PodSelector, consumerPods) || len(np.Spec.Ingress) != 1 ||
			len(np.Spec.Ingress[0].Ports) != 1 || np.Spec.Ingress[0].Ports[0].Port.IntValue() != consumer.DispatcherHealthPort {
			t.Errorf("consumers' policy: %+v", np.Spec)
		}
		out, err := helmRun(t, "template", "millrace", chart, "--set", "taskToken.existingSecret=k", "--set", "networkPolicy.consumers.enabled=true")
		if err == nil || !strings.Contains(out, "rbac.watchNamespaces") || !strings.Contains(out, "examples/tenant/networkpolicy.yaml") {
			t.Errorf("consumer policies without watchNamespaces: %v\n%s", err, out)
		}
	})
	t.Run("networkPolicy.enabled=false renders none", func(t *testing.T) {
		if nps := render(t, "gateway.enabled=true", "networkPolicy.enabled=false").kinds("NetworkPolicy"); len(nps) != 0 {
			t.Errorf("rendered %v", nps)
		}
	})
}

// wantIngress checks that policy admits exactly the named ports of the Deployment's containers,
// each from the peers accepted by its check (nil: from anywhere).
func wantIngress(t *testing.T, what string, np *networkingv1.NetworkPolicy, d *appsv1.Deployment, want map[string]func(networkingv1.NetworkPolicyPeer) bool) {
	t.Helper()
	var containerPorts []string
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, p := range c.Ports {
			containerPorts = append(containerPorts, p.Name)
		}
	}
	seen := map[string]bool{}
	for _, rule := range np.Spec.Ingress {
		for _, p := range rule.Ports {
			port := p.Port.String()
			check, ok := want[port]
			if !ok {
				t.Errorf("%s: port %s is open; want only %v", what, port, keys(want))
				continue
			}
			if !slices.Contains(containerPorts, port) {
				t.Errorf("%s: the policy names port %s, which no container has (%v)", what, port, containerPorts)
			}
			seen[port] = true
			if check == nil {
				if len(rule.From) != 0 {
					t.Errorf("%s: port %s only from %+v", what, port, rule.From)
				}
				continue
			}
			if len(rule.From) == 0 {
				t.Errorf("%s: port %s is open to every pod", what, port)
			}
			for _, peer := range rule.From {
				if !check(peer) {
					t.Errorf("%s: port %s from %+v", what, port, peer)
				}
			}
		}
		if len(rule.Ports) == 0 {
			t.Errorf("%s: a rule opens every port: %+v", what, rule)
		}
	}
	for port := range want {
		if !seen[port] {
			t.Errorf("%s: port %s is not admitted", what, port)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func selects(s metav1.LabelSelector, labels map[string]string) bool {
	sel, err := metav1.LabelSelectorAsSelector(&s)
	return err == nil && !sel.Empty() && sel.Matches(k8slabels.Set(labels))
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// The gateway can only send: it runs as its own ServiceAccount, whose AWS role comes from
// gateway.serviceAccount.annotations, never from the manager's (which can create and delete
// queues), and it never gets the manager's static keys.
func TestTheGatewayHasItsOwnIdentity(t *testing.T) {
	managerRole := "arn:aws:iam::123456789012:role/millrace"
	gatewayRole := "arn:aws:iam::123456789012:role/millrace-gateway"
	r := render(t, "gateway.enabled=true", "aws.credentialsSecret=manager-keys",
		`serviceAccount.annotations.eks\.amazonaws\.com/role-arn=`+managerRole)
	sa := &corev1.ServiceAccount{}
	if !r.get(t, "ServiceAccount", "millrace-system", "millrace-gateway", sa) {
		t.Fatal("no ServiceAccount for the gateway")
	}
	if len(sa.Annotations) != 0 {
		t.Errorf("the gateway's ServiceAccount carries %v: the manager's AWS role", sa.Annotations)
	}
	d := &appsv1.Deployment{}
	r.get(t, "Deployment", "millrace-system", "millrace-gateway", d)
	if d.Spec.Template.Spec.ServiceAccountName != "millrace-gateway" {
		t.Errorf("the gateway runs as %q", d.Spec.Template.Spec.ServiceAccountName)
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, from := range c.EnvFrom {
			if from.SecretRef != nil && from.SecretRef.Name == "manager-keys" {
				t.Error("the gateway gets the manager's AWS keys (aws.credentialsSecret)")
			}
		}
	}

	r = render(t, "gateway.enabled=true", "gateway.credentialsSecret=gateway-keys",
		`serviceAccount.annotations.eks\.amazonaws\.com/role-arn=`+managerRole,
		`gateway.serviceAccount.annotations.eks\.amazonaws\.com/role-arn=`+gatewayRole)
	r.get(t, "ServiceAccount", "millrace-system", "millrace-gateway", sa)
	if got := sa.Annotations["eks.amazonaws.com/role-arn"]; got != gatewayRole {
		t.Errorf("the gateway's role is %q, want %q", got, gatewayRole)
	}
	manager := &corev1.ServiceAccount{}
	r.get(t, "ServiceAccount", "millrace-system", "millrace", manager)
	if got := manager.Annotations["eks.amazonaws.com/role-arn"]; got != managerRole {
		t.Errorf("the manager's role is %q, want %q", got, managerRole)
	}
	r.get(t, "Deployment", "millrace-system", "millrace-gateway", d)
	if ef := d.Spec.Template.Spec.Containers[0].EnvFrom; len(ef) != 1 || ef[0].SecretRef.Name != "gateway-keys" {
		t.Errorf("the gateway's credentials: %+v", ef)
	}
}

// Metrics are served over HTTPS behind the API server's authentication and authorization; the
// ServiceMonitor scrapes with a token; plain HTTP only on the pod's loopback, on request.
func TestMetricsNeedAuthentication(t *testing.T) {
	r := render(t, "metrics.serviceMonitor.enabled=true")
	d := &appsv1.Deployment{}
	r.get(t, "Deployment", "millrace-system", "millrace", d)
	args := d.Spec.Template.Spec.Containers[0].Args
	if !slices.Contains(args, "--metrics-bind-address=:8443") || slices.Contains(args, "--metrics-secure=false") {
		t.Errorf("manager arguments %v", args)
	}
	sm := r["ServiceMonitor/millrace-system/millrace"]
	if sm == nil {
		t.Fatal("no ServiceMonitor")
	}
	ep, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	endpoint, _ := ep[0].(map[string]any)
	if endpoint["scheme"] != "https" || endpoint["bearerTokenFile"] != "/var/run/secrets/kubernetes.io/serviceaccount/token" || endpoint["tlsConfig"] == nil {
		t.Errorf("the ServiceMonitor scrapes with %v", endpoint)
	}
	reader := &unstructured.Unstructured{}
	if o := r["ClusterRole//millrace-metrics-reader"]; o == nil {
		t.Error("no metrics-reader ClusterRole")
	} else {
		reader = o
	}
	if rules, _, _ := unstructured.NestedSlice(reader.Object, "rules"); len(rules) != 1 {
		t.Errorf("metrics-reader rules %v", rules)
	}

	t.Run("plain metrics stay on the pod's loopback, with no Service", func(t *testing.T) {
		r := render(t, "metrics.secure=false")
		d := &appsv1.Deployment{}
		r.get(t, "Deployment", "millrace-system", "millrace", d)
		args := d.Spec.Template.Spec.Containers[0].Args
		if !slices.Contains(args, "--metrics-bind-address=127.0.0.1:8080") || !slices.Contains(args, "--metrics-secure=false") {
			t.Errorf("manager arguments %v", args)
		}
		if r["Service/millrace-system/millrace-metrics"] != nil {
			t.Error("a Service for metrics served on loopback")
		}
		out, err := helmRun(t, "template", "millrace", chart, "--set", "taskToken.existingSecret=k", "--set", "metrics.secure=false", "--set", "metrics.serviceMonitor.enabled=true")
		if err == nil || !strings.Contains(out, "metrics.secure") {
			t.Errorf("a ServiceMonitor for loopback metrics: %v\n%s", err, out)
		}
	})
}

// A Consumer's pods are the tenant's template plus the dispatcher; Pod Security Admission is what
// keeps them unprivileged. Every sample Consumer, rendered as the manager renders it, is admitted
// in the sample tenant namespace, which enforces "restricted" (and a pod that is not is refused
// there, so the check means something).
func TestSampleConsumersAreAdmittedUnderRestricted(t *testing.T) {
	ctx := context.Background()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	nsDocs := docsOf(t, filepath.Join(root, "examples", "tenant", "namespace.yaml"))
	ns := &corev1.Namespace{}
	fromUnstructured(t, nsDocs[0], ns)
	if ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Fatalf("the sample tenant namespace enforces %q", ns.Labels["pod-security.kubernetes.io/enforce"])
	}
	ns.Name = "sample-tenant" // team-a, of other tests, does not enforce a level
	if err := k8s.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}

	unprivileged := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "plain", Namespace: ns.Name},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.example/plain:1"}}}}
	if err := k8s.Create(ctx, unprivileged, client.DryRunAll); err == nil || !strings.Contains(err.Error(), "restricted") {
		t.Fatalf("a pod without a security context was not refused by Pod Security Admission: %v", err)
	}

	files, _ := filepath.Glob(filepath.Join(root, "config", "samples", "*.yaml"))
	files = append(files, filepath.Join(root, "examples", "tenant", "consumer.yaml"))
	n := 0
	for _, f := range files {
		for _, o := range docsOf(t, f) {
			if o.GetKind() != "Consumer" {
				continue
			}
			n++
			c := &millracev1.Consumer{}
			fromUnstructured(t, o, c)
			c.Namespace = ns.Name
			t.Run(filepath.Base(f)+"/"+c.Name, func(t *testing.T) {
				d := consumer.Render(c, 1, consumer.Target{QueueURL: "http://sqs.example/1/q", QueueARN: "arn:aws:sqs:us-east-1:1:q", Region: "us-east-1"},
					consumer.Options{DispatcherImage: "registry.example/dispatcher:1", CallbackURL: "http://millrace-callback.millrace-system:9443"})
				pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: c.Name, Namespace: ns.Name, Labels: d.Spec.Template.Labels}, Spec: d.Spec.Template.Spec}
				if err := k8s.Create(ctx, pod, client.DryRunAll); err != nil {
					t.Errorf("a pod of Consumer %s is refused: %v", c.Name, err)
				}
			})
		}
	}
	if n < 2 {
		t.Errorf("%d sample Consumers found", n)
	}
}

// The documented NetworkPolicies for tenant namespaces, and the kustomize install's policy and
// metrics RBAC, are accepted by the API server as written.
func TestTheManifestsOutsideTheChartAreAccepted(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, ns := range []string{"team-a", "millrace-system"} {
		_ = k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	consumerPods := consumer.Render(&millracev1.Consumer{ObjectMeta: metav1.ObjectMeta{Name: "billing", Namespace: "team-a"}}, 1,
		consumer.Target{}, consumer.Options{}).Spec.Template.Labels
	tenant := docsOf(t, filepath.Join(root, "examples", "tenant", "networkpolicy.yaml"))
	if len(tenant) != 2 {
		t.Fatalf("%d tenant policies", len(tenant))
	}
	for _, o := range tenant {
		np := &networkingv1.NetworkPolicy{}
		fromUnstructured(t, o, np)
		if !selects(np.Spec.PodSelector, consumerPods) {
			t.Errorf("%s selects %v, not Consumer pods", np.Name, np.Spec.PodSelector.MatchLabels)
		}
	}
	objs := tenant
	for _, f := range []string{"network-policy/manager.yaml", "rbac/metrics_auth_role.yaml", "rbac/metrics_auth_role_binding.yaml", "rbac/metrics_reader_role.yaml"} {
		objs = append(objs, docsOf(t, filepath.Join(root, "config", f))...)
	}
	for _, o := range objs {
		if err := k8s.Create(ctx, o, client.DryRunAll); err != nil {
			t.Errorf("%s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
}

func docsOf(t *testing.T, file string) []*unstructured.Unstructured {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return objectsOf(t, string(bytes.TrimSpace(raw)))
}
