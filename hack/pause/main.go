// Command pause is the sandbox ("infra") process of every pod on the real node (hack/realnode):
// it holds the pod's namespaces open, reaps the orphans that end up as its children, and exits
// when the runtime stops the sandbox. There is no registry to pull upstream's pause image from,
// so `make images` builds this one the way it builds Millrace's.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 16)
	signal.Notify(signals, syscall.SIGCHLD, syscall.SIGTERM, syscall.SIGINT)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			return
		}
		reapAll()
	}
}

// reapAll collects every child that has exited; several SIGCHLDs may arrive as one.
func reapAll() {
	var status syscall.WaitStatus
	for {
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
