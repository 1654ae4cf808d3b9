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
package main

import (
	"context"
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
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/hack/demo"
	"github.com/millrace-io/millrace/hack/localnodes"
	"github.com/millrace-io/millrace/internal/testenv"
)

func main() {
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
	case "sqs-send":
		err = sqsSend(os.Args[2], os.Args[3:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
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
