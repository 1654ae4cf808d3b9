// Package demo is the flow of `make dev` and of the end-to-end tests (a development harness): with
// the samples applied on a local control plane, it sends a burst of orders and a poison message,
// shows the backlog rising, the billing Consumer scaling up, its handlers draining the queue, the
// poison message landing in the dead-letter queue and the replicas returning to zero, then runs
// the order Workflow, whose Charge task wakes the Consumer from zero again. It writes a chart of
// backlog and replicas over time and a picture of the finished WorkflowRun.
package demo

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/hack/localnodes"
	"github.com/millrace-io/millrace/internal/asl"
	"github.com/millrace-io/millrace/internal/graph"
)

// Options of a demo run.
type Options struct {
	Client    client.Client
	SQS       *sqs.Client
	Runner    *localnodes.Runner
	Namespace string
	Orders    int // sent in Waves, a second apart (the backlog rises while the handlers work)
	Waves     int
	OutDir    string
	Out       io.Writer
	Timeout   time.Duration
	// Running and Handled observe the replicas where they are not Runner's processes (real pods):
	// how many replicas of a Consumer run now, and message id -> times handled. Default: Runner's.
	Running func(namespace, consumer string) int
	Handled func() map[string]int
}

// Result is what the demo observed.
type Result struct {
	Sent          []string       // message ids of the orders sent
	Poison        string         // message id of the poison message
	Handled       map[string]int // message id -> times handled (from the handlers' record)
	MaxReplicas   int
	FinalReplicas int
	InDLQ         []string // message ids found in the dead-letter queue
	Run           *millracev1.WorkflowRun
	Samples       []Sample
	Files         []string
	// Burst is when the first message was sent; Drained when the queue was first seen empty (no
	// message visible or in flight) with every order sent and handled.
	Burst, Drained time.Time

	mu sync.Mutex // Sent and Poison while the orders are being sent
}

const consumerName, queueName, dlqName, runName = "billing", "orders", "orders-dlq", "order-1"

