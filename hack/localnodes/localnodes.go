// Package localnodes is a development harness, not a part of Millrace: it plays the role of the
// nodes (kubelet and the Deployment controller) for Consumer Deployments on a control plane that has
// none. For each replica a Consumer's Deployment asks for, it runs the dispatcher sidecar (bin
// dispatcher, with the environment the manager rendered) and the sample handler (examples/handler)
// as local processes, stops them when the count goes down (SIGTERM: the dispatcher drains, then the
// handler stops), and reports the Deployment's status as the Deployment controller would. On a real
// cluster the pods do all of this.
package localnodes

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/millrace-io/millrace/internal/consumer"
)

// Runner runs the replicas of every Consumer Deployment.
type Runner struct {
	Client client.Client
	// Dispatcher and Handler are the binaries to run for each replica.
	Dispatcher, Handler string
	// LogDir receives one log per process, and the handlers' record files (<consumer>.handled).
	LogDir string
	// Env is added to every process (AWS credentials for the emulator, ...).
	Env []string

	mu   sync.Mutex
	pods map[string][]*pod // namespace/name -> running replicas
	seq  int
}

type pod struct {
	name                string
	dispatcher, handler *exec.Cmd
	done                chan struct{} // closed when both have exited
}

// Run reconciles every half second until ctx ends, then stops every replica.
func (r *Runner) Run(ctx context.Context) error {
	r.pods = map[string][]*pod{}
	defer r.stopAll()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := r.sync(ctx); err != nil && ctx.Err() == nil {
			fmt.Fprintln(os.Stderr, "localnodes:", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// Running returns how many replicas of a Consumer run now.
func (r *Runner) Running(namespace, name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pods[namespace+"/"+name])
}

func (r *Runner) sync(ctx context.Context) error {
	var list appsv1.DeploymentList
	if err := r.Client.List(ctx, &list, client.MatchingLabels{"app.kubernetes.io/managed-by": "millrace"}); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i := range list.Items {
		d := &list.Items[i]
		key := d.Namespace + "/" + d.Name
		seen[key] = true
		want := int(ptrOr(d.Spec.Replicas, 1))
		r.mu.Lock()
		running := r.pods[key]
		r.mu.Unlock()
		for len(running) < want {
			p, err := r.start(d)
			if err != nil {
				return fmt.Errorf("starting a replica of %s: %w", key, err)
			}
			running = append(running, p)
		}
		var stopping []*pod
		if len(running) > want {
			running, stopping = running[:want], running[want:]
		}
		r.mu.Lock()
		r.pods[key] = running
		r.mu.Unlock()
		for _, p := range stopping {
			go stop(p)
		}
		if err := r.report(ctx, d, len(running)); err != nil {
			return err
		}
	}
	r.mu.Lock()
	for key, ps := range r.pods {
		if !seen[key] {
			for _, p := range ps {
				go stop(p)
			}
			delete(r.pods, key)
		}
	}
	r.mu.Unlock()
	return nil
}

// start runs one replica: the handler on a free port, and the dispatcher pointed at it.
func (r *Runner) start(d *appsv1.Deployment) (*pod, error) {
	r.mu.Lock()
	r.seq++
	name := fmt.Sprintf("%s-%d", d.Name, r.seq)
	r.mu.Unlock()
	handlerPort, err := freePort()
	if err != nil {
		return nil, err
	}
	healthPort, err := freePort()
	if err != nil {
		return nil, err
	}
	spec := d.Spec.Template.Spec
	var dispatcherEnv, handlerEnv []string
	for _, c := range spec.InitContainers {
		if c.Name == consumer.DispatcherName {
			dispatcherEnv = envOf(c.Env)
		}
	}
	if len(spec.Containers) > 0 {
		handlerEnv = envOf(spec.Containers[0].Env)
	}
	dispatcherEnv = append(dispatcherEnv,
		consumer.EnvHandlerURL+"=http://127.0.0.1:"+strconv.Itoa(handlerPort)+"/",
		consumer.EnvHealthAddress+"=127.0.0.1:"+strconv.Itoa(healthPort))
	p := &pod{name: name, done: make(chan struct{})}
	p.handler = r.command(r.Handler, name+"-handler", handlerEnv,
		"--addr", "127.0.0.1:"+strconv.Itoa(handlerPort), "--record", filepath.Join(r.LogDir, d.Name+".handled"))
	if err := p.handler.Start(); err != nil {
		return nil, err
	}
	if err := waitListening(handlerPort, 10*time.Second); err != nil {
		_ = p.handler.Process.Kill()
		return nil, err
	}
	p.dispatcher = r.command(r.Dispatcher, name+"-dispatcher", dispatcherEnv)
	if err := p.dispatcher.Start(); err != nil {
		_ = p.handler.Process.Kill()
		return nil, err
	}
	go func() {
		_ = p.dispatcher.Wait()
		_ = p.handler.Process.Signal(syscall.SIGTERM)
		_ = p.handler.Wait()
		close(p.done)
	}()
	return p, nil
}

func (r *Runner) command(bin, logName string, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(append(os.Environ(), r.Env...), env...)
	if f, err := os.OpenFile(filepath.Join(r.LogDir, logName+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
		cmd.Stdout, cmd.Stderr = f, f
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd
}

// stop ends a replica as the kubelet ends a pod: SIGTERM, the grace period, then SIGKILL. The
// dispatcher goes first (it stops receiving, releases what it has not started and finishes what
// it has), then the handler.
func stop(p *pod) {
	_ = p.dispatcher.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(45 * time.Second):
		_ = p.dispatcher.Process.Kill()
		_ = p.handler.Process.Kill()
		<-p.done
	}
}

func (r *Runner) stopAll() {
	r.mu.Lock()
	var all []*pod
	for _, ps := range r.pods {
		all = append(all, ps...)
	}
	r.pods = map[string][]*pod{}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range all {
		wg.Add(1)
		go func() { defer wg.Done(); stop(p) }()
	}
	wg.Wait()
}

// report writes the Deployment's status as the Deployment controller would for running replicas.
func (r *Runner) report(ctx context.Context, d *appsv1.Deployment, running int) error {
	n := int32(running)
	available := corev1.ConditionFalse
	reason := "MinimumReplicasUnavailable"
	if n >= ptrOr(d.Spec.Replicas, 1) {
		available, reason = corev1.ConditionTrue, "MinimumReplicasAvailable"
	}
	if d.Status.Replicas == n && d.Status.ReadyReplicas == n && d.Status.ObservedGeneration == d.Generation && len(d.Status.Conditions) > 0 &&
		d.Status.Conditions[0].Status == available {
		return nil
	}
	patch := client.MergeFrom(d.DeepCopy())
	now := metav1.Now()
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n,
		Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: available, Reason: reason,
			Message:        fmt.Sprintf("%d of %d replicas run as local processes (development harness)", n, ptrOr(d.Spec.Replicas, 1)),
			LastUpdateTime: now, LastTransitionTime: now}}}
	return r.Client.Status().Patch(ctx, d, patch)
}

func envOf(vars []corev1.EnvVar) []string {
	out := make([]string, 0, len(vars))
	for _, v := range vars {
		if v.ValueFrom == nil {
			out = append(out, v.Name+"="+v.Value)
		}
	}
	sort.Strings(out)
	return out
}

func ptrOr(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitListening(port int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 200*time.Millisecond)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the handler did not listen on %d within %v", port, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
