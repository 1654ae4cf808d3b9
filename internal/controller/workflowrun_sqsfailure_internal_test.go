package controller

import (
	"errors"
	"fmt"
	"testing"

	"github.com/aws/smithy-go"

	"github.com/millrace-io/millrace/internal/callback"
)

// An sqs:sendMessage that SQS refuses fails the task at once (named SQS.<code>): tried again, a
// tenant's bad message (a NUL in the body, a Number attribute that is not a number, a group id on
// a Standard queue) would hold one of the manager's shared workers for every try. Throttling, the
// service's faults and the network are tried again.
func TestSQSRefusalsFailTheTaskAndTheRestAreTriedAgain(t *testing.T) {
	api := func(code string, fault smithy.ErrorFault) error {
		return &smithy.GenericAPIError{Code: code, Message: "m", Fault: fault}
	}
	for _, c := range []struct {
		err  error
		want string // "" = try again
	}{
		{api("InvalidParameterValue", smithy.FaultClient), "SQS.InvalidParameterValue"},
		{api("AWS.SimpleQueueService.InvalidMessageContents", smithy.FaultClient), "SQS.InvalidMessageContents"},
		{api("AWS.SimpleQueueService.NonExistentQueue", smithy.FaultClient), "SQS.NonExistentQueue"},
		{api("AccessDenied", smithy.FaultClient), "SQS.AccessDenied"},
		{api("MissingParameter", smithy.FaultUnknown), "SQS.MissingParameter"},
		{fmt.Errorf("send: %w", api("InvalidParameterValue", smithy.FaultClient)), "SQS.InvalidParameterValue"},
		{api("RequestThrottled", smithy.FaultClient), ""},
		{api("ThrottlingException", smithy.FaultClient), ""},
		{api("InternalError", smithy.FaultServer), ""},
		{api("ServiceUnavailable", smithy.FaultUnknown), ""},
		{errors.New("dial tcp: connection refused"), ""},
	} {
		got := sqsTaskFailure(c.err)
		switch {
		case c.want == "" && got != nil:
			t.Errorf("%v: failed the task (%+v); want it tried again", c.err, *got)
		case c.want != "" && (got == nil || got.Kind != callback.Failure || got.Error != c.want || got.Cause == ""):
			t.Errorf("%v: %+v; want a failure %s with a cause", c.err, got, c.want)
		}
	}
}