// Run runs the demo. The caller runs o.Runner (and decides how long the replicas outlive the demo).
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Orders == 0 {
		o.Orders = 240
	}
	if o.Waves == 0 {
		o.Waves = 8
	}
	if o.Timeout == 0 {
		o.Timeout = 4 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	res := &Result{Handled: map[string]int{}}
	if o.Running == nil {
		o.Running = o.Runner.Running
	}
	if o.Handled == nil {
		record := filepath.Join(o.Runner.LogDir, consumerName+".handled")
		o.Handled = func() map[string]int { return readHandled(record) }
	}
	say := func(format string, a ...any) { fmt.Fprintf(o.Out, "\n\033[1m== "+format+"\033[0m\n", a...) }

	queueURL, err := o.queueURL(ctx, queueName)
	if err != nil {
		return nil, err
	}
	dlqURL, err := o.queueURL(ctx, dlqName)
	if err != nil {
		return nil, err
	}
	say("demo settings for the billing Consumer: poll every 1s (also at zero), scale to zero after 5s idle, scale down within 3s, failed messages back after 1s")
	patch := []byte(`{"spec":{"delivery":{"failureBackoff":"1s","concurrency":2},"scaling":{"pollInterval":"1s","idlePollInterval":"1s","scaleToZeroDelay":"5s",` +
		`"behavior":{"scaleDown":{"stabilizationWindow":"3s","policies":[{"type":"Percent","value":100,"period":"3s"}]}}}}}`)
	c := &millracev1.Consumer{ObjectMeta: metav1.ObjectMeta{Namespace: o.Namespace, Name: consumerName}}
	if err := o.Client.Patch(ctx, c, client.RawPatch(k8stypes.MergePatchType, patch)); err != nil {
		return nil, fmt.Errorf("patching Consumer %s: %w", consumerName, err)
	}

	say("a burst: %d orders in %d seconds, and one poison message, arrive on queue %s", o.Orders, o.Waves, queueName)
	start := time.Now()
	res.Burst = start
	sent := make(chan error, 1)
	go func() { sent <- o.send(ctx, queueURL, res) }()
	fmt.Fprintln(o.Out, "   time  backlog  dead-letter  desired  running  handled                        the Consumer's last scaling decision")
	sample := func() (Sample, int, error) {
		backlog, err := o.depth(ctx, queueURL, true)
		if err != nil {
			return Sample{}, 0, err
		}
		dlq, err := o.depth(ctx, dlqURL, true)
		if err != nil {
			return Sample{}, 0, err
		}
		_ = o.Client.Get(ctx, client.ObjectKeyFromObject(c), c)
		res.Handled = o.Handled()
		handled := 0
		res.mu.Lock()
		for _, id := range res.Sent {
			if res.Handled[id] > 0 {
				handled++
			}
		}
		total := o.Orders
		res.mu.Unlock()
		running := o.Running(o.Namespace, consumerName)
		res.MaxReplicas = max(res.MaxReplicas, running)
		s := Sample{T: time.Since(start).Seconds(), Backlog: backlog, Replicas: running, Processed: handled}
		res.Samples = append(res.Samples, s)
		fmt.Fprintf(o.Out, "  %4.0fs  %7d  %11d  %7d  %7d  %4d/%d %s  %s\n", s.T, backlog, dlq, c.Status.DesiredReplicas, running, handled, total,
			bar(handled, total), c.Status.LastScaleReason)
		return s, dlq, nil
	}
	sending := true
	for {
		if sending {
			select {
			case err := <-sent:
				if err != nil {
					return res, err
				}
				sending = false
			default:
			}
		}
		s, dlq, err := sample()
		if err != nil {
			return res, err
		}
		if !sending && s.Processed == o.Orders && s.Backlog == 0 && res.Drained.IsZero() {
			res.Drained = time.Now()
		}
		if !sending && s.Processed == o.Orders && dlq >= 1 && s.Backlog == 0 && s.Replicas == 0 {
			break
		}
		if err := sleep(ctx, time.Second); err != nil {
			return res, fmt.Errorf("the burst was not drained and scaled back to zero within %v", o.Timeout)
		}
	}
	if res.InDLQ, err = o.peek(ctx, dlqURL); err != nil {
		return res, err
	}
	fmt.Fprintf(o.Out, "every order handled; the poison message %s is in %s after 5 receives; the Consumer is back to zero replicas\n", res.Poison, dlqName)

	say("a WorkflowRun of the order Workflow: its Charge task wakes the billing Consumer from zero")
	run := &millracev1.WorkflowRun{ObjectMeta: metav1.ObjectMeta{Namespace: o.Namespace, Name: runName},
		Spec: millracev1.WorkflowRunSpec{WorkflowRef: millracev1.WorkflowReference{Name: "order"},
			Input: &apiextensionsv1.JSON{Raw: []byte(`{"id":"order-1","amount":10}`)}}}
	if err := o.Client.Create(ctx, run); err != nil {
		return res, err
	}
	lastState := ""
	for {
		if _, _, err := sample(); err != nil {
			return res, err
		}
		if err := o.Client.Get(ctx, client.ObjectKeyFromObject(run), run); err != nil {
			return res, err
		}
		if run.Status.CurrentState != lastState {
			fmt.Fprintf(o.Out, "         run %s: %s in %s\n", runName, run.Status.Phase, run.Status.CurrentState)
			lastState = run.Status.CurrentState
		}
		finished := run.Status.Phase == millracev1.RunSucceeded || run.Status.Phase == millracev1.RunFailed ||
			run.Status.Phase == millracev1.RunTimedOut || run.Status.Phase == millracev1.RunAborted
		if finished && o.Running(o.Namespace, consumerName) == 0 {
			break
		}
		if err := sleep(ctx, time.Second); err != nil {
			return res, fmt.Errorf("the WorkflowRun did not finish (phase %q) and the Consumer return to zero within %v", run.Status.Phase, o.Timeout)
		}
	}
	res.Run = run
	res.FinalReplicas = o.Running(o.Namespace, consumerName)
	for _, h := range run.Status.History {
		fmt.Fprintf(o.Out, "   %-8s %-10s %s\n", h.State, h.Type, h.Info)
	}
	if run.Status.Output != nil {
		fmt.Fprintf(o.Out, "output: %s\n", run.Status.Output.Raw)
	}
	return res, o.write(run, res)
}

