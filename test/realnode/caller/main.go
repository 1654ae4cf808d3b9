// Command caller is test/realnode's client pod: it POSTs one message to the gateway with the
// pod's projected ServiceAccount token (read from the kubelet-mounted file, as an application in
// a pod would) and once more without a token, and prints both answers as JSON lines on stdout,
// which the test reads from the pod's log. Test-only; not one of Millrace's images.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

type answer struct {
	Auth   string `json:"auth"`
	Status int    `json:"status"`
	Body   string `json:"body"`
	Error  string `json:"error,omitempty"`
}

func main() {
	url := flag.String("url", "", "the gateway's messages URL")
	tokenFile := flag.String("token-file", "/var/run/secrets/tokens/gateway", "the projected token")
	body := flag.String("body", `{"order":1000}`, "the message")
	flag.Parse()
	token, err := os.ReadFile(*tokenFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	post := func(auth string) answer {
		// kube-proxy's rules for a new Service can lag a moment: retry connection errors briefly.
		var a answer
		for attempt := 0; attempt < 20; attempt++ {
			req, _ := http.NewRequest(http.MethodPost, *url, bytes.NewBufferString(*body))
			req.Header.Set("Content-Type", "application/json")
			if auth == "token" {
				req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
			}
			resp, err := client.Do(req)
			if err != nil {
				a = answer{Auth: auth, Error: err.Error()}
				time.Sleep(500 * time.Millisecond)
				continue
			}
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			_ = resp.Body.Close()
			return answer{Auth: auth, Status: resp.StatusCode, Body: string(b)}
		}
		return a
	}
	enc := json.NewEncoder(os.Stdout)
	_ = enc.Encode(post("token"))
	_ = enc.Encode(post("none"))
}
