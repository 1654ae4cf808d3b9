// Command devenv is the local environment behind `make dev`:
//
//	devenv control-plane <state-dir>   start kube-apiserver + etcd (our built binaries) with the
//	                                   CRDs installed, write <state-dir>/kubeconfig, run until SIGTERM
//	devenv sqs-queues <endpoint>       print every queue of an SQS endpoint with its attributes and tags
//	devenv sqs-send <endpoint> <queue-url> <n>   send n messages to a queue
//	devenv demo <state-dir> <sqs-endpoint> <out-dir> [--stay]
//	                                   run hack/demo against the control plane of <state-dir> (its
//	                                   kubeconfig), with hack/localnodes running the Consumers'
//	                                   replicas from bin/dispatcher and bin/handler; --stay keeps the
//	                                   replicas running afterwards until SIGINT/SIGTERM
//	devenv realnode-check              exit 0 where a real node can run (Linux, root), else print
//	                                   why in one line and exit 3
//	devenv realnode <out-dir> [--stay] the demo on a real node (hack/realnode): the images of
//	                                   `make images` imported, the SQS emulator on the node's
//	                                   address, the chart installed with Helm, the samples in
//	                                   namespace shop (Pod Security "restricted"); --stay keeps it
//	                                   all running until SIGINT/SIGTERM; everything is torn down
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/hack/demo"
	"github.com/millrace-io/millrace/hack/localnodes"
	"github.com/millrace-io/millrace/hack/realnode"
	"github.com/millrace-io/millrace/internal/testenv"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == "realnode-check" {
		if err := realnode.Check(); err != nil {
			fmt.Println(err)
			os.Exit(3)
		}
		return
	}
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: devenv control-plane <state-dir> | devenv sqs-queues <endpoint> | devenv sqs-send <endpoint> <queue-url> <n>")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "control-plane":
		err = controlPlane(os.Args[2])
	case "sqs-queues":
		err = sqsQueues(os.Args[2])
	case "demo":
		err = runDemo(os.Args[2:])
	case "realnode":
		err = runRealNode(os.Args[2:])
	case "sqs-send":
		err = sqsSend(os.Args[2], os.Args[3:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	var unsupported *realnode.UnsupportedError
	if errors.As(err, &unsupported) { // make dev falls back to local processes
		fmt.Fprintln(os.Stderr, "devenv:", err)
		os.Exit(3)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "devenv:", err)
		os.Exit(1)
	}
}

func controlPlane(stateDir string) error {
	cp, err := testenv.StartControlPlane()
	if err != nil {
		return err
	}
	defer func() { _ = cp.Stop() }()
	user, err := cp.Env.AddUser(envtest.User{Name: "developer", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(stateDir, "kubeconfig"), kubeconfig, 0o600); err != nil {
		return err
	}
	fmt.Println("control plane ready:", cp.Config.Host)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return nil
}

func sqsQueues(endpoint string) error {
	ctx := context.Background()
	testenv.UseLocalCredentials()
	client, err := (&testenv.Fauxqs{Endpoint: endpoint}).Client(ctx, nil)
	if err != nil {
		return err
	}
	list, err := client.ListQueues(ctx, &sqs.ListQueuesInput{})
	if err != nil {
		return err
	}
	slices.Sort(list.QueueUrls)
	for _, url := range list.QueueUrls {
		attrs, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
			QueueUrl: aws.String(url), AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameAll},
		})
		if err != nil {
			return err
		}
		tags, err := client.ListQueueTags(ctx, &sqs.ListQueueTagsInput{QueueUrl: aws.String(url)})
		if err != nil {
			return err
		}
		fmt.Println(url)
		fmt.Println("  " + joined(attrs.Attributes, "CreatedTimestamp", "LastModifiedTimestamp", "QueueArn"))
		fmt.Println("  tags: " + joined(tags.Tags))
	}
	return nil
}

func joined(m map[string]string, skip ...string) string {
	parts := make([]string, 0, len(m))
	for k, v := range m {
		if !slices.Contains(skip, k) {
			parts = append(parts, k+"="+v)
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

func sqsSend(endpoint string, args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("usage: devenv sqs-send <endpoint> <queue-url> <n>")
	}
	queueURL := args[0]
	n := 0
	if _, err := fmt.Sscan(args[1], &n); err != nil {
		return fmt.Errorf("message count %q: %w", args[1], err)
	}
	ctx := context.Background()
	testenv.UseLocalCredentials()
	client, err := (&testenv.Fauxqs{Endpoint: endpoint}).Client(ctx, nil)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		if _, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(queueURL),
			MessageBody: aws.String(fmt.Sprintf(`{"order":%d}`, i))}); err != nil {
			return err
		}
	}
	fmt.Printf("sent %d messages to %s\n", n, queueURL)
	return nil
}

