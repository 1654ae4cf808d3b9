package sqsx

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
)

// ErrorClass says how a controller should treat an SQS error.
type ErrorClass int

const (
	// Transient errors (network, throttling, 5xx) are retried with backoff.
	Transient ErrorClass = iota
	// Refused errors are SQS saying no to what the spec asks (an invalid attribute, access denied,
	// a KMS key SQS cannot use): the resource becomes Stalled and is not retried hot.
	Refused
	// Wait errors clear by themselves after a known time (a queue name deleted less than 60 s ago).
	Wait
	// NotFound means the queue does not exist.
	NotFound
)

// refusedCodes are SQS error codes that a retry with the same request cannot fix.
var refusedCodes = map[string]bool{
	"InvalidAttributeName":        true,
	"InvalidAttributeValue":       true,
	"InvalidParameterValue":       true,
	"InvalidParameterCombination": true,
	"MissingParameter":            true,
	"QueueNameExists":             true,
	"QueueAlreadyExists":          true,
	"UnsupportedOperation":        true,
	"AccessDenied":                true,
	"AccessDeniedException":       true,
	"InvalidSecurity":             true,
	"InvalidAddress":              true,
	"KmsAccessDenied":             true,
	"KmsDisabled":                 true,
	"KmsInvalidKeyUsage":          true,
	"KmsInvalidState":             true,
	"KmsNotFound":                 true,
	"KmsOptInRequired":            true,
	"ValidationError":             true,
	"OverLimit":                   true,
}

// QueueDeletedRecentlyWait is how long SQS refuses a name after its queue was deleted.
const QueueDeletedRecentlyWait = 60 * time.Second

// Classify returns the class of an SQS error and its code ("" when it is not an API error).
func Classify(err error) (ErrorClass, string) {
	if err == nil {
		return Transient, ""
	}
	var notFound *types.QueueDoesNotExist
	if errors.As(err, &notFound) {
		return NotFound, notFound.ErrorCode()
	}
	var deleted *types.QueueDeletedRecently
	if errors.As(err, &deleted) {
		return Wait, deleted.ErrorCode()
	}
	var api smithy.APIError
	if !errors.As(err, &api) {
		return Transient, ""
	}
	code := api.ErrorCode()
	// SQS's JSON protocol keeps the query protocol's codes for compatibility: "AWS.SimpleQueueService.X".
	short := strings.TrimPrefix(code, "AWS.SimpleQueueService.")
	switch {
	case short == "NonExistentQueue" || short == "QueueDoesNotExist":
		return NotFound, code
	case short == "QueueDeletedRecently":
		return Wait, code
	case refusedCodes[short]:
		return Refused, code
	}
	return Transient, code
}

// Message is the human part of an SQS error: "<code>: <message>" for API errors.
func Message(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		if api.ErrorMessage() == "" {
			return api.ErrorCode()
		}
		return fmt.Sprintf("%s: %s", api.ErrorCode(), api.ErrorMessage())
	}
	return err.Error()
}
