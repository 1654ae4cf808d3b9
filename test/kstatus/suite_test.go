// Package kstatus_test checks that every Millrace kind tells the truth the way kstatus reads it
// (`kubectl wait`, Flux and Argo CD health checks): Current when ready, InProgress while
// reconciling, Failed when stalled; and that conditions follow the world without waiting for a
// resync: the manager here compares Ready queues with SQS only once an hour, so whatever these
// tests see change comes from the depth monitor and the watches.
package kstatus_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/millrace-io/millrace/internal/consumer"
	"github.com/millrace-io/millrace/internal/controller"
	"github.com/millrace-io/millrace/internal/tasktoken"
	"github.com/millrace-io/millrace/internal/testenv"
)

var (
	k8s       client.Client
	sqsClient *sqs.Client
)

// depthInterval is how often the manager reads a queue's depth; "within one poll" below allows
// a few of them for the API server's round trips.
const depthInterval = 500 * time.Millisecond

func TestMain(m *testing.M) {
	testenv.ExitIfShort("envtest and the SQS emulator")
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	level := zapcore.Level(1)
	if os.Getenv("MILLRACE_TEST_VERBOSE") != "" {
		level = -1
	}
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.Level(level)))
	fauxqs, err := testenv.StartFauxqs()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer fauxqs.Stop()
	cp, err := testenv.StartControlPlane()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = cp.Stop() }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mgr, err := testenv.NewManager(cp.Config, ctrl.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	controllerSQS, err := fauxqs.Client(ctx, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if sqsClient, err = fauxqs.Client(ctx, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	signer, _ := tasktoken.NewSigner([]byte("kstatus-task-token-key-0123456789"))
	if _, err := controller.Setup(ctx, mgr, controller.Options{
		SQS:                 controllerSQS,
		ClusterName:         "kstatus",
		Resync:              time.Hour,
		StalledRetry:        time.Hour,
		DepthInterval:       depthInterval,
		DepthMaxInterval:    depthInterval,
		IdlePollInterval:    depthInterval,
		StatusWriteInterval: 200 * time.Millisecond,
		Region:              "us-east-1",
		Endpoint:            fauxqs.Endpoint,
		Render:              consumer.Options{DispatcherImage: "dispatcher:test"},
		Signer:              signer,
	}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	testenv.RunManager(ctx, mgr)
	if k8s, err = cp.Client(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func newNamespace(t testing.TB) string { return testenv.NewNamespace(t, k8s, "k") }

func create(t testing.TB, obj client.Object) { testenv.Create(t, k8s, obj) }
