package consumer

import (
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/scaling"
)

func sample(mode millracev1.DeliveryMode) *millracev1.Consumer {
	return &millracev1.Consumer{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "billing", UID: "uid-1"},
		Spec: millracev1.ConsumerSpec{
			QueueRef: millracev1.ConsumerQueueReference{Name: "orders"},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"team": "a"}},
				Spec: corev1.PodSpec{
					InitContainers: []corev1.Container{{Name: "migrate", Image: "migrate:1"}},
					Containers: []corev1.Container{{Name: "handler", Image: "handler:1",
						Env: []corev1.EnvVar{{Name: "AWS_REGION", Value: "stale"}, {Name: "KEEP", Value: "1"}}}},
				},
			},
			Delivery: millracev1.DeliverySpec{Mode: mode, Port: 8080, Path: "/events", BatchSize: 10, Concurrency: 2,
				Timeout: "45s", BatchWindow: ptr.To(millracev1.Duration("2s")), ReportBatchItemFailures: ptr.To(true),
				FailureBackoff: ptr.To(millracev1.Duration("5s"))},
		},
	}
}

var target = Target{QueueURL: "http://q/1/orders", QueueARN: "arn:aws:sqs:us-east-1:1:orders", Region: "us-east-1", Endpoint: "http://127.0.0.1:4566"}

func env(c corev1.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		m[e.Name] = e.Value
	}
	return m
}

