package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/gateway"
	"github.com/millrace-io/millrace/internal/sqsx"
	"github.com/millrace-io/millrace/internal/testenv"
)

var (
	emulator   *testenv.Fauxqs
	restConfig *rest.Config
	k8s        client.Client
	clientset  *kubernetes.Clientset
	sqsClient  *sqsx.FastBatchClient // as cmd/gateway builds it
)

func TestMain(m *testing.M) {
	testenv.ExitIfShort("a control plane and the SQS emulator")
	os.Exit(run(m))
}

func run(m *testing.M) int {
	fauxqs, err := testenv.StartFauxqs()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer fauxqs.Stop()
	emulator = fauxqs
	cp, err := testenv.StartControlPlane()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = cp.Stop() }()
	restConfig = cp.Config
	if k8s, err = cp.Client(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if clientset, err = kubernetes.NewForConfig(cp.Config); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	testenv.UseLocalCredentials()
	if sqsClient, err = sqsx.NewFastBatch(context.Background(), sqsx.Options{Endpoint: fauxqs.Endpoint, Region: "us-east-1"}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// env is one namespace with exposed queues, a caller allowed to send to "orders" only, and a
// gateway server.
type env struct {
	ns      string
	url     string // the gateway
	allowed string // a token allowed to send to orders
	other   string // a valid token without that permission
	queues  map[string]string
}

func setup(t testing.TB, api gateway.SQSAPI) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{ns: fmt.Sprintf("gw-%d", time.Now().UnixNano()%1e9), queues: map[string]string{}}
	must(t, k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.ns}}))
	e.queue(t, "orders", millracev1.QueueSpec{HTTP: &millracev1.QueueHTTP{Enabled: true, ForwardHeaders: []string{"X-Tenant"}},
		MaximumMessageSize: ptr.To[int32](1024)})
	e.queue(t, "events", millracev1.QueueSpec{Type: millracev1.QueueTypeFIFO, QueueName: e.ns + "-events.fifo", HTTP: &millracev1.QueueHTTP{Enabled: true}})
	e.queue(t, "hidden", millracev1.QueueSpec{})
	e.queue(t, "pending", millracev1.QueueSpec{HTTP: &millracev1.QueueHTTP{Enabled: true}})
	e.queue(t, "limited", millracev1.QueueSpec{HTTP: &millracev1.QueueHTTP{Enabled: true, RateLimit: &millracev1.RateLimit{RequestsPerSecond: 1, Burst: 2}}})
	for name, exposed := range map[string]bool{"order": true, "secret": false} {
		wf := &millracev1.Workflow{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name},
			Spec: millracev1.WorkflowSpec{Definition: apiextensionsv1.JSON{Raw: []byte(`{"StartAt":"A","States":{"A":{"Type":"Succeed"}}}`)}}}
		if exposed {
			wf.Spec.HTTP = &millracev1.WorkflowHTTP{Enabled: true}
		}
		must(t, k8s.Create(ctx, wf))
	}
	must(t, k8s.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "send"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"millrace.io"}, Resources: []string{"queues/messages"}, Verbs: []string{"create"},
				ResourceNames: []string{"orders", "events", "hidden", "pending", "limited", "bench"}},
			{APIGroups: []string{"millrace.io"}, Resources: []string{"workflows/runs"}, Verbs: []string{"create", "get"}},
		}}))
	for _, sa := range []string{"sender", "stranger"} {
		must(t, k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: sa}}))
	}
	must(t, k8s.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "send"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "send"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "sender", Namespace: e.ns}}}))
	e.allowed, e.other = token(t, e.ns, "sender"), token(t, e.ns, "stranger")
	if api == nil {
		api = sqsClient
	}
	srv := httptest.NewServer((&gateway.Server{Reader: k8s, Writer: k8s, SQS: api, Auth: &gateway.KubernetesAuthorizer{Client: k8s}}).Handler())
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

// queue creates a Queue and, unless it is "pending", an SQS queue whose URL its status records
// (the Queue controller is not running here).
func (e *env) queue(t testing.TB, name string, spec millracev1.QueueSpec) {
	t.Helper()
	ctx := context.Background()
	q := &millracev1.Queue{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name}, Spec: spec}
	must(t, k8s.Create(ctx, q))
	if name == "pending" {
		return
	}
	sqsName := e.ns + "-" + name
	attrs := map[string]string{}
	if spec.Type == millracev1.QueueTypeFIFO {
		sqsName, attrs["FifoQueue"] = spec.QueueName, "true"
	}
	out, err := sqsClient.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(sqsName), Attributes: attrs})
	must(t, err)
	q.Status.QueueURL = aws.ToString(out.QueueUrl)
	must(t, k8s.Status().Update(ctx, q))
	e.queues[name] = q.Status.QueueURL
}

