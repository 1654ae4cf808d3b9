// Command millrace is Millrace's command-line tool: validate a States Language definition, or run
// one locally without a cluster (tasks answered by a Step Functions Local mock config).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/millrace-io/millrace/internal/asl"
)

// exitError carries the process exit code: 1 a run that did not succeed, 2 bad input or usage.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func main() {
	root := newRoot(os.Stdout, os.Stderr)
	if err := root.Execute(); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "millrace:", err)
		os.Exit(2)
	}
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "millrace",
		Short:         "Validate, run and draw Amazon States Language state machines",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(validateCmd(stdout, stderr), runCmd(stdout, stderr), graphCmd(stdout, stderr))
	return root
}

func load(path string, stderr io.Writer) (*asl.Machine, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parse(data, stderr)
}

func validateCmd(stdout, stderr io.Writer) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "validate -f definition.json",
		Short: "Check a definition; print every error with its JSON path (exit 2) or nothing (exit 0)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := load(file, stderr)
			if err == nil {
				fmt.Fprintln(stdout, "valid")
			}
			return err
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "definition (JSON or YAML)")
	_ = cmd.MarkFlagRequired("file")
	return cmd
}

func runCmd(stdout, stderr io.Writer) *cobra.Command {
	var file, inputFile, mockFile, testCase, name string
	cmd := &cobra.Command{
		Use:   "run -f definition.json [--input input.json] [--mock-config mocks.json --test-case NAME [--name MACHINE]]",
		Short: "Run a state machine locally; print {\"status\",\"output\"|\"error\",\"cause\"}; exit 0 on SUCCEEDED, 1 otherwise",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			m, err := load(file, stderr)
			if err != nil {
				return err
			}
			var input any = map[string]any{}
			if inputFile != "" {
				b, err := os.ReadFile(inputFile)
				if err != nil {
					return exitError2(stderr, err)
				}
				if err := json.Unmarshal(b, &input); err != nil {
					return exitError2(stderr, fmt.Errorf("input %s: %w", inputFile, err))
				}
			}
			tasks := func(context.Context, asl.Effect) (any, string, string) {
				return nil, asl.ErrTaskFailed, "no mock config: tasks cannot run locally without --mock-config"
			}
			if mockFile != "" {
				cfg, err := asl.LoadMockConfig(mockFile)
				if err != nil {
					return exitError2(stderr, err)
				}
				tc, err := cfg.TestCase(name, testCase)
				if err != nil {
					return exitError2(stderr, err)
				}
				tasks = asl.MockTasks(cfg, tc)
			}
			sleep := func(ctx context.Context, d time.Duration) error {
				select {
				case <-time.After(d):
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			run := m.RunLocally(context.Background(), input, "local", tasks, time.Now, sleep)
			out := map[string]any{"status": run.Status}
			if run.Status == asl.Succeeded {
				out["output"] = run.Output
			} else {
				out["error"], out["cause"] = run.Error, run.Cause
			}
			enc := json.NewEncoder(stdout)
			if err := enc.Encode(out); err != nil {
				return err
			}
			if run.Status != asl.Succeeded {
				return exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "definition (JSON or YAML)")
	cmd.Flags().StringVar(&inputFile, "input", "", "input document (JSON); default {}")
	cmd.Flags().StringVar(&mockFile, "mock-config", "", "Step Functions Local mock config")
	cmd.Flags().StringVar(&testCase, "test-case", "", "test case of the mock config")
	cmd.Flags().StringVar(&name, "name", "", "state machine of the mock config (default: the only one)")
	_ = cmd.MarkFlagRequired("file")
	return cmd
}

func exitError2(stderr io.Writer, err error) error {
	fmt.Fprintln(stderr, "millrace:", err)
	return exitError{code: 2}
}
