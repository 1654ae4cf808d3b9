package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/gateway"
	"github.com/millrace-io/millrace/internal/testenv"
)

// The gateway as a plain process against a real API server and fauxqs: it refuses an anonymous
// request with 401, accepts one with an API key from a Secret of --api-keys-namespace, and on
// SIGTERM stops accepting connections at once but finishes a request in flight (its SendMessage is
// held 2 s by a delaying proxy in front of fauxqs — a fake only in its delay) before exiting 0.
func TestTheGatewayProcess(t *testing.T) {
	bin := filepath.Join(testenv.Build(t, "./cmd/gateway"), "gateway")
	fauxqs := testenv.FauxqsFor(t)
	cp := testenv.ControlPlaneFor(t)
	ctx := context.Background()
	queueURL, key := exposeAQueue(t, ctx, cp, fauxqs)

	// The delaying proxy: every SendMessage (or batch: the gateway sends a single message as a
	// batch of one) is held 2 s and announced on sending.
	sending := make(chan struct{}, 10)
	target, _ := url.Parse(fauxqs.Endpoint)
	proxy := httputil.NewSingleHostReverseProxy(target)
	delayed := &http.Server{Addr: testenv.FreeAddr(t), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if target := r.Header.Get("X-Amz-Target"); strings.HasSuffix(target, ".SendMessage") || strings.HasSuffix(target, ".SendMessageBatch") {
			sending <- struct{}{}
			time.Sleep(2 * time.Second)
		}
		proxy.ServeHTTP(w, r)
	})}
	go func() { _ = delayed.ListenAndServe() }()
	defer delayed.Close()

	kubeconfig := cp.KubeConfigFile(t)
	addr := testenv.FreeAddr(t)
	cmd := exec.Command(bin, "--kubeconfig", kubeconfig, "--address", addr, "--metrics-bind-address", "0",
		"--health-probe-bind-address", testenv.FreeAddr(t), "--region", "us-east-1", "--sqs-endpoint", "http://"+delayed.Addr,
		"--api-keys-namespace", "millrace-system", "--api-key-service-account-namespaces", "shop", "--shutdown-grace", "10s")
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_EC2_METADATA_DISABLED=true")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	}()

	send := func(key string) (int, error) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/namespaces/shop/queues/orders/messages", strings.NewReader(`{"order":1}`))
		if key != "" {
			req.Header.Set(gateway.HeaderAPIKey, key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		code, err := send("")
		if err == nil && code != http.StatusUnauthorized {
			t.Fatalf("anonymous request: %d, want 401", code)
		}
		return err
	})

	// A request with the key, retried until the gateway's cache has the key Secret.
	var answered atomic.Int32
	go func() {
		for i := 0; i < 300; i++ {
			code, err := send(key)
			// 401 until the cache has the key; 429 once the refusals pass the failed-authentication limit.
			if err == nil && code != http.StatusUnauthorized && code != http.StatusTooManyRequests {
				answered.Store(int32(code))
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		answered.Store(-1)
	}()
	select {
	case <-sending:
	case <-time.After(30 * time.Second):
		t.Fatalf("the request never reached SQS (answered %d)\n%s", answered.Load(), logs.String())
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	testenv.Eventually(t, 1500*time.Millisecond, func() error { // new connections are refused at once
		if _, err := send(""); err == nil {
			return errors.New("the gateway still accepts connections after SIGTERM")
		}
		return nil
	})
	if code := answered.Load(); code != 0 {
		t.Fatalf("the request in flight was answered %d before its SendMessage finished", code)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no exit after SIGTERM\n%s", logs.String())
	}
	if code := answered.Load(); code != http.StatusAccepted {
		t.Errorf("the request in flight at SIGTERM was answered %d, want 202\n%s", code, logs.String())
	}
	sqsClient, err := fauxqs.Client(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := sqsClient.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(queueURL), MaxNumberOfMessages: 10})
	if err != nil || len(out.Messages) != 1 || aws.ToString(out.Messages[0].Body) != `{"order":1}` {
		t.Errorf("in SQS: %+v %v", out, err)
	}
	if !strings.Contains(logs.String(), "finishing requests in flight") {
		t.Errorf("no graceful shutdown in the logs:\n%s", logs.String())
	}
}

// exposeAQueue makes shop/orders an exposed Queue with an SQS queue, a ServiceAccount allowed to
// send to it, and an API key acting as that ServiceAccount in millrace-system.
func exposeAQueue(t *testing.T, ctx context.Context, cp *testenv.ControlPlane, fauxqs *testenv.Fauxqs) (queueURL, key string) {
	t.Helper()
	c, err := cp.Client()
	if err != nil {
		t.Fatal(err)
	}
	sqsClient, err := fauxqs.Client(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := sqsClient.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(fmt.Sprintf("gw-process-%d", time.Now().UnixNano()))})
	if err != nil {
		t.Fatal(err)
	}
	key = strings.Repeat("k3y", 12)
	q := &millracev1.Queue{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orders"}, Spec: millracev1.QueueSpec{HTTP: &millracev1.QueueHTTP{Enabled: true}}}
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "millrace-system"}},
		q,
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "send"}, Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"millrace.io"}, Resources: []string{"queues/messages"}, Verbs: []string{"create"}}}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "send"},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "send"},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "checkout", Namespace: "shop"}}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "millrace-system", Name: "checkout-key",
			Labels:      map[string]string{gateway.APIKeyLabel: "true"},
			Annotations: map[string]string{gateway.APIKeyServiceAccountAnnotation: "shop/checkout"}},
			StringData: map[string]string{gateway.APIKeyDataField: key}},
	} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	q.Status.QueueURL = aws.ToString(out.QueueUrl)
	if err := c.Status().Update(ctx, q); err != nil {
		t.Fatal(err)
	}
	return q.Status.QueueURL, key
}