func token(t testing.TB, ns, sa string) string {
	t.Helper()
	tr, err := clientset.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}, metav1.CreateOptions{})
	must(t, err)
	return tr.Status.Token
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

type call struct {
	path, token, body string
	headers           map[string]string
}

func (e *env) post(t *testing.T, c call) (int, map[string]string, http.Header) {
	t.Helper()
	return e.do(t, http.MethodPost, c)
}

func (e *env) do(t *testing.T, method string, c call) (int, map[string]string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, e.url+c.path, strings.NewReader(c.body))
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var generic map[string]any
	_ = json.Unmarshal(raw, &generic)
	answer := map[string]string{}
	for k, v := range generic {
		if str, ok := v.(string); ok {
			answer[k] = str
		} else {
			b, _ := json.Marshal(v)
			answer[k] = string(b)
		}
	}
	return resp.StatusCode, answer, resp.Header
}

func receive(t *testing.T, url string) []sqstypes.Message {
	t.Helper()
	out, err := sqsClient.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10,
		WaitTimeSeconds: 1, MessageAttributeNames: []string{"All"}, MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll}})
	must(t, err)
	return out.Messages
}

func TestSendingAMessage(t *testing.T) {
	e := setup(t, nil)
	path := "/v1/namespaces/" + e.ns + "/queues/orders/messages"
	code, answer, _ := e.post(t, call{path: path, token: e.allowed, body: `{"order":7}`,
		headers: map[string]string{"Content-Type": "application/json", "X-Tenant": "acme", "X-Ignored": "no"}})
	if code != http.StatusAccepted || answer["messageId"] == "" {
		t.Fatalf("%d %v", code, answer)
	}
	msgs := receive(t, e.queues["orders"])
	if len(msgs) != 1 || aws.ToString(msgs[0].MessageId) != answer["messageId"] || aws.ToString(msgs[0].Body) != `{"order":7}` {
		t.Fatalf("in SQS: %+v", msgs)
	}
	attrs := msgs[0].MessageAttributes
	if aws.ToString(attrs["content-type"].StringValue) != "application/json" || aws.ToString(attrs["x-tenant"].StringValue) != "acme" || len(attrs) != 2 {
		t.Errorf("attributes %+v", attrs)
	}
	// Any text with its content type.
	if code, answer, _ := e.post(t, call{path: path, token: e.allowed, body: "plain words", headers: map[string]string{"Content-Type": "text/plain"}}); code != http.StatusAccepted {
		t.Errorf("text/plain: %d %v", code, answer)
	}
}

func TestRefusals(t *testing.T) {
	e := setup(t, nil)
	orders := "/v1/namespaces/" + e.ns + "/queues/orders/messages"
	for _, tc := range []struct {
		name string
		call call
		code int
		want string
	}{
		{"no token", call{path: orders, body: `{}`}, 401, "bearer token"},
		{"a forged token", call{path: orders, token: "not-a-token", body: `{}`}, 401, "bearer token"},
		{"a token without the permission", call{path: orders, token: e.other, body: `{}`}, 403, "not allowed"},
		{"a queue that is not exposed", call{path: "/v1/namespaces/" + e.ns + "/queues/hidden/messages", token: e.allowed, body: `{}`}, 404, "no queue"},
		{"a queue that does not exist", call{path: "/v1/namespaces/" + e.ns + "/queues/nope/messages", token: e.allowed, body: `{}`}, 403, "not allowed"},
		{"another namespace's queue", call{path: "/v1/namespaces/default/queues/orders/messages", token: e.allowed, body: `{}`}, 403, "not allowed"},
		{"a queue not ready yet", call{path: "/v1/namespaces/" + e.ns + "/queues/pending/messages", token: e.allowed, body: `{}`}, 503, "not ready"},
		{"a body over the queue's maximum", call{path: orders, token: e.allowed, body: `"` + strings.Repeat("x", 2000) + `"`}, 413, "1024 bytes"},
		{"malformed JSON", call{path: orders, token: e.allowed, body: `{"order":`}, 400, "not valid JSON"},
		{"an empty body", call{path: orders, token: e.allowed, body: ``}, 400, "empty"},
		{"FIFO without a group", call{path: "/v1/namespaces/" + e.ns + "/queues/events/messages", token: e.allowed, body: `{}`,
			headers: map[string]string{"Idempotency-Key": "k"}}, 400, "Message-Group-Id"},
		{"FIFO without an idempotency key", call{path: "/v1/namespaces/" + e.ns + "/queues/events/messages", token: e.allowed, body: `{}`,
			headers: map[string]string{"Message-Group-Id": "g"}}, 400, "Idempotency-Key"},
		{"FIFO with a group id SQS would refuse", call{path: "/v1/namespaces/" + e.ns + "/queues/events/messages", token: e.allowed, body: `{}`,
			headers: map[string]string{"Message-Group-Id": "two words", "Idempotency-Key": "k"}}, 400, "Message-Group-Id: 1 to 128 characters"},
		{"FIFO with an idempotency key SQS would refuse", call{path: "/v1/namespaces/" + e.ns + "/queues/events/messages", token: e.allowed, body: `{}`,
			headers: map[string]string{"Message-Group-Id": "g", "Idempotency-Key": strings.Repeat("k", 129)}}, 400, "Idempotency-Key: 1 to 128 characters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, answer, h := e.post(t, tc.call)
			if code != tc.code || !strings.Contains(answer["error"], tc.want) {
				t.Fatalf("%d %q, want %d naming %q", code, answer["error"], tc.code, tc.want)
			}
			if code == 401 && h.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if code == 503 && h.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
		})
	}
	for name, url := range e.queues {
		if msgs := receive(t, url); len(msgs) > 0 {
			t.Errorf("refused requests sent %d messages to %s", len(msgs), name)
		}
	}
}

