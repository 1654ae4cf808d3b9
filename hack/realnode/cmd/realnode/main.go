// Command realnode starts and stops the real single-node Kubernetes of package realnode.
//
//	realnode up     start the node, print its KUBECONFIG, run until SIGINT/SIGTERM, then tear it down
//	realnode down   remove what a node left behind when its `up` was killed (kill -9, a crash)
//	realnode check  exit 0 if a real node can run here
//
// Where a real node cannot run (not Linux, not root), it says why in one line and exits with
// code 3, so that callers fall back to hack/localnodes. Images: every tarball under build/images
// (`make images`), or those named by $MILLRACE_REALNODE_IMAGES (space-separated).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/millrace-io/millrace/hack/realnode"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: realnode up | down | check")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	cfg := realnode.Config{}
	if images := os.Getenv("MILLRACE_REALNODE_IMAGES"); images != "" {
		cfg.Images = strings.Fields(images)
	}
	var err error
	switch os.Args[1] {
	case "check":
		err = realnode.Check()
	case "down":
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		err = realnode.Down(ctx, cfg)
	case "up":
		var node *realnode.Node
		node, err = realnode.Up(ctx, cfg)
		if err == nil {
			fmt.Printf("export KUBECONFIG=%s\n", node.Kubeconfig)
			fmt.Fprintf(os.Stderr, "realnode: node Ready in %.1fs, ready for pods in %.1fs; Ctrl-C stops it\n",
				node.NodeReady.Seconds(), node.PodsReady.Seconds())
			<-ctx.Done()
			node.Stop()
		}
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	var unsupported *realnode.UnsupportedError
	switch {
	case errors.As(err, &unsupported):
		fmt.Fprintln(os.Stderr, "realnode:", unsupported.Reason)
		os.Exit(realnode.ExitUnsupported)
	case err != nil:
		fmt.Fprintln(os.Stderr, "realnode:", err)
		os.Exit(1)
	}
}
