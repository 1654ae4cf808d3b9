// Command loadgen is the gateway benchmark's load generator, run as a second process so that its
// CPU is not the measured process's. It sends a bounded number of messages of a given size with a
// fixed number of concurrent senders, either as HTTP requests to the gateway or, for the baseline,
// as bare SDK SendMessage calls to the same SQS endpoint, and prints one JSON line:
//
//	{"requests":4000,"errors":0,"seconds":1.9,"perSecond":2105,"p50ms":3.6,"p99ms":8.1}
//
// Warm-up requests (one per sender) are sent first and not counted.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/millrace-io/millrace/internal/sqsx"
)

// Result is what loadgen prints.
type Result struct {
	Requests  int     `json:"requests"`
	Errors    int     `json:"errors"`
	FirstErr  string  `json:"firstError,omitempty"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"perSecond"`
	P50ms     float64 `json:"p50ms"`
	P99ms     float64 `json:"p99ms"`
}

type headers []string

func (h *headers) String() string     { return strings.Join(*h, ", ") }
func (h *headers) Set(v string) error { *h = append(*h, v); return nil }

func main() {
	var target, endpoint, queueURL string
	var hdrs headers
	var concurrency, requests, size int
	var limit time.Duration
	flag.StringVar(&target, "url", "", "Gateway URL to POST messages to (HTTP mode).")
	flag.Var(&hdrs, "header", "A request header, `Name: value` (repeatable).")
	flag.StringVar(&endpoint, "sqs-endpoint", "", "SQS endpoint for bare SendMessage calls (baseline mode).")
	flag.StringVar(&queueURL, "queue-url", "", "Queue URL for bare SendMessage calls.")
	flag.IntVar(&concurrency, "concurrency", 8, "Concurrent senders.")
	flag.IntVar(&requests, "requests", 4000, "Messages to send (after warm-up).")
	flag.IntVar(&size, "size", 1024, "Message size in bytes (a JSON document).")
	flag.DurationVar(&limit, "timeout", 2*time.Minute, "Stop after this long, whatever was sent.")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	body := message(size)
	var send func(context.Context) error
	switch {
	case target != "":
		send = httpSender(target, body, hdrs, concurrency)
	case endpoint != "" && queueURL != "":
		client, err := sqsx.New(ctx, sqsx.Options{Endpoint: endpoint, Region: "us-east-1", NetHTTP: true}) // the SDK as a bare program has it
		if err != nil {
			fail(err)
		}
		send = func(ctx context.Context) error {
			_, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(queueURL), MessageBody: aws.String(string(body))})
			return err
		}
	default:
		fail(fmt.Errorf("give -url, or -sqs-endpoint and -queue-url"))
	}
	res := run(ctx, send, concurrency, requests)
	_ = json.NewEncoder(os.Stdout).Encode(res)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "loadgen:", err)
	os.Exit(2)
}

// message is a JSON document of exactly size bytes.
func message(size int) []byte {
	const frame = `{"pad":""}`
	return []byte(`{"pad":"` + strings.Repeat("x", max(size-len(frame), 0)) + `"}`)
}

func httpSender(target string, body []byte, hdrs headers, concurrency int) func(context.Context) error {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: concurrency, MaxConnsPerHost: concurrency}}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		for _, h := range hdrs {
			name, value, _ := strings.Cut(h, ":")
			req.Header.Set(strings.TrimSpace(name), strings.TrimSpace(value))
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return nil
	}
}

// run warms up with one request per sender, then sends requests with concurrency senders and
// measures each call.
func run(ctx context.Context, send func(context.Context) error, concurrency, requests int) Result {
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() { _ = send(ctx) })
	}
	wg.Wait()
	var next atomic.Int64
	var mu sync.Mutex
	var errs int
	var firstErr string
	latencies := make([]time.Duration, 0, requests)
	start := time.Now()
	for range concurrency {
		wg.Go(func() {
			mine := make([]time.Duration, 0, requests/concurrency+1)
			var bad int
			var first string
			for next.Add(1) <= int64(requests) && ctx.Err() == nil {
				t := time.Now()
				if err := send(ctx); err != nil {
					bad++
					if first == "" {
						first = err.Error()
					}
					continue
				}
				mine = append(mine, time.Since(t))
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			errs += bad
			if firstErr == "" {
				firstErr = first
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	took := time.Since(start)
	slices.Sort(latencies)
	ms := func(q float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		return float64(latencies[int(q*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	return Result{Requests: len(latencies), Errors: errs, FirstErr: firstErr, Seconds: took.Seconds(),
		PerSecond: float64(len(latencies)) / took.Seconds(), P50ms: ms(0.50), P99ms: ms(0.99)}
}