func TestAnIdempotencyKeyDeduplicatesOnFIFO(t *testing.T) {
	e := setup(t, nil)
	path := "/v1/namespaces/" + e.ns + "/queues/events/messages"
	var ids []string
	for i := 0; i < 2; i++ {
		code, answer, _ := e.post(t, call{path: path, token: e.allowed, body: `{"event":"paid"}`,
			headers: map[string]string{"Message-Group-Id": "order-7", "Idempotency-Key": "paid-7"}})
		if code != http.StatusAccepted || answer["sequenceNumber"] == "" {
			t.Fatalf("%d %v", code, answer)
		}
		ids = append(ids, answer["messageId"])
	}
	msgs := receive(t, e.queues["events"])
	if len(msgs) != 1 || msgs[0].Attributes["MessageGroupId"] != "order-7" || msgs[0].Attributes["MessageDeduplicationId"] != "paid-7" {
		t.Fatalf("in SQS: %d messages %+v", len(msgs), msgs)
	}
}

// failingSQS is a fake (no real part can be made to fail on demand): every call fails as SQS does
// when it is unreachable.
type failingSQS struct{ calls int }

func (f *failingSQS) SendMessage(context.Context, *sqs.SendMessageInput, ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	f.calls++
	return nil, errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
}

func (f *failingSQS) SendMessageBatch(context.Context, *sqs.SendMessageBatchInput, ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	f.calls++
	return nil, errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
}

func TestSQSFailuresAre503WithRetryAfter(t *testing.T) {
	fake := &failingSQS{}
	e := setup(t, fake)
	code, answer, h := e.post(t, call{path: "/v1/namespaces/" + e.ns + "/queues/orders/messages", token: e.allowed, body: `{}`})
	if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" || !strings.Contains(answer["error"], "nothing was sent") || fake.calls != 1 {
		t.Fatalf("%d %v %v (calls %d)", code, answer, h, fake.calls)
	}
}

func TestRateLimit(t *testing.T) {
	e := setup(t, nil)
	path := "/v1/namespaces/" + e.ns + "/queues/limited/messages"
	var codes []int
	var retry string
	for i := 0; i < 3; i++ {
		code, _, h := e.post(t, call{path: path, token: e.allowed, body: `{}`})
		codes = append(codes, code)
		if code == http.StatusTooManyRequests {
			retry = h.Get("Retry-After")
		}
	}
	if fmt.Sprint(codes) != "[202 202 429]" || retry == "" {
		t.Fatalf("codes %v, Retry-After %q; want a burst of 2 then 429", codes, retry)
	}
	if msgs := receive(t, e.queues["limited"]); len(msgs) != 2 {
		t.Errorf("%d messages sent, want 2", len(msgs))
	}
}

