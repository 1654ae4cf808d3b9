package callback_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/smithy-go"

	"github.com/millrace-io/millrace/internal/callback"
	"github.com/millrace-io/millrace/internal/tasktoken"
)

// failingSink cannot record anything (the API server is away).
type failingSink struct{ calls int }

func (f *failingSink) Report(context.Context, tasktoken.Claims, callback.Result) error {
	f.calls++
	return errors.New("etcdserver: request timed out")
}

// sfnClient is AWS's own Step Functions client, pointed at the callback API: what a worker written
// for Step Functions uses, with any credentials (the task token is the capability).
func sfnClient(url string) *sfn.Client {
	return sfn.New(sfn.Options{BaseEndpoint: aws.String(url), Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("any", "thing", ""),
		Retryer:     aws.NopRetryer{}})
}

// A worker written for Step Functions reports through AWS's SDK unchanged: SendTaskSuccess with its
// output as a JSON string, SendTaskFailure, SendTaskHeartbeat; each refusal comes back as the SDK's
// typed error for it.
func TestStepFunctionsSDKClientsReportTaskResults(t *testing.T) {
	signer, current, sink, server := serveRun(t, "Approve", 1)
	client, ctx := sfnClient(server.URL), context.Background()
	token, _ := signer.Issue(current)

	if _, err := client.SendTaskHeartbeat(ctx, &sfn.SendTaskHeartbeatInput{TaskToken: aws.String(token)}); err != nil {
		t.Fatalf("SendTaskHeartbeat: %v", err)
	}
	if _, err := client.SendTaskSuccess(ctx, &sfn.SendTaskSuccessInput{TaskToken: aws.String(token), Output: aws.String(`{"approved": true}`)}); err != nil {
		t.Fatalf("SendTaskSuccess: %v", err)
	}
	if _, err := client.SendTaskFailure(ctx, &sfn.SendTaskFailureInput{TaskToken: aws.String(token), Error: aws.String("Order.Rejected"), Cause: aws.String("out of stock")}); err != nil {
		t.Fatalf("SendTaskFailure: %v", err)
	}
	if len(sink.got) != 3 || sink.got[0].Kind != callback.Heartbeat || string(sink.got[1].Output) != `{"approved": true}` ||
		sink.got[2].Error != "Order.Rejected" || sink.got[2].Cause != "out of stock" {
		t.Fatalf("recorded %+v", sink.got)
	}

	staleToken, leakedToken, forgedToken, unknownToken := refusedTokens(signer, current)
	var invalidToken *types.InvalidToken
	var timedOut *types.TaskTimedOut
	var doesNotExist *types.TaskDoesNotExist
	var invalidOutput *types.InvalidOutput
	for name, tc := range map[string]struct {
		token, output string
		want          any
	}{
		"a forged token":                  {forgedToken, `{}`, &invalidToken},
		"a token that is not one":         {"garbage", `{}`, &invalidToken},
		"a token of an earlier attempt":   {staleToken, `{}`, &timedOut},
		"an expired token":                {leakedToken, `{}`, &timedOut},
		"a token of a run that is gone":   {unknownToken, `{}`, &doesNotExist},
		"an output that is not JSON":      {token, `{"approved": tru`, &invalidOutput},
		"an empty output":                 {token, ``, &invalidOutput},
		"an output of two JSON documents": {token, `{} {}`, &invalidOutput},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := client.SendTaskSuccess(ctx, &sfn.SendTaskSuccessInput{TaskToken: aws.String(tc.token), Output: aws.String(tc.output)})
			if !errors.As(err, tc.want) {
				t.Fatalf("error %v, want %T", err, tc.want)
			}
		})
	}
	if len(sink.got) != 3 {
		t.Fatalf("a refused report was recorded: %+v", sink.got[3:])
	}
}

// Step Functions' field constraints are checked as its API checks them (ValidationException), and
// a result that could not be recorded is answered 503, which the SDKs retry.
func TestStepFunctionsProtocolLimits(t *testing.T) {
	signer, current, _, server := serveRun(t, "Approve", 1)
	token, _ := signer.Issue(current)
	client, ctx := sfnClient(server.URL), context.Background()
	code := func(err error) string {
		var api smithy.APIError
		if errors.As(err, &api) {
			return api.ErrorCode()
		}
		return "no API error: " + errors.Unwrap(err).Error()
	}
	huge := `"` + strings.Repeat("x", 262144) + `"` // 2 bytes over the limit
	if _, err := client.SendTaskSuccess(ctx, &sfn.SendTaskSuccessInput{TaskToken: aws.String(token), Output: aws.String(huge)}); code(err) != "ValidationException" ||
		!strings.Contains(err.Error(), "'output'") {
		t.Errorf("an output over 256 KiB: %v", err)
	}
	if _, err := client.SendTaskFailure(ctx, &sfn.SendTaskFailureInput{TaskToken: aws.String(token), Error: aws.String(strings.Repeat("é", 257))}); code(err) != "ValidationException" ||
		!strings.Contains(err.Error(), "'error'") {
		t.Errorf("an error of 257 characters: %v", err)
	}
	if _, err := client.SendTaskFailure(ctx, &sfn.SendTaskFailureInput{TaskToken: aws.String(token), Error: aws.String(strings.Repeat("é", 256)),
		Cause: aws.String(strings.Repeat("c", 32768))}); err != nil {
		t.Errorf("an error and a cause at their limits: %v", err)
	}
	for name, tc := range map[string]struct {
		target, body, code string
		status             int
	}{
		"an operation not served":   {"AWSStepFunctions.StartExecution", `{}`, "UnknownOperationException", 400},
		"no operation":              {"", `{}`, "UnknownOperationException", 400},
		"a body that is not JSON":   {"AWSStepFunctions.SendTaskHeartbeat", `nope`, "SerializationException", 400},
		"no token":                  {"AWSStepFunctions.SendTaskSuccess", `{"output":"{}"}`, "ValidationException", 400},
		"no output":                 {"AWSStepFunctions.SendTaskSuccess", `{"taskToken":"` + token + `"}`, "ValidationException", 400},
		"a body over the API's cap": {"AWSStepFunctions.SendTaskSuccess", `{"output":"` + strings.Repeat("\\\"", 900<<10) + `"}`, "ValidationException", 400},
	} {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, server.URL+"/", strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/x-amz-json-1.0")
			req.Header.Set("X-Amz-Target", tc.target)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || resp.Header.Get("X-Amzn-ErrorType") != tc.code || !strings.Contains(string(body), `"__type":"`+tc.code+`"`) {
				t.Fatalf("%d %s %s", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), body)
			}
		})
	}

	failing := &failingSink{}
	down := httptest.NewServer(callback.Handler(signer, failing))
	defer down.Close()
	retrying := sfn.New(sfn.Options{BaseEndpoint: aws.String(down.URL), Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("any", "thing", "")}) // the SDK's standard retryer
	if _, err := retrying.SendTaskHeartbeat(ctx, &sfn.SendTaskHeartbeatInput{TaskToken: aws.String(token)}); code(err) != "ServiceUnavailable" || failing.calls != 3 {
		t.Errorf("a result that could not be recorded: %v after %d tries, want ServiceUnavailable after the SDK's 3", err, failing.calls)
	}
}
