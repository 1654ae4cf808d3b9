package controller

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/millrace-io/millrace/internal/callback"
	"github.com/millrace-io/millrace/internal/httpserver"
	"github.com/millrace-io/millrace/internal/httpserver/slowclient"
	"github.com/millrace-io/millrace/internal/tasktoken"
	"github.com/millrace-io/millrace/internal/testenv"
)

// startCallbackServer serves the callback API (with no sink: no report gets past its token) on a
// free 127.0.0.1 port until the test ends.
func startCallbackServer(t *testing.T, limits httpserver.Limits) (addr string) {
	signer, _ := tasktoken.NewSigner([]byte(strings.Repeat("k", 32)))
	addr = testenv.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s := &CallbackServer{Addr: addr, Handler: callback.Handler(signer, nil), Limits: limits}
	go func() { _ = s.Start(ctx) }()
	testenv.Eventually(t, 10*time.Second, func() error {
		resp, err := http.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
		}
		return err
	})
	return addr
}

// Any pod may reach the callback API. Connections that send a body a byte at a time are cut
// after the read timeout instead of being held for as long as the sender likes.
func TestSlowBodiesCannotExhaustTheCallbackServer(t *testing.T) {
	addr := startCallbackServer(t, httpserver.Limits{Read: 300 * time.Millisecond, Write: 500 * time.Millisecond})
	if held := slowclient.Held(addr, 40, slowclient.SlowBody("POST", "/v1/tasks/success"), 10*time.Second); held > 0 {
		t.Errorf("%d of 40 slow connections still open after 10s", held)
	}
}

// Any pod may reach the callback API, and each report may be 256 KiB: connections that send all
// of such a body but its last byte made the server hold every one of them (and io.ReadAll's slack)
// until its read timeout — a thousand are past the manager's memory limit. The bodies held at once
// are bounded (httpserver.Limits.BodyBytes, 16 MiB by default): the requests past it are answered
// 503 at once (the dispatcher and the SDKs retry) while the others stall.
func TestStalledBodiesCannotExhaustTheCallbackServersMemory(t *testing.T) {
	addr := startCallbackServer(t, httpserver.Limits{}) // production limits
	const connections, size = 300, callback.MaxBody
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	peak := make(chan uint64)
	go func() { // the heap's peak during the attack, for docs/security.md
		var most uint64
		for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			most = max(most, m.HeapInuse)
		}
		peak <- most
	}()
	answered := slowclient.Stalled(addr, "/v1/tasks/success", connections, size, 5*time.Second)
	t.Logf("%d of %d stalled bodies answered at once; heap in use grew by at most %d MiB", answered, connections, (<-peak-before.HeapInuse)>>20)
	// 16 MiB hold 64 bodies of 256 KiB: at least the rest must have been turned away.
	if want := connections - (16<<20)/size; answered < want {
		t.Errorf("%d of %d stalled 256 KiB bodies answered (the rest held), want at least %d answered", answered, connections, want)
	}
	// The attackers gone, their share of the budget is back: a report is read again (and refused
	// for its token, not for want of room).
	testenv.Eventually(t, 20*time.Second, func() error {
		resp, err := http.Post("http://"+addr+"/v1/tasks/heartbeat", "application/json", strings.NewReader(`{"taskToken":"garbage"}`))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
}

// The body budget is shared, so a share of it is per client address: one pod stalling more
// 256 KiB reports than the whole budget holds no longer turns every other pod's reports away
// (before, they were all answered 503 for as long as it kept its connections).
func TestOnePodStallingBodiesCannotStarveOtherPodsReports(t *testing.T) {
	addr := startCallbackServer(t, httpserver.Limits{}) // production limits
	attack := make(chan int)
	go func() { attack <- slowclient.Stalled(addr, "/v1/tasks/success", 80, callback.MaxBody, 4*time.Second) }()
	time.Sleep(1500 * time.Millisecond) // 80 × 256 KiB sent: more than the whole budget
	other := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext}}
	for i := range 3 {
		// 4 KiB: more than the stalled bodies leave of the whole budget.
		resp, err := other.Post("http://"+addr+"/v1/tasks/heartbeat", "application/json", strings.NewReader(`{"taskToken":"garbage"}`+strings.Repeat(" ", 4<<10)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest { // read and judged, not turned away
			t.Errorf("report %d of another pod answered %d while one pod stalls bodies", i, resp.StatusCode)
		}
	}
	if answered := <-attack; answered < 80-(4<<20)/callback.MaxBody {
		t.Errorf("the stalling pod had %d of 80 bodies turned away, want all but its share's %d", answered, (4<<20)/callback.MaxBody)
	}
}
