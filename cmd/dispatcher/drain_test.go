package main_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/millrace-io/millrace/internal/consumer"
	"github.com/millrace-io/millrace/internal/testenv"
)

// dispatcherProcess is cmd/dispatcher run as a process, its log collected.
type dispatcherProcess struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	log    []string
	exited chan error
}

func startDispatcher(t *testing.T, env []string, args ...string) *dispatcherProcess {
	t.Helper()
	bin := filepath.Join(testenv.Build(t, "./cmd/dispatcher"), "dispatcher")
	p := &dispatcherProcess{cmd: exec.Command(bin, append(args, "--health-address", "127.0.0.1:0", "--wait-time", "1s", "--region", "us-east-1")...), exited: make(chan error, 1)}
	p.cmd.Env = append(append(os.Environ(), "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_EC2_METADATA_DISABLED=true"), env...)
	stderr, _ := p.cmd.StderrPipe()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan struct{})
	go func() {
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			p.mu.Lock()
			p.log = append(p.log, s.Text())
			p.mu.Unlock()
		}
		close(lines)
	}()
	go func() { <-lines; p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() { _ = p.cmd.Process.Kill() })
	return p
}

// field waits for a log line with "key":"value" and returns value.
func (p *dispatcherProcess) field(t *testing.T, key string) string {
	t.Helper()
	var v string
	testenv.Eventually(t, 20*time.Second, func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, l := range p.log {
			if i := strings.Index(l, `"`+key+`":"`); i >= 0 {
				rest := l[i+len(key)+4:]
				v = rest[:strings.Index(rest, `"`)]
				return nil
			}
		}
		return io.ErrUnexpectedEOF
	})
	return v
}

func (p *dispatcherProcess) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.log, "\n")
}

func (p *dispatcherProcess) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, p.logs())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the dispatcher did not exit after SIGTERM")
	}
}

func get(t *testing.T, url string, header ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func queueCounts(t *testing.T, client *sqs.Client, url *string) (visible, inFlight string) {
	t.Helper()
	out, err := client.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: url,
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameAll}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Attributes["ApproximateNumberOfMessages"], out.Attributes["ApproximateNumberOfMessagesNotVisible"]
}

// Point 3: the handler container's preStop hook calls /drain: the dispatcher stops receiving,
// finishes the batch in flight, releases what it had not started, and answers only then; it goes
// on serving its probes until SIGTERM. Without the pod's token the endpoint refuses.
func TestTheHandlersPreStopDrainsTheDispatcher(t *testing.T) {
	f := testenv.FauxqsFor(t)
	client, err := f.Client(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	q, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("drain"), Attributes: map[string]string{"VisibilityTimeout": "300"}})
	if err != nil {
		t.Fatal(err)
	}
	var handled atomic.Int32
	started := make(chan struct{}, 1)
	handler := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		select {
		case started <- struct{}{}:
		default:
		}
		time.Sleep(1500 * time.Millisecond)
		handled.Add(int32(strings.Count(string(body), `"eventSource":"aws:sqs"`)))
	}))
	defer handler.Close()
	send := func(bodies ...int) {
		for _, b := range bodies {
			if _, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q.QueueUrl, MessageBody: aws.String(strconv.Itoa(b))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	send(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
	p := startDispatcher(t, []string{consumer.EnvDrainToken + "=s3cret"}, "--queue-url", aws.ToString(q.QueueUrl), "--sqs-endpoint", f.Endpoint,
		"--handler-url", handler.URL, "--batch-size", "10", "--batch-window", "1m", "--concurrency", "1")
	addr := p.field(t, "health")
	<-started
	send(10, 11, 12)
	testenv.Eventually(t, 10*time.Second, func() error { // received, waiting for the window
		if v, _ := queueCounts(t, client, q.QueueUrl); v != "0" {
			return io.ErrUnexpectedEOF
		}
		return nil
	})
	if code, _ := get(t, "http://"+addr+"/drain"); code != http.StatusForbidden {
		t.Fatalf("/drain without the token: %d, want 403", code)
	}
	if code, body := get(t, "http://"+addr+"/drain", consumer.DrainTokenHeader, "s3cret"); code != 200 || body != "drained" {
		t.Fatalf("/drain: %d %q", code, body)
	}
	if n := handled.Load(); n != 10 {
		t.Fatalf("/drain answered with %d of the in-flight batch's 10 messages handled", n)
	}
	if v, nv := queueCounts(t, client, q.QueueUrl); v != "3" || nv != "0" {
		t.Fatalf("after /drain: %s visible, %s in flight; want the 3 unstarted released and the batch deleted", v, nv)
	}
	for _, path := range []string{"/healthz", "/healthz/handler"} {
		if code, _ := get(t, "http://"+addr+path); code != 200 {
			t.Fatalf("%s after the drain: %d; the dispatcher must serve its probes until SIGTERM", path, code)
		}
	}
	select {
	case err := <-p.exited:
		t.Fatalf("the dispatcher exited after the drain, before SIGTERM: %v", err)
	default:
	}
	p.stop(t)
	if v, _ := queueCounts(t, client, q.QueueUrl); v != "3" {
		t.Fatalf("after SIGTERM: %s visible, want the 3 released untouched", v)
	}
}

// Point 8: a Lambda runtime exits when the dispatcher goes away at shutdown (aws-lambda-go and
// the RIC with an error): the dispatcher says so at info level, as something expected.
func TestAtShutdownTheRuntimeExitingIsExpected(t *testing.T) {
	f := testenv.FauxqsFor(t)
	client, err := f.Client(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	q, err := client.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String("shutdown")})
	if err != nil {
		t.Fatal(err)
	}
	p := startDispatcher(t, nil, "--queue-url", aws.ToString(q.QueueUrl), "--sqs-endpoint", f.Endpoint,
		"--mode", "LambdaRuntime", "--runtime-api-address", "127.0.0.1:0")
	addr := p.field(t, "address")
	fn := exec.Command(filepath.Join(testenv.Build(t, "./internal/dispatch/testdata/lambdafn"), "lambdafn"))
	fn.Env = append(os.Environ(), "AWS_LAMBDA_RUNTIME_API="+addr)
	if err := fn.Start(); err != nil {
		t.Fatal(err)
	}
	fnExited := make(chan struct{})
	go func() { _ = fn.Wait(); close(fnExited) }()
	t.Cleanup(func() { _ = fn.Process.Kill(); <-fnExited })
	p.stop(t)
	select {
	case <-fnExited:
	case <-time.After(20 * time.Second):
		t.Fatal("the runtime did not exit when the dispatcher went away")
	}
	var said bool
	for _, l := range strings.Split(p.logs(), "\n") {
		if strings.Contains(l, "closing the Lambda Runtime API") && strings.Contains(l, "expected at shutdown") {
			said = strings.Contains(l, `"level":"info"`)
		}
		if strings.Contains(l, `"level":"error"`) {
			t.Errorf("error at shutdown: %s", l)
		}
	}
	if !said {
		t.Fatalf("no info line saying the runtime's exit is expected:\n%s", p.logs())
	}
}
