package main

import (
	"encoding/json"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

// On Lambda (and Millrace) what a handler does not report failed is deleted: from a FIFO queue the
// sample stops a group at its poison message and reports the rest of that group, not other groups.
func TestAPoisonMessageStopsItsFIFOGroup(t *testing.T) {
	rec := func(id, group, body string) events.SQSMessage {
		return events.SQSMessage{MessageId: id, Body: body, Attributes: map[string]string{"MessageGroupId": group}}
	}
	event, _ := json.Marshal(events.SQSEvent{Records: []events.SQSMessage{
		rec("a1", "A", `{"order":1}`), rec("a2", "A", `{"poison":true}`), rec("a3", "A", `{"order":3}`),
		rec("b1", "B", `{"order":4}`),
	}})
	w := httptest.NewRecorder()
	(&handler{}).ServeHTTP(w, httptest.NewRequest("POST", "/", strings.NewReader(string(event))))
	var answer events.SQSEventResponse
	if err := json.Unmarshal(w.Body.Bytes(), &answer); err != nil {
		t.Fatal(err)
	}
	var failed []string
	for _, f := range answer.BatchItemFailures {
		failed = append(failed, f.ItemIdentifier)
	}
	if !slices.Equal(failed, []string{"a2", "a3"}) {
		t.Fatalf("batchItemFailures %v, want the poison message and the rest of its group", failed)
	}
}
