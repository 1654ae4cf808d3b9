package controller

import (
	"fmt"
	"slices"
	"strings"

	"github.com/millrace-io/millrace/internal/asl"
)

// taskBackend is how the manager performs a Task's Resource.
type taskBackend int

const (
	// backendConsumer sends the task to a Consumer's queue; its dispatcher reports the result.
	backendConsumer taskBackend = iota + 1
	// backendSQSWait sends a message carrying the task token; whoever reads it reports.
	backendSQSWait
	// backendSQSSend sends a message; the manager reports the result itself.
	backendSQSSend
	// backendHTTP makes an HTTP call; the manager reports the result itself.
	backendHTTP
)

// taskResource is a Task's Resource as the manager understands it.
type taskResource struct {
	backend taskBackend
	// consumer names the Consumer of backendConsumer.
	consumer string
}

// local reports whether the manager performs the task itself (and so reports its result): such a
// task is finished by the task executor, never handed over to a queue.
func (t taskResource) local() bool { return t.backend == backendSQSSend || t.backend == backendHTTP }

// kind names the resource for metrics: consumer, sqs or http.
func (t taskResource) kind() string {
	switch t.backend {
	case backendConsumer:
		return "consumer"
	case backendHTTP:
		return "http"
	}
	return "sqs"
}

// supportedResources lists the Resources parseResource accepts, for messages.
const supportedResources = "millrace:consumer/<name>, millrace:http, arn:aws:states:::sqs:sendMessage[.waitForTaskToken]"

// parseResource reads a Task's Resource.
func parseResource(resource string) (taskResource, error) {
	switch {
	case strings.HasPrefix(resource, "millrace:consumer/"):
		name := strings.TrimPrefix(resource, "millrace:consumer/")
		if name == "" || strings.Contains(name, "/") {
			return taskResource{}, fmt.Errorf("resource %q does not name a Consumer (millrace:consumer/<name>)", resource)
		}
		return taskResource{backend: backendConsumer, consumer: name}, nil
	case resource == "millrace:http":
		return taskResource{backend: backendHTTP}, nil
	case resource == "arn:aws:states:::sqs:sendMessage":
		return taskResource{backend: backendSQSSend}, nil
	case resource == "arn:aws:states:::sqs:sendMessage.waitForTaskToken":
		return taskResource{backend: backendSQSWait}, nil
	}
	return taskResource{}, fmt.Errorf("resource %q is not supported (%s)", resource, supportedResources)
}

// workflowMachine is a parsed definition with the Resource of each of its Task states (nested
// ones included) read once.
type workflowMachine struct {
	*asl.Machine
	resources map[*asl.State]taskResource
}

// parseWorkflow parses and validates a definition for this manager: the States Language, then
// every Task's Resource. Every problem comes with the JSON path of its field.
func parseWorkflow(raw []byte) (*workflowMachine, []asl.FieldError) {
	m, errs := asl.Parse(raw)
	if len(errs) > 0 {
		return nil, errs
	}
	w := &workflowMachine{Machine: m, resources: map[*asl.State]taskResource{}}
	errs = w.readResources(m, "$")
	slices.SortFunc(errs, func(a, b asl.FieldError) int { return strings.Compare(a.Path, b.Path) })
	if len(errs) > 0 {
		return nil, errs
	}
	return w, nil
}

func (w *workflowMachine) readResources(m *asl.Machine, at string) []asl.FieldError {
	var errs []asl.FieldError
	for name, st := range m.States {
		here := at + ".States." + name
		switch st.Type {
		case "Task":
			res, err := parseResource(st.Resource)
			if err != nil {
				errs = append(errs, asl.FieldError{Path: here + ".Resource", Message: err.Error()})
				continue
			}
			w.resources[st] = res
		case "Parallel":
			for i, b := range st.Branches {
				errs = append(errs, w.readResources(b, fmt.Sprintf("%s.Branches[%d]", here, i))...)
			}
		case "Map":
			if st.ItemProcessor != nil {
				errs = append(errs, w.readResources(st.ItemProcessor, here+".ItemProcessor")...)
			}
		}
	}
	return errs
}

// resource is the parsed Resource of one of the machine's Task states.
func (w *workflowMachine) resource(st *asl.State) taskResource { return w.resources[st] }
