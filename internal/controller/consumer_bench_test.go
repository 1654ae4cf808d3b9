package controller_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
)

// BenchmarkConsumerReactionTime measures the time from a backlog appearing in SQS to the
// Deployment's spec.replicas being raised, with pollInterval and idlePollInterval 1s, over 20 trials. The baseline is the
// same path without Millrace, in the same run: a bare SDK loop that reads the queue every second and
// patches the Deployment's replicas when it sees messages.
func BenchmarkConsumerReactionTime(b *testing.B) {
	const trials = 20
	t := b
	ns := newNamespace(t)
	create(t, newQueue(ns, "react", millracev1.QueueSpec{}))
	q := waitReadyQueue(t, ns, "react")
	scaling := fastScaling(0)
	scaling.ScaleToZeroDelay = "0s"
	// Each trial starts at zero replicas, where the queue is read every idlePollInterval (default
	// 30s since issue 15): measure the reaction at 1s, as before.
	scaling.IdlePollInterval = dur("1s")
	create(t, newConsumer(ns, "reactor", "react", scaling))
	waitReplicas(t, ns, "reactor", 0, waitReady)
	if t.Failed() {
		b.Fatal("setup failed")
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		millrace := measureReactions(b, trials, q.Status.QueueURL, ns, "reactor")
		baseline := baselineReactions(b, trials, q.Status.QueueURL, ns)
		report(b, "millrace", millrace)
		report(b, "baseline", baseline)
		b.ReportMetric(percentile(millrace, 95).Seconds()/percentile(baseline, 95).Seconds(), "p95-millrace/baseline")
	}
}

func measureReactions(b *testing.B, trials int, url, ns, name string) []time.Duration {
	var out []time.Duration
	for i := 0; i < trials; i++ {
		// Start each trial at a random phase of the poll interval.
		time.Sleep(time.Duration(i%10) * 100 * time.Millisecond)
		start := time.Now()
		sendOne(b, url)
		waitDeployment(b, ns, name, func(n int32) bool { return n > 0 })
		out = append(out, time.Since(start))
		purge(b, url)
		waitDeployment(b, ns, name, func(n int32) bool { return n == 0 })
	}
	return out
}

// baselineReactions runs a bare SDK loop against its own Deployment: GetQueueAttributes every
// second, patch replicas to 1 when anything is visible.
func baselineReactions(b *testing.B, trials int, url, ns string) []time.Duration {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dep := &appsv1.Deployment{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "reactor"}, dep); err != nil {
		b.Fatal(err)
	}
	base := &appsv1.Deployment{ObjectMeta: dep.ObjectMeta, Spec: dep.Spec}
	base.ObjectMeta = metaOnly(ns, "baseline")
	base.Spec.Replicas = ptr.To[int32](0)
	if err := k8s.Create(ctx, base); err != nil {
		b.Fatal(err)
	}
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			out, err := sqsClient.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
				AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages}})
			if err == nil {
				want := int32(0)
				if out.Attributes["ApproximateNumberOfMessages"] != "0" {
					want = 1
				}
				patch := client.MergeFrom(base.DeepCopy())
				base.Spec.Replicas = ptr.To(want)
				_ = k8s.Patch(ctx, base, patch)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	var out []time.Duration
	for i := 0; i < trials; i++ {
		time.Sleep(time.Duration(i%10) * 100 * time.Millisecond)
		start := time.Now()
		sendOne(b, url)
		waitDeployment(b, ns, "baseline", func(n int32) bool { return n > 0 })
		out = append(out, time.Since(start))
		purge(b, url)
		waitDeployment(b, ns, "baseline", func(n int32) bool { return n == 0 })
	}
	cancel()
	_ = k8s.Delete(context.Background(), base)
	return out
}

// BenchmarkSQSCallsPerQueue counts the depth readings (GetQueueAttributes) of one queue per minute
// with 1, 10 and 100 Consumers on it (pollInterval 1s), against the baseline of one poller per
// Consumer at the same interval (what one KEDA ScaledObject per workload does).
func BenchmarkSQSCallsPerQueue(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("consumers=%d", n), func(b *testing.B) {
			t := b
			ns := newNamespace(t)
			create(t, newQueue(ns, "busy", millracev1.QueueSpec{}))
			q := waitReadyQueue(t, ns, "busy")
			for i := 0; i < n; i++ {
				create(t, newConsumer(ns, fmt.Sprintf("c%d", i), "busy", fastScaling(0)))
			}
			if t.Failed() {
				b.Fatal("setup failed")
			}
			for i := 0; i < n; i++ { // every Consumer has reconciled (and subscribed) once
				waitReplicas(t, ns, fmt.Sprintf("c%d", i), 0, time.Minute)
			}
			time.Sleep(2 * time.Second)
			polls := monitor.Polls().WithLabelValues(q.Status.QueueName, "ok")
			const window = 10 * time.Second
			for i := 0; i < b.N; i++ {
				before := testutil.ToFloat64(polls)
				time.Sleep(window)
				perMinute := (testutil.ToFloat64(polls) - before) * float64(time.Minute/window)
				baseline := float64(n) * 60 // one call per Consumer per 1s poll
				b.ReportMetric(perMinute, "millrace-calls/min")
				b.ReportMetric(baseline, "baseline-calls/min")
				b.ReportMetric(perMinute/baseline, "millrace/baseline")
			}
		})
	}
}

func sendOne(b *testing.B, url string) {
	if _, err := sqsClient.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("x")}); err != nil {
		b.Fatal(err)
	}
}

func purge(b *testing.B, url string) {
	if _, err := sqsClient.PurgeQueue(context.Background(), &sqs.PurgeQueueInput{QueueUrl: aws.String(url)}); err != nil {
		b.Fatal(err)
	}
}

func waitDeployment(b *testing.B, ns, name string, ok func(int32) bool) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		d := &appsv1.Deployment{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, d); err == nil && ok(ptr.Deref(d.Spec.Replicas, 0)) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.Fatalf("deployment %s/%s did not reach the expected replicas", ns, name)
}

func report(b *testing.B, name string, ds []time.Duration) {
	b.ReportMetric(percentile(ds, 50).Seconds(), name+"-p50-s")
	b.ReportMetric(percentile(ds, 95).Seconds(), name+"-p95-s")
}

func percentile(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}
