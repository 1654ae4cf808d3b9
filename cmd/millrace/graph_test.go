package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/testenv"
)

func TestGraphOfADefinition(t *testing.T) {
	for format, want := range map[string]string{
		"svg":     `<svg xmlns="http://www.w3.org/2000/svg"`,
		"dot":     `digraph "order" {`,
		"mermaid": "flowchart TD",
	} {
		out, errOut, code := execute("graph", "-f", "testdata/order.json", "--format", format)
		if code != 0 || !strings.HasPrefix(out, want) {
			t.Errorf("%s: exit %d, stderr %s, output starts %.60q", format, code, errOut, out)
		}
	}
	path := filepath.Join(t.TempDir(), "order.svg")
	if _, errOut, code := execute("graph", "-f", "testdata/order.json", "-o", path); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if b, err := os.ReadFile(path); err != nil || !strings.Contains(string(b), "</svg>") {
		t.Errorf("-o wrote %d bytes (%v)", len(b), err)
	}
	for _, args := range [][]string{
		{"graph"},
		{"graph", "-f", "testdata/order.json", "--run", "r"},
		{"graph", "-f", "testdata/order.json", "--format", "png"},
	} {
		if _, errOut, code := execute(args...); code != 2 || !strings.Contains(errOut, "millrace graph:") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
		}
	}
}

// A live run, read from a real API server: the pinned definition, colored by the run's history.
func TestGraphOfARunInTheCluster(t *testing.T) {
	cp := testenv.ControlPlaneFor(t)
	kubeconfig := cp.KubeConfigFile(t)
	c, err := cp.Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	def, _ := os.ReadFile("testdata/order.json")
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}); err != nil {
		t.Fatal(err)
	}
	run := &millracev1.WorkflowRun{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "order-1"},
		Spec: millracev1.WorkflowRunSpec{WorkflowRef: millracev1.WorkflowReference{Name: "order"}}}
	if err := c.Create(ctx, run); err != nil {
		t.Fatal(err)
	}
	run.Status.Phase = millracev1.RunRunning
	run.Status.Definition = &apiextensionsv1.JSON{Raw: def}
	run.Status.History = []millracev1.HistoryEvent{{Time: metav1.Now(), State: firstState(t, def), Type: "Exited"}}
	if err := c.Status().Update(ctx, run); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := execute("graph", "--run", "order-1", "-n", "shop", "--kubeconfig", kubeconfig, "--format", "dot")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, `digraph "order-1 (running)"`) || !strings.Contains(out, `fillcolor="#dcfce7"`) {
		t.Errorf("the run's graph lacks its title or a succeeded state:\n%s", out)
	}
	if _, errOut, code := execute("graph", "--run", "missing", "-n", "shop", "--kubeconfig", kubeconfig); code == 0 || !strings.Contains(errOut, "not found") {
		t.Errorf("a missing run: exit %d, %s", code, errOut)
	}

	// A redriven run: the states its latest redrive ran are marked with its number (the redrive
	// count is the engine's; see below for the status fields the controller writes).
	redriven := &millracev1.WorkflowRun{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "order-2"},
		Spec: millracev1.WorkflowRunSpec{WorkflowRef: millracev1.WorkflowReference{Name: "order"}}}
	if err := c.Create(ctx, redriven); err != nil {
		t.Fatal(err)
	}
	start := firstState(t, def)
	redriven.Status.Phase = millracev1.RunRunning
	redriven.Status.Definition = &apiextensionsv1.JSON{Raw: def}
	redriven.Status.Engine = &apiextensionsv1.JSON{Raw: []byte(`{"status":"RUNNING","state":"` + start + `","execution":{"Id":"","Name":"","Input":null,"StartTime":"2026-03-01T09:00:00Z","RedriveCount":2,"RedriveTime":"2026-03-01T10:00:00Z"}}`)}
	redriven.Status.History = []millracev1.HistoryEvent{
		{Time: metav1.Now(), State: start, Type: "Entered"}, {Time: metav1.Now(), State: start, Type: "Failed", Info: "Broken"},
		{Time: metav1.Now(), State: start, Type: "Redriven", Info: "redrive 2"}, {Time: metav1.Now(), State: start, Type: "Entered"}}
	if err := c.Status().Update(ctx, redriven); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = execute("graph", "--run", "order-2", "-n", "shop", "--kubeconfig", kubeconfig, "--format", "mermaid")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "redrive 2") {
		t.Errorf("the redriven run's graph does not mark the redrive:\n%s", out)
	}

	// As the controller records a redrive: status.redriveCount and redriveDate, the history; a
	// finished run's engine state.
	redriven.Status.RedriveCount = 3
	redriven.Status.RedriveDate = &metav1.Time{Time: time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC)}
	redriven.Status.Phase = millracev1.RunFailed
	redriven.Status.Engine = &apiextensionsv1.JSON{Raw: []byte(`{"status":"FAILED","state":"` + start + `"}`)}
	redriven.Status.History = append(redriven.Status.History, millracev1.HistoryEvent{Time: metav1.Now(), State: start, Type: "Redriven", Info: "redrive 3"},
		millracev1.HistoryEvent{Time: metav1.Now(), State: start, Type: "FAILED", Info: "Broken"})
	if err := c.Status().Update(ctx, redriven); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = execute("graph", "--run", "order-2", "-n", "shop", "--kubeconfig", kubeconfig, "--format", "mermaid")
	if code != 0 || !strings.Contains(out, "· redrive 3") {
		t.Errorf("exit %d (%s); the graph of a run redriven 3 times:\n%s", code, errOut, out)
	}
}

func firstState(t *testing.T, def []byte) string {
	t.Helper()
	m, err := parse(def, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	return m.StartAt
}
