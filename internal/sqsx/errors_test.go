package sqsx

import (
	"errors"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
)

func TestClassify(t *testing.T) {
	api := func(code string) error {
		return fmt.Errorf("operation error: %w", &smithy.GenericAPIError{Code: code, Message: "m"})
	}
	cases := []struct {
		name string
		err  error
		want ErrorClass
	}{
		{"a missing queue is not found", &types.QueueDoesNotExist{}, NotFound},
		{"the query-protocol code of a missing queue is not found", api("AWS.SimpleQueueService.NonExistentQueue"), NotFound},
		{"a recently deleted name is waited for", api("AWS.SimpleQueueService.QueueDeletedRecently"), Wait},
		{"an invalid attribute value is refused", api("InvalidAttributeValue"), Refused},
		{"a prefixed invalid attribute name is refused", api("AWS.SimpleQueueService.InvalidAttributeName"), Refused},
		{"access denied is refused", api("AccessDenied"), Refused},
		{"a kms key SQS cannot use is refused", api("KmsAccessDenied"), Refused},
		{"throttling is transient", api("RequestThrottled"), Transient},
		{"a server error is transient", api("InternalError"), Transient},
		{"a network error is transient", errors.New("dial tcp: connection refused"), Transient},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got, _ := Classify(tc.err); got != tc.want {
				t.Fatalf("Classify(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
	if got := Message(api("InvalidAttributeValue")); got != "InvalidAttributeValue: m" {
		t.Fatalf("Message = %q", got)
	}
}