func runDemo(args []string) error {
	if len(args) < 3 {
		return fmt.Errorf("usage: devenv demo <state-dir> <sqs-endpoint> <out-dir> [--stay]")
	}
	stateDir, endpoint, outDir := args[0], args[1], args[2]
	stay := len(args) > 3 && args[3] == "--stay"
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(stateDir, "kubeconfig"))
	if err != nil {
		return err
	}
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = millracev1.AddToScheme(scheme)
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	testenv.UseLocalCredentials()
	sqsClient, err := (&testenv.Fauxqs{Endpoint: endpoint}).Client(ctx, nil)
	if err != nil {
		return err
	}
	runner := &localnodes.Runner{Client: c, Dispatcher: "bin/dispatcher", Handler: "bin/handler", LogDir: stateDir,
		Env: []string{"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_EC2_METADATA_DISABLED=true", "HANDLER_WORK=1s"}}
	runnerDone := make(chan struct{})
	go func() { _ = runner.Run(ctx); close(runnerDone) }()
	defer func() { stop(); <-runnerDone }() // SIGTERM every replica and wait for them
	res, err := demo.Run(ctx, demo.Options{Client: c, SQS: sqsClient, Runner: runner, Namespace: "default", OutDir: outDir, Out: os.Stdout})
	if err != nil {
		return err
	}
	fmt.Printf("\nwrote %s\n", strings.Join(res.Files, " and "))
	if stay {
		<-ctx.Done()
	}
	return nil
}

// runRealNode is `make dev` on a real node: what test/realnode does, live in the terminal.
func runRealNode(args []string) error {
	outDir := args[0]
	stay := len(args) > 1 && args[1] == "--stay"
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	root, err := testenv.RepoRoot()
	if err != nil {
		return err
	}
	say := func(format string, a ...any) { fmt.Printf("\n\033[1m== "+format+"\033[0m\n", a...) }
	say("starting a real node (kubelet + containerd, kube-apiserver on %s)", realnode.NodeIP)
	node, err := realnode.Up(ctx, realnode.Config{Log: func(format string, a ...any) { fmt.Printf("   "+format+"\n", a...) }})
	if err != nil {
		return err
	}
	defer func() {
		say("tearing the node down")
		node.Stop()
	}()
	fauxqs, err := testenv.StartFauxqsOn(realnode.NodeIP)
	if err != nil {
		return err
	}
	defer fauxqs.Stop()
	fmt.Printf("   node Ready in %.1fs; SQS emulator at %s\n", node.NodeReady.Seconds(), fauxqs.Endpoint)
	cfg, err := clientcmd.BuildConfigFromFlags("", node.Kubeconfig)
	if err != nil {
		return err
	}
	c, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	helm, err := testenv.HelmBinary()
	if err != nil {
		return err
	}
	say("helm install millrace (the manager and the gateway as pods, in %s)", demo.SystemNamespace)
	if err := demo.InstallChart(ctx, c, demo.Install{Helm: helm, Chart: filepath.Join(root, "charts", "millrace"),
		Kubeconfig: node.Kubeconfig, SQSEndpoint: fauxqs.Endpoint}); err != nil {
		return err
	}
	say("the samples, in namespace %s (Pod Security \"restricted\")", demo.Tenant)
	if err := demo.ApplySamples(ctx, c, filepath.Join(root, "config", "samples")); err != nil {
		return err
	}
	logDir, err := os.MkdirTemp("", "millrace-dev-pods")
	if err != nil {
		return err
	}
	pods := demo.WatchConsumerPods(ctx, c, cs, "billing", logDir)
	defer pods.Stop()
	testenv.UseLocalCredentials()
	sqsClient, err := fauxqs.Client(ctx, nil)
	if err != nil {
		return err
	}
	res, err := demo.Run(ctx, demo.Options{Client: c, SQS: sqsClient, Namespace: demo.Tenant, OutDir: outDir, Out: os.Stdout,
		Running: pods.Running, Handled: pods.Handled})
	if err != nil {
		return err
	}
	fmt.Printf("\nwrote %s\n", strings.Join(res.Files, " and "))
	if stay {
		kubectl, _ := testenv.KubectlBinary()
		say("Millrace is running on a real node. Try, in another shell:")
		fmt.Printf("  export KUBECONFIG=%s\n", node.Kubeconfig)
		fmt.Printf("  %s get pods -A\n  %s -n %s get queues,consumers,workflowruns\n", kubectl, kubectl, demo.Tenant)
		fmt.Printf("Pods' logs: %s. Ctrl-C stops everything.\n", logDir)
		<-ctx.Done()
	}
	return nil
}
