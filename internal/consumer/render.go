// Package consumer renders a Consumer's Deployment — the user's pod template plus the dispatcher as
// a native sidecar (or, for delivery mode None, only the queue's coordinates as environment) — and
// converts a Consumer's scaling spec to the typed policy of internal/scaling. Pure functions, tested
// without a cluster.
package consumer

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
)

// Names and environment variables shared with the dispatcher.
const (
	LabelConsumer     = "millrace.io/consumer"
	AnnotationHash    = "millrace.io/rendered-hash"
	DispatcherName    = "millrace-dispatcher"
	RuntimeAPIAddress = "127.0.0.1:9001"
	// DispatcherHealthPort serves the dispatcher's /healthz, /readyz and /metrics.
	DispatcherHealthPort = 9097

	EnvQueueURL                = "MILLRACE_QUEUE_URL"
	EnvQueueARN                = "MILLRACE_QUEUE_ARN"
	EnvQueueFIFO               = "MILLRACE_QUEUE_FIFO"
	EnvConsumer                = "MILLRACE_CONSUMER"
	EnvDeliveryMode            = "MILLRACE_DELIVERY_MODE"
	EnvHandlerURL              = "MILLRACE_HANDLER_URL"
	EnvBatchSize               = "MILLRACE_BATCH_SIZE"
	EnvBatchWindow             = "MILLRACE_BATCH_WINDOW"
	EnvConcurrency             = "MILLRACE_CONCURRENCY"
	EnvHandlerTimeout          = "MILLRACE_HANDLER_TIMEOUT"
	EnvReportBatchItemFailures = "MILLRACE_REPORT_BATCH_ITEM_FAILURES"
	EnvRuntimeAPIAddress       = "MILLRACE_RUNTIME_API_ADDRESS"
	EnvHealthAddress           = "MILLRACE_HEALTH_ADDRESS"
	EnvCallbackURL             = "MILLRACE_CALLBACK_URL"
	EnvFailureBackoff          = "MILLRACE_FAILURE_BACKOFF"
	EnvRegion                  = "AWS_REGION"
	// EnvSQSEndpoint is the AWS SDKs' standard service-specific endpoint override.
	EnvSQSEndpoint  = "AWS_ENDPOINT_URL_SQS"
	EnvFunctionName = "MILLRACE_FUNCTION_NAME"
	// EnvDrainToken is the secret the dispatcher's /drain endpoint wants in DrainTokenHeader.
	EnvDrainToken    = "MILLRACE_DRAIN_TOKEN"
	DrainTokenHeader = "Millrace-Drain-Token"
	// DrainPath and HandlerHealthPath are the dispatcher's endpoints for the handler container's
	// preStop hook and liveness probe, on DispatcherHealthPort.
	DrainPath         = "/drain"
	HandlerHealthPath = "/healthz/handler"

	// Lambda's reserved environment variables that a runtime reads (Lambda's "defined runtime
	// environment variables").
	EnvLambdaAPI            = "AWS_LAMBDA_RUNTIME_API"
	EnvLambdaName           = "AWS_LAMBDA_FUNCTION_NAME"
	EnvLambdaVersion        = "AWS_LAMBDA_FUNCTION_VERSION"
	EnvLambdaMemory         = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"
	EnvLambdaLogGroup       = "AWS_LAMBDA_LOG_GROUP_NAME"
	EnvLambdaLogStream      = "AWS_LAMBDA_LOG_STREAM_NAME"
	EnvLambdaInitType       = "AWS_LAMBDA_INITIALIZATION_TYPE"
	EnvLambdaMaxConcurrency = "AWS_LAMBDA_MAX_CONCURRENCY"
	EnvLambdaHandler        = "_HANDLER"
	EnvLambdaTaskRoot       = "LAMBDA_TASK_ROOT"
	EnvDefaultRegion        = "AWS_DEFAULT_REGION"
	EnvTZ                   = "TZ"

	// LambdaVersion is the function version a runtime sees (an unpublished function's).
	LambdaVersion = "$LATEST"
	// LambdaMemoryDefault is the memory size, in MiB, reported to a container without a memory
	// limit (Lambda's default function memory).
	LambdaMemoryDefault = 128
	// LambdaTaskRootDefault is Lambda's LAMBDA_TASK_ROOT.
	LambdaTaskRootDefault = "/var/task"
)

