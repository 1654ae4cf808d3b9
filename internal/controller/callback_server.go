package controller

import (
	"context"
	"errors"
	"net/http"

	"github.com/millrace-io/millrace/internal/httpserver"
)

// CallbackServer serves the task callback API on every replica (results are written through the
// API server, so any replica can take them). Any pod that can reach the port may connect, so every
// phase of a connection is bounded (internal/httpserver): the handler's deadline (15s) stays
// within the dispatcher's 30s of retries for one report.
type CallbackServer struct {
	Addr    string
	Handler http.Handler
	// Limits are httpserver's defaults unless set (tests shorten them).
	Limits httpserver.Limits
}

// NeedLeaderElection is false: every replica takes reports.
func (s *CallbackServer) NeedLeaderElection() bool { return false }

// Start serves until ctx ends.
func (s *CallbackServer) Start(ctx context.Context) error {
	server := httpserver.New(s.Addr, s.Handler, s.Limits)
	go func() {
		<-ctx.Done()
		_ = server.Close()
	}()
	if err := server.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
