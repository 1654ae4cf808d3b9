package controller_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zapcore"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/yaml"

	"github.com/millrace-io/millrace/internal/consumer"
	"github.com/millrace-io/millrace/internal/controller"
	"github.com/millrace-io/millrace/internal/depth"
	"github.com/millrace-io/millrace/internal/egress"
	"github.com/millrace-io/millrace/internal/sqsx"
	"github.com/millrace-io/millrace/internal/tasktoken"
	"github.com/millrace-io/millrace/internal/testenv"
)

// The suite runs one real kube-apiserver + etcd (envtest, our built binaries), one fauxqs emulator
// and one manager wired by controller.Setup (as cmd/manager is) for the whole package; each test
// uses its own namespace.
var (
	runs        *controller.WorkflowRunReconciler
	callbackURL string
	k8s         client.Client
	monitor     *depth.Monitor
	sqsEndpoint string
	sqsClient   *sqs.Client // the tests' own client, outside the controller's metrics
	sqsMetrics  *sqsx.Metrics
)

const (
	testResync       = 3 * time.Second
	testStatusWrites = 500 * time.Millisecond
)

func TestMain(m *testing.M) {
	testenv.ExitIfShort("a control plane and the SQS emulator")
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.Level(zapcore.Level(zapLevel()))))
	fauxqs, err := testenv.StartFauxqs()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer fauxqs.Stop()
	cp, err := testenv.StartControlPlaneWithWebhooks()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = cp.Stop() }()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	scheme := testenv.Scheme()
	mgr, err := testenv.NewManager(cp.Config, ctrl.Options{
		Scheme:        scheme,
		WebhookServer: webhook.NewServer(cp.WebhookServerOptions()),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sqsMetrics = sqsx.NewMetrics(prometheus.NewRegistry())
	controllerSQS, err := fauxqs.Client(ctx, sqsMetrics)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if sqsClient, err = fauxqs.Client(ctx, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sqsEndpoint = fauxqs.Endpoint
	signer, _ := tasktoken.NewSigner([]byte("suite-task-token-key-0123456789ab"))
	wired, err := controller.Setup(ctx, mgr, controller.Options{
		SQS:                 controllerSQS,
		ClusterName:         "test",
		Resync:              testResync,
		StalledRetry:        time.Hour,
		DepthInterval:       time.Second,
		DepthMaxInterval:    2 * time.Second,
		StatusWriteInterval: testStatusWrites,
		Region:              "us-east-1",
		Endpoint:            fauxqs.Endpoint,
		Render:              consumer.Options{DispatcherImage: "dispatcher:test"},
		Signer:              signer,
		HTTP:                egress.New(egress.Options{}),
		Webhooks:            true,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	runs, monitor = wired.Runs, wired.Monitor
	callbackServer := httptest.NewServer(wired.Callback)
	defer callbackServer.Close()
	callbackURL = callbackServer.URL
	testenv.RunManager(ctx, mgr)
	k8s, err = client.New(cp.Config, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := installAdmissionPolicies(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// installAdmissionPolicies creates the ValidatingAdmissionPolicies of config/admission.
func installAdmissionPolicies(ctx context.Context) error {
	root, err := testenv.RepoRoot()
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(filepath.Join(root, "config", "admission", "consumer_same_namespace.yaml"))
	if err != nil {
		return err
	}
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			return err
		}
		if err := k8s.Create(ctx, u); err != nil {
			return fmt.Errorf("creating %s: %w", u.GetName(), err)
		}
	}
	return nil
}

func zapLevel() int8 {
	if os.Getenv("MILLRACE_TEST_VERBOSE") != "" {
		return -1
	}
	return 1 // errors only
}

func newNamespace(t testing.TB) string { return testenv.NewNamespace(t, k8s, "t") }

// eventually retries check until it returns nil or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, check func() error) {
	t.Helper()
	testenv.Eventually(t, timeout, check)
}

func metaOnly(ns, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: ns, Name: name}
}