// DrainMargin is added to the handler timeout for the pod's termination grace period: an in-flight
// batch may take the whole timeout, and the dispatcher then needs a moment to delete or release.
const DrainMargin = 15 * time.Second

// Target is what the Consumer's Queue resolved to.
type Target struct {
	QueueURL string
	QueueARN string
	FIFO     bool
	Region   string
	Endpoint string
}

// Options are the manager's settings for rendering.
type Options struct {
	DispatcherImage string
	// CallbackURL is the manager's task callback API, handed to dispatchers (empty: none).
	CallbackURL string
}

// Render returns the Deployment for a Consumer with the given replica count. Its
// millrace.io/rendered-hash annotation covers everything but the replica count, so the caller can
// tell a change that rolls pods from a scale decision.
func Render(c *millracev1.Consumer, replicas int32, t Target, o Options) *appsv1.Deployment {
	selector := map[string]string{LabelConsumer: c.Name}
	labels := map[string]string{
		"app.kubernetes.io/name":       c.Name,
		"app.kubernetes.io/component":  "consumer",
		"app.kubernetes.io/managed-by": "millrace",
		LabelConsumer:                  c.Name,
	}
	tmpl := *c.Spec.Template.DeepCopy()
	tmpl.Labels = merge(tmpl.Labels, labels)
	d := c.Spec.Delivery
	switch d.Mode {
	case millracev1.DeliveryNone:
		for i := range tmpl.Spec.Containers {
			tmpl.Spec.Containers[i].Env = setEnv(tmpl.Spec.Containers[i].Env, queueEnv(c, t)...)
		}
	default:
		if d.Mode == millracev1.DeliveryLambdaRuntime {
			for i := range tmpl.Spec.Containers {
				lambdaEnv(c, t, &tmpl.Spec.Containers[i])
			}
			if len(tmpl.Spec.Containers) > 0 && tmpl.Spec.Containers[0].LivenessProbe == nil {
				tmpl.Spec.Containers[0].LivenessProbe = handlerLiveness()
			}
		}
		for i := range tmpl.Spec.Containers {
			if ctr := &tmpl.Spec.Containers[i]; ctr.Lifecycle == nil || ctr.Lifecycle.PreStop == nil {
				ctr.Lifecycle = preStopDrain(ctr.Lifecycle, drainToken(c))
			}
		}
		dispatcher := dispatcher(c, t, o)
		if i := slices.IndexFunc(tmpl.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == DispatcherName }); i >= 0 {
			// The template's own millrace-dispatcher gives the injected one its identity where no
			// IRSA or Pod Identity webhook does (e.g. envFrom a Secret of AWS keys); the
			// platform's variables win.
			own := tmpl.Spec.InitContainers[i]
			dispatcher.EnvFrom = own.EnvFrom
			dispatcher.Env = setEnv(own.Env, dispatcher.Env...)
		}
		tmpl.Spec.InitContainers = append(removeContainer(tmpl.Spec.InitContainers, DispatcherName), dispatcher)
	}
	grace := int64((d.Timeout.Duration() + DrainMargin) / time.Second)
	if tmpl.Spec.TerminationGracePeriodSeconds == nil || *tmpl.Spec.TerminationGracePeriodSeconds < grace {
		tmpl.Spec.TerminationGracePeriodSeconds = &grace
	}

	dep := &appsv1.Deployment{
		TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      c.Name,
			Namespace: c.Namespace,
			Labels:    labels,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion:         millracev1.GroupVersion.String(),
				Kind:               "Consumer",
				Name:               c.Name,
				UID:                c.UID,
				Controller:         ptr.To(true),
				BlockOwnerDeletion: ptr.To(true),
			}},
		},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: selector},
			Template: tmpl,
		},
	}
	dep.Annotations = map[string]string{AnnotationHash: hash(dep)}
	dep.Spec.Replicas = ptr.To(replicas)
	return dep
}

func queueEnv(c *millracev1.Consumer, t Target) []corev1.EnvVar {
	env := []corev1.EnvVar{
		{Name: EnvQueueURL, Value: t.QueueURL},
		{Name: EnvQueueARN, Value: t.QueueARN},
		{Name: EnvQueueFIFO, Value: strconv.FormatBool(t.FIFO)},
		{Name: EnvConsumer, Value: c.Namespace + "/" + c.Name},
		{Name: EnvRegion, Value: t.Region},
	}
	if t.Endpoint != "" {
		env = append(env, corev1.EnvVar{Name: EnvSQSEndpoint, Value: t.Endpoint})
	}
	return env
}