func TestWorkflowRuns(t *testing.T) {
	e := setup(t, nil)
	runs := "/v1/namespaces/" + e.ns + "/workflows/order/runs"
	code, answer, h := e.post(t, call{path: runs, token: e.allowed, body: `{"id":"o-1","amount":10}`})
	if code != http.StatusCreated || !strings.HasPrefix(answer["name"], "order-") || h.Get("Location") != runs+"/"+answer["name"] {
		t.Fatalf("%d %v %v", code, answer, h)
	}
	run := &millracev1.WorkflowRun{}
	must(t, k8s.Get(context.Background(), client.ObjectKey{Namespace: e.ns, Name: answer["name"]}, run))
	var input map[string]any
	_ = json.Unmarshal(run.Spec.Input.Raw, &input)
	if run.Spec.WorkflowRef.Name != "order" || input["id"] != "o-1" || input["amount"] != 10.0 {
		t.Errorf("created %+v", run.Spec)
	}
	// Its state, as the controller records it.
	run.Status.Phase, run.Status.CurrentState = millracev1.RunSucceeded, "A"
	run.Status.Output = &apiextensionsv1.JSON{Raw: []byte(`{"ok":true}`)}
	must(t, k8s.Status().Update(context.Background(), run))
	code, got, _ := e.do(t, http.MethodGet, call{path: runs + "/" + answer["name"], token: e.allowed})
	if code != http.StatusOK || got["phase"] != "Succeeded" || got["output"] != `{"ok":true}` {
		t.Errorf("GET: %d %v", code, got)
	}
	// One idempotency key, one run.
	first, a1, _ := e.post(t, call{path: runs, token: e.allowed, body: `{}`, headers: map[string]string{"Idempotency-Key": "checkout-42"}})
	second, a2, _ := e.post(t, call{path: runs, token: e.allowed, body: `{}`, headers: map[string]string{"Idempotency-Key": "checkout-42"}})
	if first != http.StatusCreated || second != http.StatusOK || a1["name"] != a2["name"] {
		t.Errorf("idempotency: %d %v, then %d %v", first, a1, second, a2)
	}
	for _, tc := range []struct {
		name, method, path, token, body string
		code                            int
	}{
		{"no token", http.MethodPost, runs, "", `{}`, 401},
		{"no permission", http.MethodPost, runs, e.other, `{}`, 403},
		{"a workflow not exposed", http.MethodPost, "/v1/namespaces/" + e.ns + "/workflows/secret/runs", e.allowed, `{}`, 404},
		{"malformed input", http.MethodPost, runs, e.allowed, `{"id":`, 400},
		{"a run of another workflow", http.MethodGet, "/v1/namespaces/" + e.ns + "/workflows/order/runs/nope", e.allowed, ``, 404},
	} {
		if code, answer, _ := e.do(t, tc.method, call{path: tc.path, token: tc.token, body: tc.body}); code != tc.code {
			t.Errorf("%s: %d %v, want %d", tc.name, code, answer, tc.code)
		}
	}
}

// The OpenAPI document parses and describes every route the gateway serves; the metrics count
// requests by route and code.
func TestOpenAPIAndMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	metrics := gateway.NewMetrics(reg)
	srv := httptest.NewServer((&gateway.Server{Reader: k8s, Writer: k8s, SQS: sqsClient, Auth: &gateway.KubernetesAuthorizer{Client: k8s}, Metrics: metrics}).Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/openapi.json")
	must(t, err)
	defer resp.Body.Close()
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi.json: %v %q", err, doc.OpenAPI)
	}
	for path, method := range map[string]string{
		"/v1/namespaces/{ns}/queues/{queue}/messages":         "post",
		"/v1/namespaces/{ns}/workflows/{workflow}/runs":       "post",
		"/v1/namespaces/{ns}/workflows/{workflow}/runs/{run}": "get",
	} {
		if doc.Paths[path][method] == nil {
			t.Errorf("openapi.json lacks %s %s", method, path)
		}
	}
	_, _ = http.Post(srv.URL+"/v1/namespaces/x/queues/y/messages", "application/json", strings.NewReader(`{}`))
	if n := testutil.ToFloat64(metrics.Requests.WithLabelValues("POST /v1/namespaces/{ns}/queues/{queue}/messages", "401")); n != 1 {
		t.Errorf("requests counted: %v", n)
	}
}

