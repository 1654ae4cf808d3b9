package controller

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/millrace-io/millrace/internal/callback"
	"github.com/millrace-io/millrace/internal/httpserver"
	"github.com/millrace-io/millrace/internal/httpserver/slowclient"
	"github.com/millrace-io/millrace/internal/tasktoken"
	"github.com/millrace-io/millrace/internal/testenv"
)

// Any pod may reach the callback API. Connections that send a body a byte at a time are cut
// after the read timeout instead of being held for as long as the sender likes.
func TestSlowBodiesCannotExhaustTheCallbackServer(t *testing.T) {
	signer, _ := tasktoken.NewSigner([]byte(strings.Repeat("k", 32)))
	addr := testenv.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &CallbackServer{Addr: addr, Handler: callback.Handler(signer, nil),
		Limits: httpserver.Limits{Read: 300 * time.Millisecond, Write: 500 * time.Millisecond}}
	go func() { _ = s.Start(ctx) }()
	testenv.Eventually(t, 10*time.Second, func() error {
		resp, err := http.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
		}
		return err
	})
	if held := slowclient.Held(addr, 40, slowclient.SlowBody("POST", "/v1/tasks/success"), 10*time.Second); held > 0 {
		t.Errorf("%d of 40 slow connections still open after 10s", held)
	}
}