// lambdaEnv sets on a handler container the environment Lambda gives a runtime: Lambda's reserved
// variables that mean something on Kubernetes replace the template's (as on Lambda, where they
// cannot be set), and TZ, _HANDLER and LAMBDA_TASK_ROOT are defaults the template may set itself.
// Left out: credentials (the pod's identity provides them), AWS_EXECUTION_ENV and
// LAMBDA_RUNTIME_DIR (set by the image's runtime), _X_AMZN_TRACE_ID (per invocation, sent in
// Lambda-Runtime-Trace-Id).
func lambdaEnv(c *millracev1.Consumer, t Target, ctr *corev1.Container) {
	d := c.Spec.Delivery
	memory := int64(LambdaMemoryDefault)
	if limit, ok := ctr.Resources.Limits[corev1.ResourceMemory]; ok && limit.Value() >= 1<<20 {
		memory = limit.Value() >> 20
	}
	vars := []corev1.EnvVar{
		{Name: EnvLambdaAPI, Value: RuntimeAPIAddress},
		{Name: EnvLambdaName, Value: c.Name},
		{Name: EnvLambdaVersion, Value: LambdaVersion},
		{Name: EnvLambdaMemory, Value: strconv.FormatInt(memory, 10)},
		{Name: EnvLambdaLogGroup, Value: "/aws/lambda/" + c.Name},
		// One stream per pod, as Lambda has one per execution environment.
		{Name: EnvLambdaLogStream, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		{Name: EnvLambdaInitType, Value: "on-demand"},
		{Name: EnvRegion, Value: t.Region},
		{Name: EnvDefaultRegion, Value: t.Region},
	}
	if d.Concurrency > 1 {
		// A runtime that supports it polls /next with this many workers (Lambda Managed
		// Instances' multi-concurrency); one that does not serves one invocation at a time, and
		// the dispatcher warns.
		vars = append(vars, corev1.EnvVar{Name: EnvLambdaMaxConcurrency, Value: strconv.Itoa(int(d.Concurrency))})
	}
	ctr.Env = setEnv(ctr.Env, vars...)
	if d.Concurrency <= 1 {
		ctr.Env = slices.DeleteFunc(ctr.Env, func(e corev1.EnvVar) bool { return e.Name == EnvLambdaMaxConcurrency })
	}
	if l := d.Lambda; l != nil && l.Handler != "" {
		ctr.Env = setEnv(ctr.Env, corev1.EnvVar{Name: EnvLambdaHandler, Value: l.Handler})
	}
	if l := d.Lambda; l != nil && l.TaskRoot != "" {
		ctr.Env = setEnv(ctr.Env, corev1.EnvVar{Name: EnvLambdaTaskRoot, Value: l.TaskRoot})
	}
	for _, v := range []corev1.EnvVar{{Name: EnvTZ, Value: ":UTC"}, {Name: EnvLambdaTaskRoot, Value: LambdaTaskRootDefault}} {
		if !slices.ContainsFunc(ctr.Env, func(e corev1.EnvVar) bool { return e.Name == v.Name }) {
			ctr.Env = append(ctr.Env, v)
		}
	}
}

// handlerLiveness is the handler container's liveness probe in mode LambdaRuntime: the dispatcher
// fails it once after an invocation timed out, and the kubelet restarts the container as Lambda
// starts a fresh environment. One failure is enough (the dispatcher reports it once); the old
// runtime gets a short grace period, as it may be stuck in the timed-out invocation.
func handlerLiveness() *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:                  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: HandlerHealthPath, Port: intstr.FromInt32(DispatcherHealthPort)}},
		PeriodSeconds:                 5,
		FailureThreshold:              1,
		TerminationGracePeriodSeconds: ptr.To[int64](2),
	}
}

// preStopDrain adds a preStop hook that asks the dispatcher to drain: the kubelet stops the
// handler containers before the dispatcher (a native sidecar stops last), so without it the
// handler would get SIGTERM in the middle of a batch. The hook returns once in-flight batches are
// settled and the rest released, within the pod's termination grace period.
func preStopDrain(l *corev1.Lifecycle, token string) *corev1.Lifecycle {
	if l == nil {
		l = &corev1.Lifecycle{}
	}
	l.PreStop = &corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{
		Path: DrainPath, Port: intstr.FromInt32(DispatcherHealthPort),
		HTTPHeaders: []corev1.HTTPHeader{{Name: DrainTokenHeader, Value: token}},
	}}
	return l
}

