package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/asl"
	"github.com/millrace-io/millrace/internal/graph"
)

func graphCmd(stdout, stderr io.Writer) *cobra.Command {
	var file, run, workflow, namespace, kubeconfig, format, output string
	cmd := &cobra.Command{
		Use:   "graph (-f definition.json | --workflow NAME | --run NAME)",
		Short: "Draw a definition, or a live WorkflowRun with its states colored by status (SVG, DOT or Mermaid)",
		Example: `  millrace graph -f order.json -o order.svg
  millrace graph --run order-1 -n shop --format mermaid
  millrace graph --workflow order --format dot | dot -Tpng > order.png`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sources := 0
			for _, s := range []string{file, run, workflow} {
				if s != "" {
					sources++
				}
			}
			if sources != 1 {
				return usage(stderr, "give exactly one of -f, --workflow and --run")
			}
			render := map[string]func(*graph.Graph) string{"svg": graph.SVG, "dot": graph.DOT, "mermaid": graph.Mermaid}[format]
			if render == nil {
				return usage(stderr, "--format must be svg, dot or mermaid")
			}
			var g *graph.Graph
			switch {
			case file != "":
				m, err := load(file, stderr)
				if err != nil {
					return err
				}
				base := filepath.Base(file)
				g = graph.FromMachine(strings.TrimSuffix(base, filepath.Ext(base)), m, nil)
			default:
				c, ns, err := kubeClient(kubeconfig, namespace)
				if err != nil {
					return usage(stderr, err.Error())
				}
				if g, err = fromCluster(cmd.Context(), c, ns, workflow, run, stderr); err != nil {
					return err
				}
			}
			out := stdout
			if output != "" {
				f, err := os.Create(output)
				if err != nil {
					return err
				}
				defer f.Close()
				out = f
			}
			_, err := io.WriteString(out, render(g))
			return err
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "a States Language definition (JSON or YAML)")
	cmd.Flags().StringVar(&workflow, "workflow", "", "a Workflow in the cluster")
	cmd.Flags().StringVar(&run, "run", "", "a WorkflowRun in the cluster (drawn with its pinned definition and its states' status)")
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace (default: the kubeconfig's)")
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	cmd.Flags().StringVar(&format, "format", "svg", "svg, dot or mermaid")
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to this file instead of standard output")
	return cmd
}

func usage(stderr io.Writer, msg string) error {
	fmt.Fprintln(stderr, "millrace graph:", msg)
	return exitError{code: 2}
}

func kubeClient(kubeconfig, namespace string) (client.Client, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{Context: clientcmdapi.Context{Namespace: namespace}})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig: %w", err)
	}
	if namespace == "" {
		if namespace, _, err = cc.Namespace(); err != nil {
			return nil, "", err
		}
	}
	scheme := runtime.NewScheme()
	if err := millracev1.AddToScheme(scheme); err != nil {
		return nil, "", err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	return c, namespace, err
}

func fromCluster(ctx context.Context, c client.Client, ns, workflow, run string, stderr io.Writer) (*graph.Graph, error) {
	if workflow != "" {
		wf := &millracev1.Workflow{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: workflow}, wf); err != nil {
			return nil, err
		}
		m, err := parse(wf.Spec.Definition.Raw, stderr)
		if err != nil {
			return nil, err
		}
		return graph.FromMachine(workflow, m, nil), nil
	}
	r := &millracev1.WorkflowRun{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: run}, r); err != nil {
		return nil, err
	}
	var def []byte
	if r.Status.Definition != nil {
		def = r.Status.Definition.Raw
	} else {
		wf := &millracev1.Workflow{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: r.Spec.WorkflowRef.Name}, wf); err != nil {
			return nil, fmt.Errorf("run %s has not started and its Workflow cannot be read: %w", run, err)
		}
		def = wf.Spec.Definition.Raw
	}
	m, err := parse(def, stderr)
	if err != nil {
		return nil, err
	}
	h := RunHistory(r)
	title := fmt.Sprintf("%s (%s)", run, strings.ToLower(string(r.Status.Phase)))
	if h.RedriveCount > 0 {
		title = fmt.Sprintf("%s (%s, redrive %d)", run, strings.ToLower(string(r.Status.Phase)), h.RedriveCount)
	}
	g := graph.FromMachine(title, m, graph.Statuses(m, h))
	g.MarkRedriven(graph.Redriven(m, h))
	return g, nil
}

// RunHistory is what a WorkflowRun's status says about its states, and its redrives
// (status.redriveCount and redriveDate; the engine state's for a run recorded without them).
func RunHistory(r *millracev1.WorkflowRun) graph.History {
	var h graph.History
	for _, e := range r.Status.History {
		h.Transitions = append(h.Transitions, graph.Transition{State: e.State, Type: e.Type, Info: e.Info, At: e.Time.Time})
	}
	h.RedriveCount = int(r.Status.RedriveCount)
	if d := r.Status.RedriveDate; d != nil {
		h.RedriveTime = d.Time
	}
	if h.RedriveCount == 0 && r.Status.Engine != nil {
		var engine asl.Run
		if json.Unmarshal(r.Status.Engine.Raw, &engine) == nil {
			h.RedriveCount = engine.Execution.RedriveCount
			if t := engine.Execution.RedriveTime; t != nil {
				h.RedriveTime = *t
			}
		}
	}
	for _, a := range r.Status.ActiveStates {
		label := a.Path
		if label == "" {
			label = a.Name
		}
		h.Active = append(h.Active, label)
	}
	return h
}

// parse parses a definition, printing every error with its JSON path (exit 2).
func parse(def []byte, stderr io.Writer) (*asl.Machine, error) {
	m, errs := asl.Parse(def)
	if len(errs) > 0 {
		for _, e := range errs {
			fmt.Fprintf(stderr, "%s: %s\n", e.Path, e.Message)
		}
		return nil, exitError{code: 2}
	}
	return m, nil
}
