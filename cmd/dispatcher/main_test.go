package main_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/millrace-io/millrace/internal/testenv"
)

// TestTheDispatcherRunsAsAPlainProcess builds cmd/dispatcher, runs it with flags against fauxqs and
// a handler on 127.0.0.1, checks its health endpoints and metrics, and stops it with SIGTERM.
func TestTheDispatcherRunsAsAPlainProcess(t *testing.T) {
	f := testenv.FauxqsFor(t)
	client, err := f.Client(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	q, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("plain")})
	if err != nil {
		t.Fatal(err)
	}
	var handled atomic.Int32
	handler := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		handled.Add(int32(strings.Count(string(body), `"eventSource":"aws:sqs"`)))
	}))
	defer handler.Close()

	bin := filepath.Join(testenv.Build(t, "./cmd/dispatcher"), "dispatcher")
	cmd := exec.Command(bin, "--queue-url", aws.ToString(q.QueueUrl), "--sqs-endpoint", f.Endpoint, "--region", "us-east-1",
		"--handler-url", handler.URL, "--batch-size", "5", "--concurrency", "2", "--wait-time", "1s", "--health-address", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_EC2_METADATA_DISABLED=true")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	healthAddr := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			line := s.Text()
			if i := strings.Index(line, `"health":"`); i >= 0 {
				rest := line[i+len(`"health":"`):]
				healthAddr <- rest[:strings.Index(rest, `"`)]
			}
		}
	}()
	var addr string
	select {
	case addr = <-healthAddr:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("the dispatcher did not log its health address")
	}
	for i := 0; i < 12; i++ {
		if _, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q.QueueUrl, MessageBody: aws.String(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for handled.Load() < 12 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := handled.Load(); n != 12 {
		t.Fatalf("handled %d of 12", n)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", path, err, resp)
		}
		resp.Body.Close()
	}
	// The last batch is deleted after the handler answered it: wait for it.
	var metrics []byte
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		metrics, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(metrics), "millrace_dispatcher_messages_deleted_total 12") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics lack the deletions:\n%s", grep(string(metrics), "millrace_dispatcher_messages"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("the dispatcher did not exit after SIGTERM")
	}
	out, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: q.QueueUrl,
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameAll}})
	if err != nil {
		t.Fatal(err)
	}
	if out.Attributes["ApproximateNumberOfMessages"] != "0" || out.Attributes["ApproximateNumberOfMessagesNotVisible"] != "0" {
		t.Fatalf("queue not empty: %v", out.Attributes)
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return fmt.Sprint(out)
}
