package main

import (
	"net"
	"testing"
	"time"

	"github.com/millrace-io/millrace/internal/gateway"
	"github.com/millrace-io/millrace/internal/httpserver"
	"github.com/millrace-io/millrace/internal/httpserver/slowclient"
)

// Before any authentication, anyone who reaches the gateway could hold connections open by
// sending a body a byte at a time (40 such connections stayed open for 24 s and more). The read
// timeout cuts them off.
func TestSlowBodiesCannotExhaustTheUnauthenticatedGateway(t *testing.T) {
	srv := &gateway.Server{Auth: &gateway.KubernetesAuthorizer{}}
	s := httpServer("", srv.Handler(), httpserver.Limits{Read: 300 * time.Millisecond, Write: 500 * time.Millisecond})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(ln) }()
	defer s.Close()
	if held := slowclient.Held(ln.Addr().String(), 40, slowclient.SlowBody("POST", "/v1/namespaces/shop/queues/orders/messages"), 10*time.Second); held > 0 {
		t.Errorf("%d of 40 slow connections still open after 10s", held)
	}
}