func TestTheBatchForm(t *testing.T) {
	e := setup(t, nil)
	orders := "/v1/namespaces/" + e.ns + "/queues/orders/messages:batch"
	code, answer, _ := e.post(t, call{path: orders, token: e.allowed,
		body: `{"messages":[{"body":{"order":1}},{"body":"plain text","contentType":"text/plain"},{"body":[1,2],"attributes":{"X-Tenant":"web"}}]}`})
	if code != http.StatusAccepted || strings.Count(answer["messages"], "messageId") != 3 {
		t.Fatalf("%d %v", code, answer)
	}
	bodies := map[string]bool{}
	for _, m := range receive(t, e.queues["orders"]) {
		bodies[aws.ToString(m.Body)] = true
	}
	if !bodies[`{"order":1}`] || !bodies["plain text"] || !bodies["[1,2]"] {
		t.Errorf("in SQS: %v", bodies)
	}
	events := "/v1/namespaces/" + e.ns + "/queues/events/messages:batch"
	if code, answer, _ := e.post(t, call{path: events, token: e.allowed,
		body: `{"messages":[{"body":{"n":1},"groupId":"g","idempotencyKey":"k1"},{"body":{"n":2},"groupId":"g","idempotencyKey":"k2"}]}`}); code != http.StatusAccepted || strings.Count(answer["messages"], "sequenceNumber") != 2 {
		t.Errorf("FIFO batch: %d %v", code, answer)
	}
	for _, tc := range []struct {
		name, path, body, want string
		code                   int
	}{
		{"eleven messages", orders, `{"messages":[` + strings.TrimSuffix(strings.Repeat(`{"body":1},`, 11), ",") + `]}`, "1 to 10", 400},
		{"not a batch", orders, `[1,2]`, "not a batch", 400},
		{"an entry without a body", orders, `{"messages":[{"body":1},{"contentType":"x"}]}`, "messages[1].body", 400},
		{"an entry over the size", orders, `{"messages":[{"body":"` + strings.Repeat("x", 1500) + `"}]}`, "messages[0].body", 413},
		{"an attribute the queue does not forward", orders, `{"messages":[{"body":1,"attributes":{"millrace-task-token":"x"}}]}`, "messages[0].attributes.millrace-task-token", 400},
		{"a FIFO entry with a bad group id", events, `{"messages":[{"body":1,"groupId":"a b","idempotencyKey":"a"}]}`, "messages[0].groupId: 1 to 128", 400},
		{"a FIFO entry without a group", events, `{"messages":[{"body":1,"groupId":"g","idempotencyKey":"a"},{"body":2,"idempotencyKey":"b"}]}`, "messages[1].groupId", 400},
	} {
		if code, answer, _ := e.post(t, call{path: tc.path, token: e.allowed, body: tc.body}); code != tc.code || !strings.Contains(answer["error"], tc.want) {
			t.Errorf("%s: %d %q, want %d naming %q", tc.name, code, answer["error"], tc.code, tc.want)
		}
	}
	if msgs := receive(t, e.queues["orders"]); len(msgs) != 0 {
		t.Errorf("refused batches sent %d messages", len(msgs))
	}
}

// countingClient counts the reviews the authorizer asks the API server for.
type countingClient struct {
	client.Client
	creates int
}

func (c *countingClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	c.creates++
	return c.Client.Create(ctx, obj, opts...)
}

// Answers are cached: a caller's second request costs no TokenReview or SubjectAccessReview, a
// refused one is refused again without asking, and with caching off every request asks.
func TestAuthorizationAnswersAreCached(t *testing.T) {
	e := setup(t, nil)
	for _, tc := range []struct {
		ttl  time.Duration
		want int
	}{{0, 2}, {-1, 6}} {
		counter := &countingClient{Client: k8s}
		auth := &gateway.KubernetesAuthorizer{Client: counter, CacheTTL: tc.ttl}
		a := gateway.Access{Namespace: e.ns, Name: "orders", Verb: "create", Group: "millrace.io", Resource: "queues", Subresource: "messages"}
		for i := 0; i < 3; i++ {
			if _, err := auth.Authorize(context.Background(), gateway.Credential{Token: e.allowed}, a); err != nil {
				t.Fatal(err)
			}
		}
		if counter.creates != tc.want {
			t.Errorf("TTL %v: %d reviews for 3 requests, want %d", tc.ttl, counter.creates, tc.want)
		}
	}
	counter := &countingClient{Client: k8s}
	auth := &gateway.KubernetesAuthorizer{Client: counter}
	for i := 0; i < 2; i++ {
		if _, err := auth.Authorize(context.Background(), gateway.Credential{Token: "forged"}, gateway.Access{Namespace: e.ns}); !errors.Is(err, gateway.ErrUnauthenticated) {
			t.Fatalf("forged token: %v", err)
		}
	}
	if counter.creates != 1 {
		t.Errorf("%d TokenReviews for a forged token asked twice, want 1", counter.creates)
	}
}