func TestRenderHTTPInjectsTheDispatcherAsANativeSidecar(t *testing.T) {
	d := Render(sample(millracev1.DeliveryHTTP), 3, target, Options{DispatcherImage: "dispatcher:v1"})
	if *d.Spec.Replicas != 3 || d.Name != "billing" || d.Namespace != "shop" {
		t.Fatalf("deployment %s/%s replicas %d", d.Namespace, d.Name, *d.Spec.Replicas)
	}
	if d.Spec.Selector.MatchLabels[LabelConsumer] != "billing" || d.Spec.Template.Labels[LabelConsumer] != "billing" || d.Spec.Template.Labels["team"] != "a" {
		t.Fatalf("labels: selector %v, pod %v", d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
	}
	if o := d.OwnerReferences; len(o) != 1 || o[0].Kind != "Consumer" || o[0].UID != "uid-1" || !*o[0].Controller {
		t.Fatalf("owner references %+v", o)
	}
	inits := d.Spec.Template.Spec.InitContainers
	if len(inits) != 2 || inits[0].Name != "migrate" || inits[1].Name != DispatcherName {
		t.Fatalf("init containers %v: the dispatcher must follow the user's", inits)
	}
	side := inits[1]
	if side.RestartPolicy == nil || *side.RestartPolicy != corev1.ContainerRestartPolicyAlways || side.Image != "dispatcher:v1" {
		t.Fatalf("sidecar %+v", side)
	}
	e := env(side)
	for k, v := range map[string]string{
		EnvQueueURL: target.QueueURL, EnvQueueARN: target.QueueARN, EnvQueueFIFO: "false", EnvRegion: "us-east-1",
		EnvSQSEndpoint: target.Endpoint, EnvDeliveryMode: "HTTP", EnvHandlerURL: "http://127.0.0.1:8080/events",
		EnvBatchSize: "10", EnvBatchWindow: "2s", EnvConcurrency: "2", EnvHandlerTimeout: "45s",
		EnvReportBatchItemFailures: "true", EnvConsumer: "shop/billing", EnvFailureBackoff: "5s",
	} {
		if e[k] != v {
			t.Errorf("dispatcher env %s = %q, want %q", k, e[k], v)
		}
	}
	if h := env(d.Spec.Template.Spec.Containers[0]); h["AWS_REGION"] != "stale" || h[EnvQueueURL] != "" {
		t.Fatalf("HTTP mode must leave the handler's env alone: %v", h)
	}
	if g := *d.Spec.Template.Spec.TerminationGracePeriodSeconds; g != 60 {
		t.Fatalf("termination grace %d, want timeout 45s + 15s drain", g)
	}
}

func TestRenderLambdaRuntimePointsTheHandlerAtTheRuntimeAPI(t *testing.T) {
	d := Render(sample(millracev1.DeliveryLambdaRuntime), 1, target, Options{DispatcherImage: "d"})
	h := env(d.Spec.Template.Spec.Containers[0])
	if h[EnvLambdaAPI] != RuntimeAPIAddress || h[EnvLambdaName] != "billing" || h["AWS_REGION"] != "us-east-1" || h["KEEP"] != "1" {
		t.Fatalf("handler env %v", h)
	}
	side := env(d.Spec.Template.Spec.InitContainers[1])
	if side[EnvRuntimeAPIAddress] != RuntimeAPIAddress || side[EnvHandlerURL] != "" {
		t.Fatalf("sidecar env %v", side)
	}
}

func TestRenderNoneInjectsOnlyTheQueueCoordinates(t *testing.T) {
	c := sample(millracev1.DeliveryNone)
	c.Spec.Delivery.BatchWindow, c.Spec.Delivery.ReportBatchItemFailures, c.Spec.Delivery.FailureBackoff = nil, nil, nil
	d := Render(c, 1, target, Options{DispatcherImage: "d"})
	if len(d.Spec.Template.Spec.InitContainers) != 1 {
		t.Fatalf("mode None injected a container: %v", d.Spec.Template.Spec.InitContainers)
	}
	h := env(d.Spec.Template.Spec.Containers[0])
	if h[EnvQueueURL] != target.QueueURL || h["AWS_REGION"] != "us-east-1" || h[EnvSQSEndpoint] != target.Endpoint || h["KEEP"] != "1" {
		t.Fatalf("handler env %v", h)
	}
}

func TestRenderedHashIgnoresReplicasAndFollowsTheTemplate(t *testing.T) {
	c := sample(millracev1.DeliveryHTTP)
	a := Render(c, 1, target, Options{DispatcherImage: "d"}).Annotations[AnnotationHash]
	b := Render(c, 7, target, Options{DispatcherImage: "d"}).Annotations[AnnotationHash]
	if a != b {
		t.Fatal("a scale decision changed the rendered hash (it would roll the pods)")
	}
	c.Spec.Template.Spec.Containers[0].Image = "handler:2"
	if Render(c, 1, target, Options{DispatcherImage: "d"}).Annotations[AnnotationHash] == a {
		t.Fatal("a template change kept the hash")
	}
	if Render(sample(millracev1.DeliveryHTTP), 1, target, Options{DispatcherImage: "d2"}).Annotations[AnnotationHash] == a {
		t.Fatal("a new dispatcher image kept the hash")
	}
	if sample(millracev1.DeliveryHTTP).Spec.Template.Spec.InitContainers[0].Name != "migrate" {
		t.Fatal("rendering changed the Consumer")
	}
}

func TestAUserGracePeriodLongerThanNeededIsKept(t *testing.T) {
	c := sample(millracev1.DeliveryHTTP)
	c.Spec.Template.Spec.TerminationGracePeriodSeconds = ptr.To[int64](600)
	if g := *Render(c, 1, target, Options{}).Spec.Template.Spec.TerminationGracePeriodSeconds; g != 600 {
		t.Fatalf("grace %d", g)
	}
}

func TestValidate(t *testing.T) {
	queue := func(typ millracev1.QueueType, vis string) *millracev1.Queue {
		q := &millracev1.Queue{ObjectMeta: metav1.ObjectMeta{Name: "orders"}, Spec: millracev1.QueueSpec{Type: typ}}
		if vis != "" {
			q.Spec.VisibilityTimeout = ptr.To(millracev1.Duration(vis))
		}
		return q
	}
	cases := []struct {
		name   string
		change func(*millracev1.Consumer)
		queue  *millracev1.Queue
		want   string
	}{
		{"a consumer within the queue's limits is valid", nil, queue(millracev1.QueueTypeStandard, "1m"), ""},
		{"a queue in another namespace is refused", func(c *millracev1.Consumer) { c.Spec.QueueRef.Namespace = "other" }, nil, "spec.queueRef.namespace"},
		{"naming the own namespace is allowed", func(c *millracev1.Consumer) { c.Spec.QueueRef.Namespace = "shop" }, queue(millracev1.QueueTypeStandard, "1m"), ""},
		{"a timeout above the visibility timeout is refused", nil, queue(millracev1.QueueTypeStandard, "30s"), "spec.delivery.timeout: 45s exceeds the visibility timeout"},
		{"an unset visibility timeout means 30s", nil, queue(millracev1.QueueTypeStandard, ""), "(30s)"},
		{"mode None has no handler timeout to check", func(c *millracev1.Consumer) { c.Spec.Delivery.Mode = millracev1.DeliveryNone }, queue(millracev1.QueueTypeStandard, "1s"), ""},
		{"a fifo batch above 10 is refused", func(c *millracev1.Consumer) { c.Spec.Delivery.BatchSize = 11 }, queue(millracev1.QueueTypeFIFO, "1m"), "spec.delivery.batchSize"},
		{"a standard batch above 10 is allowed", func(c *millracev1.Consumer) { c.Spec.Delivery.BatchSize = 500 }, queue(millracev1.QueueTypeStandard, "1m"), ""},
		{"a fifo batch window is refused", nil, queue(millracev1.QueueTypeFIFO, "1m"), "spec.delivery.batchWindow"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := sample(millracev1.DeliveryHTTP)
			if tc.change != nil {
				tc.change(c)
			}
			err := Validate(c, tc.queue)
			if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestPolicyDefaultsAndBehavior(t *testing.T) {
	p := Policy(millracev1.ScalingSpec{MaxReplicas: 5, BacklogPerReplica: 20, ScaleToZeroDelay: "2m"})
	if p.MinReplicas != 0 || p.MaxReplicas != 5 || p.BacklogPerReplica != 20 || !p.CountInFlight || p.ScaleToZeroDelay != 2*time.Minute {
		t.Fatalf("policy %+v", p)
	}
	if p.ScaleDown.StabilizationWindow != 5*time.Minute || len(p.ScaleUp.Policies) != 2 {
		t.Fatalf("HPA defaults not applied: %+v", p)
	}
	p = Policy(millracev1.ScalingSpec{MaxReplicas: 5, CountInFlight: ptr.To(false), Behavior: &millracev1.ScalingBehavior{
		ScaleDown: &millracev1.ScalingRules{StabilizationWindow: ptr.To(millracev1.Duration("0s")), SelectPolicy: "Min",
			Policies: []millracev1.ScalingPolicy{{Type: "Pods", Value: 1, Period: "30s"}}},
	}})
	want := scaling.Rules{Select: scaling.SelectMin, Policies: []scaling.RatePolicy{{Kind: scaling.Pods, Value: 1, Period: 30 * time.Second}}}
	if p.CountInFlight || p.ScaleDown.StabilizationWindow != 0 || p.ScaleDown.Select != want.Select || p.ScaleDown.Policies[0] != want.Policies[0] {
		t.Fatalf("behavior %+v", p.ScaleDown)
	}
	if len(p.ScaleUp.Policies) != 2 {
		t.Fatal("an unset direction must keep the HPA default")
	}
}

func TestPolicyCarriesTheKEDAFeatures(t *testing.T) {
	p := Policy(millracev1.ScalingSpec{MaxReplicas: 10, MinReplicas: ptr.To[int32](2), IdleReplicas: ptr.To[int32](0),
		Paused: true, PausedReplicas: ptr.To[int32](4), Fallback: &millracev1.FallbackSpec{FailureThreshold: 3, Replicas: 6},
		Behavior: &millracev1.ScalingBehavior{ScaleUp: &millracev1.ScalingRules{TolerancePercent: ptr.To[int32](0)}}})
	if p.Fallback == nil || *p.Fallback != (scaling.Fallback{FailureThreshold: 3, Replicas: 6, Behavior: scaling.FallbackStatic}) {
		t.Fatalf("fallback %+v", p.Fallback)
	}
	if *p.IdleReplicas != 0 || !p.Paused || *p.PausedReplicas != 4 {
		t.Fatalf("policy %+v", p)
	}
	if p.ScaleUp.Tolerance != 0 || p.ScaleDown.Tolerance != scaling.DefaultTolerance {
		t.Fatalf("tolerance up %v down %v: an explicit 0 must stay 0, an unset one the HPA's 10%%", p.ScaleUp.Tolerance, p.ScaleDown.Tolerance)
	}
	if d := Policy(millracev1.ScalingSpec{}); d.ScaleUp.Tolerance != 0.1 || d.Fallback != nil || d.IdleReplicas != nil {
		t.Fatalf("defaults %+v", d)
	}
}

// Point 2: the environment a Lambda runtime needs, as Lambda defines it, on the handler container.
func TestRenderGivesALambdaRuntimeLambdasEnvironment(t *testing.T) {
	const absent = "<absent>"
	cases := []struct {
		name   string
		change func(*millracev1.Consumer)
		want   map[string]string
	}{
		{"lambda's reserved variables are set", nil, map[string]string{
			EnvLambdaAPI: RuntimeAPIAddress, EnvLambdaName: "billing", EnvLambdaVersion: "$LATEST",
			EnvLambdaMemory: "128", EnvLambdaLogGroup: "/aws/lambda/billing", EnvLambdaInitType: "on-demand",
			EnvRegion: "us-east-1", EnvDefaultRegion: "us-east-1", EnvTZ: ":UTC", EnvLambdaTaskRoot: "/var/task",
			EnvLambdaHandler: absent, EnvLambdaMaxConcurrency: "2", "KEEP": "1",
		}},
		{"the memory size is the container's memory limit in MiB", func(c *millracev1.Consumer) {
			c.Spec.Template.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1536Mi")}
		}, map[string]string{EnvLambdaMemory: "1536"}},
		{"a memory limit in other units is converted", func(c *millracev1.Consumer) {
			c.Spec.Template.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1G")}
		}, map[string]string{EnvLambdaMemory: "953"}},
		{"the handler and task root come from delivery.lambda", func(c *millracev1.Consumer) {
			c.Spec.Delivery.Lambda = &millracev1.LambdaSpec{Handler: "index.handler", TaskRoot: "/app"}
			c.Spec.Template.Spec.Containers[0].Env = append(c.Spec.Template.Spec.Containers[0].Env, corev1.EnvVar{Name: EnvLambdaTaskRoot, Value: "/old"})
		}, map[string]string{EnvLambdaHandler: "index.handler", EnvLambdaTaskRoot: "/app"}},
		{"the template's TZ, task root and handler are kept when delivery.lambda says nothing", func(c *millracev1.Consumer) {
			c.Spec.Template.Spec.Containers[0].Env = append(c.Spec.Template.Spec.Containers[0].Env,
				corev1.EnvVar{Name: EnvTZ, Value: "Europe/Paris"}, corev1.EnvVar{Name: EnvLambdaTaskRoot, Value: "/srv"}, corev1.EnvVar{Name: EnvLambdaHandler, Value: "app.handler"})
		}, map[string]string{EnvTZ: "Europe/Paris", EnvLambdaTaskRoot: "/srv", EnvLambdaHandler: "app.handler"}},
		{"the platform's variables replace the template's", func(c *millracev1.Consumer) {
			c.Spec.Template.Spec.Containers[0].Env = append(c.Spec.Template.Spec.Containers[0].Env,
				corev1.EnvVar{Name: EnvLambdaVersion, Value: "7"}, corev1.EnvVar{Name: EnvLambdaName, Value: "other"})
		}, map[string]string{EnvLambdaVersion: "$LATEST", EnvLambdaName: "billing", EnvRegion: "us-east-1"}},
		{"concurrency 1 asks for no multi-concurrency", func(c *millracev1.Consumer) {
			c.Spec.Delivery.Concurrency = 1
			c.Spec.Template.Spec.Containers[0].Env = append(c.Spec.Template.Spec.Containers[0].Env, corev1.EnvVar{Name: EnvLambdaMaxConcurrency, Value: "8"})
		}, map[string]string{EnvLambdaMaxConcurrency: absent}},
		{"mode HTTP sets none of them", func(c *millracev1.Consumer) { c.Spec.Delivery.Mode = millracev1.DeliveryHTTP }, map[string]string{
			EnvLambdaAPI: absent, EnvLambdaVersion: absent, EnvLambdaMemory: absent, EnvTZ: absent, EnvLambdaTaskRoot: absent, EnvLambdaMaxConcurrency: absent, EnvRegion: "stale",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := sample(millracev1.DeliveryLambdaRuntime)
			if tc.change != nil {
				tc.change(c)
			}
			h := Render(c, 1, target, Options{DispatcherImage: "d"}).Spec.Template.Spec.Containers[0]
			got := env(h)
			for k, want := range tc.want {
				v, ok := got[k]
				if !ok {
					v = absent
				}
				if v != want {
					t.Errorf("%s = %q, want %q", k, v, want)
				}
			}
			if c.Spec.Delivery.Mode == millracev1.DeliveryLambdaRuntime {
				stream := slices.IndexFunc(h.Env, func(e corev1.EnvVar) bool { return e.Name == EnvLambdaLogStream })
				if stream < 0 || h.Env[stream].ValueFrom == nil || h.Env[stream].ValueFrom.FieldRef.FieldPath != "metadata.name" {
					t.Errorf("%s must be the pod's name: %+v", EnvLambdaLogStream, h.Env)
				}
			}
		})
	}
}

// Points 1 and 3: the handler container's liveness probe (LambdaRuntime) and preStop hook (every
// mode with a dispatcher) point at the dispatcher.
func TestRenderPointsTheHandlersProbeAndPreStopAtTheDispatcher(t *testing.T) {
	cases := []struct {
		name          string
		mode          millracev1.DeliveryMode
		change        func(*millracev1.Consumer)
		liveness      string // path, "" for none rendered, "user" for the user's
		preStop       string // path, "" for none, "user" for the user's
		sidecarInject bool
	}{
		{"a lambda runtime is restarted after a timeout and drains first", millracev1.DeliveryLambdaRuntime, nil, HandlerHealthPath, DrainPath, true},
		{"an HTTP handler drains first and keeps its own liveness", millracev1.DeliveryHTTP, nil, "", DrainPath, true},
		{"mode None has neither", millracev1.DeliveryNone, func(c *millracev1.Consumer) {
			c.Spec.Delivery.BatchWindow, c.Spec.Delivery.ReportBatchItemFailures, c.Spec.Delivery.FailureBackoff = nil, nil, nil
		}, "", "", false},
		{"the user's own probe and hook are kept", millracev1.DeliveryLambdaRuntime, func(c *millracev1.Consumer) {
			h := &c.Spec.Template.Spec.Containers[0]
			h.LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}
			h.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}
		}, "user", "user", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := sample(tc.mode)
			if tc.change != nil {
				tc.change(c)
			}
			spec := Render(c, 1, target, Options{DispatcherImage: "d"}).Spec.Template.Spec
			h := spec.Containers[0]
			switch p := h.LivenessProbe; {
			case tc.liveness == "" && p != nil, tc.liveness == "user" && (p == nil || p.Exec == nil):
				t.Fatalf("liveness probe %+v, want %q", p, tc.liveness)
			case tc.liveness != "" && tc.liveness != "user":
				if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != tc.liveness || p.HTTPGet.Port.IntValue() != DispatcherHealthPort || p.FailureThreshold != 1 {
					t.Fatalf("liveness probe %+v, want GET %s on the dispatcher's port, failing at once", p, tc.liveness)
				}
			}
			var hook *corev1.LifecycleHandler
			if h.Lifecycle != nil {
				hook = h.Lifecycle.PreStop
			}
			switch {
			case tc.preStop == "" && hook != nil, tc.preStop == "user" && (hook == nil || hook.Exec == nil):
				t.Fatalf("preStop %+v, want %q", hook, tc.preStop)
			case tc.preStop != "" && tc.preStop != "user":
				if hook == nil || hook.HTTPGet == nil || hook.HTTPGet.Path != tc.preStop || hook.HTTPGet.Port.IntValue() != DispatcherHealthPort {
					t.Fatalf("preStop %+v, want GET %s on the dispatcher's port", hook, tc.preStop)
				}
				side := env(spec.InitContainers[len(spec.InitContainers)-1])
				if len(hook.HTTPGet.HTTPHeaders) != 1 || hook.HTTPGet.HTTPHeaders[0].Name != DrainTokenHeader || hook.HTTPGet.HTTPHeaders[0].Value == "" ||
					hook.HTTPGet.HTTPHeaders[0].Value != side[EnvDrainToken] {
					t.Fatalf("preStop headers %+v, dispatcher token %q: the hook must carry the dispatcher's drain token", hook.HTTPGet.HTTPHeaders, side[EnvDrainToken])
				}
				if side[EnvFunctionName] != "billing" {
					t.Fatalf("dispatcher %s = %q", EnvFunctionName, side[EnvFunctionName])
				}
			}
		})
	}
	a, b := sample(millracev1.DeliveryHTTP), sample(millracev1.DeliveryHTTP)
	b.UID = "uid-2"
	if env(Render(a, 1, target, Options{}).Spec.Template.Spec.InitContainers[1])[EnvDrainToken] ==
		env(Render(b, 1, target, Options{}).Spec.Template.Spec.InitContainers[1])[EnvDrainToken] {
		t.Fatal("two Consumers share a drain token")
	}
}

// Without IRSA or Pod Identity (kind, a real node with an emulator) the dispatcher needs an
// identity from the template: its env and envFrom carry over, the platform's settings win, and
// nothing else of it does (image, command, security context).
func TestATemplateDispatcherGivesTheInjectedOneItsCredentials(t *testing.T) {
	c := sample(millracev1.DeliveryHTTP)
	c.Spec.Template.Spec.InitContainers = append(c.Spec.Template.Spec.InitContainers, corev1.Container{
		Name: DispatcherName, Image: "evil:1", Command: []string{"/bin/sh"},
		EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "aws-keys"}}}},
		Env:     []corev1.EnvVar{{Name: "AWS_EC2_METADATA_DISABLED", Value: "true"}, {Name: EnvQueueURL, Value: "http://elsewhere/q"}},
	})
	d := Render(c, 1, target, Options{DispatcherImage: "dispatcher:v1"})
	inits := d.Spec.Template.Spec.InitContainers
	if len(inits) != 2 || inits[1].Name != DispatcherName {
		t.Fatalf("init containers %v: one dispatcher, after the user's", inits)
	}
	side := inits[1]
	if side.Image != "dispatcher:v1" || side.Command != nil || side.SecurityContext == nil || !*side.SecurityContext.ReadOnlyRootFilesystem {
		t.Fatalf("the template's dispatcher changed more than its environment: %+v", side)
	}
	if len(side.EnvFrom) != 1 || side.EnvFrom[0].SecretRef.Name != "aws-keys" {
		t.Fatalf("envFrom %+v, want the template's Secret", side.EnvFrom)
	}
	if e := env(side); e["AWS_EC2_METADATA_DISABLED"] != "true" || e[EnvQueueURL] != target.QueueURL || e[EnvDrainToken] == "" {
		t.Fatalf("env %v: the template's variables with the platform's winning", e)
	}
}