func (o Options) write(run *millracev1.WorkflowRun, res *Result) error {
	if o.OutDir == "" {
		return nil
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return err
	}
	chart := filepath.Join(o.OutDir, "scaling.svg")
	if err := os.WriteFile(chart, []byte(ChartSVG("billing: backlog and replicas after a burst of orders", res.Samples)), 0o644); err != nil {
		return err
	}
	m, errs := asl.Parse(run.Status.Definition.Raw)
	if len(errs) > 0 {
		return fmt.Errorf("the run's definition: %v", errs[0])
	}
	h := graph.History{}
	for _, e := range run.Status.History {
		h.Transitions = append(h.Transitions, graph.Transition{State: e.State, Type: e.Type})
	}
	title := fmt.Sprintf("%s (%s)", run.Name, strings.ToLower(string(run.Status.Phase)))
	pic := filepath.Join(o.OutDir, run.Name+".svg")
	if err := os.WriteFile(pic, []byte(graph.SVG(graph.FromMachine(title, m, graph.Statuses(m, h)))), 0o644); err != nil {
		return err
	}
	res.Files = []string{chart, pic}
	return nil
}

func (o Options) queueURL(ctx context.Context, name string) (string, error) {
	q := &millracev1.Queue{}
	for {
		err := o.Client.Get(ctx, client.ObjectKey{Namespace: o.Namespace, Name: name}, q)
		if err == nil && q.Status.QueueURL != "" {
			return q.Status.QueueURL, nil
		}
		if sleep(ctx, 500*time.Millisecond) != nil {
			return "", fmt.Errorf("queue %s has no URL (is the manager running? %v)", name, err)
		}
	}
}

// send sends the poison message, then the orders in waves a second apart.
func (o Options) send(ctx context.Context, url string, res *Result) error {
	if err := o.sendBatch(ctx, url, []string{`{"poison":true}`}, res); err != nil {
		return err
	}
	perWave := (o.Orders + o.Waves - 1) / o.Waves
	start := time.Now()
	for w := 0; w*perWave < o.Orders; w++ {
		if err := sleep(ctx, time.Until(start.Add(time.Duration(w)*time.Second))); err != nil {
			return err
		}
		var wave []string
		for i := w * perWave; i < min((w+1)*perWave, o.Orders); i++ {
			wave = append(wave, fmt.Sprintf(`{"order":%d}`, i+1))
		}
		for i := 0; i < len(wave); i += 10 {
			if err := o.sendBatch(ctx, url, wave[i:min(i+10, len(wave))], res); err != nil {
				return err
			}
		}
	}
	return nil
}

func (o Options) sendBatch(ctx context.Context, url string, bodies []string, res *Result) error {
	var entries []types.SendMessageBatchRequestEntry
	for j, b := range bodies {
		entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(j)), MessageBody: aws.String(b)})
	}
	out, err := o.SQS.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
	if err != nil {
		return err
	}
	if len(out.Failed) > 0 {
		return fmt.Errorf("sending: %s", aws.ToString(out.Failed[0].Message))
	}
	res.mu.Lock()
	defer res.mu.Unlock()
	for _, s := range out.Successful {
		j, _ := strconv.Atoi(aws.ToString(s.Id))
		if bodies[j] == `{"poison":true}` {
			res.Poison = aws.ToString(s.MessageId)
		} else {
			res.Sent = append(res.Sent, aws.ToString(s.MessageId))
		}
	}
	return nil
}

func (o Options) depth(ctx context.Context, url string, inFlight bool) (int, error) {
	out, err := o.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []types.QueueAttributeName{
		types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		return 0, err
	}
	n, _ := strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessages)])
	if inFlight {
		f, _ := strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
		n += f
	}
	return n, nil
}

// peek lists the message ids in a queue without consuming them (visibility 0).
func (o Options) peek(ctx context.Context, url string) ([]string, error) {
	out, err := o.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10, VisibilityTimeout: 0, WaitTimeSeconds: 1})
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, m := range out.Messages {
		ids = append(ids, aws.ToString(m.MessageId))
	}
	return ids, nil
}

func readHandled(path string) map[string]int {
	out := map[string]int{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out[strings.TrimSpace(sc.Text())]++
	}
	return out
}

func bar(n, total int) string {
	if total == 0 {
		return ""
	}
	w := n * 20 / total
	return "[" + strings.Repeat("#", w) + strings.Repeat(".", 20-w) + "]"
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
