// Package accounts_test runs the manager (controller.Setup, as cmd/manager wires it) against
// three AWS accounts and an STS, all FAKE and all on 127.0.0.1 (internal/testenv/fakeaws): fauxqs
// has one fixed account (000000000000) and no STS, so each account is a fauxqs of its own behind a
// front that routes calls by the caller's access key and writes the account id into queue URLs and
// ARNs, and the STS stand-in records every AssumeRole call and remembers which account each key it
// issued belongs to. The manager's own identity (static key "test") is account 000000000000.
package accounts_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"go.uber.org/zap/zapcore"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/millrace-io/millrace/internal/consumer"
	"github.com/millrace-io/millrace/internal/controller"
	"github.com/millrace-io/millrace/internal/sqsx"
	"github.com/millrace-io/millrace/internal/tasktoken"
	"github.com/millrace-io/millrace/internal/testenv"
	"github.com/millrace-io/millrace/internal/testenv/fakeaws"
)

const (
	accountA = "111111111111"
	accountB = "222222222222"
	roleA    = "arn:aws:iam::" + accountA + ":role/millrace-team-a"
	roleB    = "arn:aws:iam::" + accountB + ":role/millrace-team-b"
	// externalB is what team B's role trust policy asks for.
	externalB = "team-b-external-id"

	depthInterval = 300 * time.Millisecond
	settle        = 20 * time.Second
)

var (
	k8s      client.Client
	adminCfg *rest.Config
	fakeSTS  *fakeaws.STS
	front    *fakeaws.Accounts
	// direct reads each account's fauxqs as it is, without the front.
	direct = map[string]*sqs.Client{}
)

func TestMain(m *testing.M) {
	testenv.ExitIfShort("a control plane and three SQS emulators")
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	level := zapcore.Level(1)
	if os.Getenv("MILLRACE_TEST_VERBOSE") != "" {
		level = -1
	}
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.Level(level)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	backends := map[string]string{}
	for _, account := range []string{fakeaws.NativeAccount, accountA, accountB} {
		f, err := testenv.StartFauxqs()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer f.Stop()
		backends[account] = f.Endpoint
		if direct[account], err = f.Client(ctx, nil); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	fakeSTS = fakeaws.StartSTS()
	defer fakeSTS.Close()
	fakeSTS.Trust(roleA, "")
	fakeSTS.Trust(roleB, externalB)
	var err error
	if front, err = fakeaws.StartAccounts(fakeSTS, fakeaws.NativeAccount, backends); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer front.Close()

	cp, err := testenv.StartControlPlane()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = cp.Stop() }()
	adminCfg = cp.Config
	mgr, err := testenv.NewManager(cp.Config, ctrl.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	testenv.UseLocalCredentials() // the manager's own identity: key "test", account 000000000000
	own, err := sqsx.New(ctx, sqsx.Options{Endpoint: front.URL, Region: "us-east-1"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	signer, _ := tasktoken.NewSigner([]byte("accounts-task-token-key-0123456789"))
	if _, err := controller.Setup(ctx, mgr, controller.Options{
		SQS:                 own,
		STSEndpoint:         fakeSTS.URL,
		ClusterName:         "accounts",
		Resync:              time.Minute,
		StalledRetry:        time.Hour,
		DepthInterval:       depthInterval,
		DepthMaxInterval:    depthInterval,
		IdlePollInterval:    depthInterval,
		StatusWriteInterval: 200 * time.Millisecond,
		Region:              "us-east-1",
		Endpoint:            front.URL,
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

func newNamespace(t testing.TB) string { return testenv.NewNamespace(t, k8s, "a") }

func create(t testing.TB, obj client.Object) { testenv.Create(t, k8s, obj) }
