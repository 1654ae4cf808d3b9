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
	EnvSQSEndpoint = "AWS_ENDPOINT_URL_SQS"
	EnvLambdaAPI   = "AWS_LAMBDA_RUNTIME_API"
	EnvLambdaName  = "AWS_LAMBDA_FUNCTION_NAME"
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
				tmpl.Spec.Containers[i].Env = setEnv(tmpl.Spec.Containers[i].Env,
					corev1.EnvVar{Name: EnvLambdaAPI, Value: RuntimeAPIAddress},
					corev1.EnvVar{Name: EnvLambdaName, Value: c.Name},
					corev1.EnvVar{Name: EnvRegion, Value: t.Region})
			}
		}
		tmpl.Spec.InitContainers = append(removeContainer(tmpl.Spec.InitContainers, DispatcherName), dispatcher(c, t, o))
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

func dispatcher(c *millracev1.Consumer, t Target, o Options) corev1.Container {
	d := c.Spec.Delivery
	env := append(queueEnv(c, t),
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