// drainToken is what the dispatcher's /drain endpoint wants: derived from the Consumer's UID, which
// only readers of the namespace see, so that a pod of another namespace that can reach the
// dispatcher's port cannot stop it consuming.
func drainToken(c *millracev1.Consumer) string {
	sum := sha256.Sum256([]byte("millrace-drain/" + string(c.UID)))
	return hex.EncodeToString(sum[:16])
}

func dispatcher(c *millracev1.Consumer, t Target, o Options) corev1.Container {
	d := c.Spec.Delivery
	env := append(queueEnv(c, t),
		corev1.EnvVar{Name: EnvFunctionName, Value: c.Name},
		corev1.EnvVar{Name: EnvDrainToken, Value: drainToken(c)},
		corev1.EnvVar{Name: EnvDeliveryMode, Value: string(d.Mode)},
		corev1.EnvVar{Name: EnvBatchSize, Value: strconv.Itoa(int(d.BatchSize))},
		corev1.EnvVar{Name: EnvConcurrency, Value: strconv.Itoa(int(d.Concurrency))},
		corev1.EnvVar{Name: EnvHandlerTimeout, Value: d.Timeout.Duration().String()},
		corev1.EnvVar{Name: EnvReportBatchItemFailures, Value: strconv.FormatBool(ptr.Deref(d.ReportBatchItemFailures, false))},
		corev1.EnvVar{Name: EnvHealthAddress, Value: fmt.Sprintf(":%d", DispatcherHealthPort)},
	)
	if o.CallbackURL != "" {
		env = append(env, corev1.EnvVar{Name: EnvCallbackURL, Value: o.CallbackURL})
	}
	if d.BatchWindow != nil {
		env = append(env, corev1.EnvVar{Name: EnvBatchWindow, Value: d.BatchWindow.Duration().String()})
	}
	if d.FailureBackoff != nil {
		env = append(env, corev1.EnvVar{Name: EnvFailureBackoff, Value: d.FailureBackoff.Duration().String()})
	}
	if d.Mode == millracev1.DeliveryLambdaRuntime {
		env = append(env, corev1.EnvVar{Name: EnvRuntimeAPIAddress, Value: RuntimeAPIAddress})
	} else {
		env = append(env, corev1.EnvVar{Name: EnvHandlerURL, Value: fmt.Sprintf("http://127.0.0.1:%d%s", d.Port, d.Path)})
	}
	return corev1.Container{
		Name:          DispatcherName,
		Image:         o.DispatcherImage,
		RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways),
		Env:           env,
		Ports:         []corev1.ContainerPort{{Name: "dispatcher", ContainerPort: DispatcherHealthPort}},
		// Not ready while SQS cannot be reached (repeated receive failures).
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromInt32(DispatcherHealthPort)}},
			PeriodSeconds: 5,
		},
		LivenessProbe: &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(DispatcherHealthPort)}},
			PeriodSeconds:    10,
			FailureThreshold: 3,
		},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")},
		},
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr.To(false),
			ReadOnlyRootFilesystem:   ptr.To(true),
			RunAsNonRoot:             ptr.To(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}
}

// setEnv sets variables in an env list, replacing same-named ones (the platform's values win over
// a template's, so a stale copy cannot point the handler at another queue).
func setEnv(env []corev1.EnvVar, vars ...corev1.EnvVar) []corev1.EnvVar {
	for _, v := range vars {
		replaced := false
		for i := range env {
			if env[i].Name == v.Name {
				env[i] = v
				replaced = true
			}
		}
		if !replaced {
			env = append(env, v)
		}
	}
	return env
}

func removeContainer(cs []corev1.Container, name string) []corev1.Container {
	out := cs[:0:0]
	for _, c := range cs {
		if c.Name != name {
			out = append(out, c)
		}
	}
	return out
}

func merge(a, b map[string]string) map[string]string {
	out := maps.Clone(a)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, b)
	return out
}

func hash(d *appsv1.Deployment) string {
	b, _ := json.Marshal(struct {
		Labels   map[string]string
		Owners   []metav1.OwnerReference
		Selector *metav1.LabelSelector
		Template corev1.PodTemplateSpec
	}{d.Labels, d.OwnerReferences, d.Spec.Selector, d.Spec.Template})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}
