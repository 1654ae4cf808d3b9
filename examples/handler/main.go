// Command handler is Millrace's sample Consumer handler: an HTTP server that takes Lambda SQS
// events from the dispatcher, as a function behind Lambda's SQS event source mapping would.
//
//   - An order ({"order": n}) is handled in --work time (per batch) and recorded.
//   - A poison message ({"poison": true}) fails, alone: it is reported in batchItemFailures and
//     comes back until the queue's redrive policy moves it to the dead-letter queue. From a FIFO
//     queue (records with a MessageGroupId), the rest of its group in the batch is reported too,
//     unhandled: as on Lambda, what a handler does not report is deleted, so a FIFO handler stops a
//     group at its first failure to keep the group's order.
//   - A workflow task ({"id": ..., "amount": ...}, sent by a WorkflowRun's Charge state) is charged:
//     the answer {"charged": amount, "for": id} becomes the task's output.
//
// It is idempotent the way handlers of a Standard queue must be: the record file (--record) lists
// every message id handled, and a redelivered id is handled again harmlessly.
//
// Usage: handler [--addr :8080 | $PORT] [--record FILE | $HANDLER_RECORD] [--work 200ms | $HANDLER_WORK]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

func main() {
	addr := flag.String("addr", envOr("PORT", ":8080"), "listen address")
	record := flag.String("record", os.Getenv("HANDLER_RECORD"), "append each handled message id to this file")
	defaultWork, err := time.ParseDuration(envOr("HANDLER_WORK", "200ms"))
	if err != nil {
		log.Fatalf("HANDLER_WORK: %v", err)
	}
	work := flag.Duration("work", defaultWork, "time spent on each batch ($HANDLER_WORK)")
	flag.Parse()
	if !strings.Contains(*addr, ":") {
		*addr = ":" + *addr // PORT=8080
	}
	h := &handler{work: *work}
	if *record != "" {
		f, err := os.OpenFile(*record, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		h.record = f
	}
	srv := &http.Server{Addr: *addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown) // finish the batch in hand
	}()
	log.Printf("handler listening on %s", *addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

type handler struct {
	work   time.Duration
	mu     sync.Mutex
	record *os.File
}

type failure struct {
	ItemIdentifier string `json:"itemIdentifier"`
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" {
		w.WriteHeader(http.StatusOK)
		return
	}
	var e events.SQSEvent
	if err := json.NewDecoder(r.Body).Decode(&e); err != nil {
		http.Error(w, "not a Lambda SQS event: "+err.Error(), http.StatusBadRequest)
		return
	}
	time.Sleep(h.work)
	answer := map[string]any{}
	var failed []failure
	stopped := map[string]bool{} // FIFO message groups with a failure in this batch
	for _, rec := range e.Records {
		if group := rec.Attributes["MessageGroupId"]; group != "" && stopped[group] {
			failed = append(failed, failure{rec.MessageId}) // after a failure of its group: left for later
			continue
		}
		var body struct {
			Order  *float64 `json:"order"`
			Poison bool     `json:"poison"`
			ID     string   `json:"id"`
			Amount *float64 `json:"amount"`
		}
		_ = json.Unmarshal([]byte(rec.Body), &body)
		switch {
		case body.Poison:
			log.Printf("poison message %s (receive %s): failing it", rec.MessageId, rec.Attributes["ApproximateReceiveCount"])
			failed = append(failed, failure{rec.MessageId})
			if group := rec.Attributes["MessageGroupId"]; group != "" {
				stopped[group] = true
			}
			continue
		case body.Amount != nil:
			answer["charged"], answer["for"] = *body.Amount, body.ID
			log.Printf("charged %v for %s", *body.Amount, body.ID)
		default:
			log.Printf("handled %s: %s", rec.MessageId, rec.Body)
		}
		h.done(rec.MessageId)
	}
	if len(failed) > 0 {
		answer["batchItemFailures"] = failed
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(answer)
}

func (h *handler) done(id string) {
	if h.record == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	fmt.Fprintln(h.record, id)
}
