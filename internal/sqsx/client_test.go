package sqsx_test

import (
	"context"
	"encoding/pem"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/millrace-io/millrace/internal/sqsx"
	"github.com/millrace-io/millrace/internal/testenv"
)

// The client reaches SQS over TLS through internal/directhttp with the CA bundle the SDK was
// given (AWS_CA_BUNDLE), as with a private endpoint or an emulator behind TLS; without the bundle
// the server's certificate is refused. The endpoint is fauxqs behind a TLS-terminating proxy.
func TestTheClientSpeaksTLSWithTheSDKsCABundle(t *testing.T) {
	emulator := testenv.FauxqsFor(t)
	target, _ := url.Parse(emulator.Endpoint)
	proxy := httptest.NewTLSServer(httputil.NewSingleHostReverseProxy(target))
	defer proxy.Close()
	bundle := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: proxy.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	testenv.UseLocalCredentials()
	ctx := context.Background()
	call := func() error {
		c, err := sqsx.New(ctx, sqsx.Options{Endpoint: proxy.URL, Region: "us-east-1"})
		if err != nil {
			return err
		}
		out, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("tls-test")})
		if err != nil {
			return err
		}
		_, err = c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: out.QueueUrl, MessageBody: aws.String("over TLS")})
		return err
	}
	t.Setenv("AWS_CA_BUNDLE", bundle)
	if err := call(); err != nil {
		t.Fatalf("with the CA bundle: %v", err)
	}
	t.Setenv("AWS_CA_BUNDLE", "")
	if err := call(); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("without the CA bundle: %v, want a certificate error", err)
	}
}
