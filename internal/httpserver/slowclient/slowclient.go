// Package slowclient attacks an HTTP server the way a slow client does, for tests: it opens
// connections that send a little and then trickle, or go quiet, and counts how many of them the
// server still holds open at the end.
package slowclient

import (
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// Attack is one way of holding a connection.
type Attack struct {
	// Head is sent at once, e.g. a request line and headers announcing a large body.
	Head string
	// Trickle, when set, is sent one byte at a time after Head, a byte every 50 ms, for as long as
	// the connection stays open (a slow body, or slow headers).
	Trickle bool
}

// SlowBody announces a 100 kB body to path and sends it a byte at a time. The size is under the
// 256 KiB that Go's server reads past a handler that did not read the body (to reuse the
// connection), so even a handler that answers without reading (401) keeps the connection reading.
func SlowBody(method, path string) Attack {
	return Attack{Head: method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n", Trickle: true}
}

// SlowHeaders sends a request line and then one header byte at a time.
func SlowHeaders(path string) Attack {
	return Attack{Head: "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ", Trickle: true}
}

// Idle sends one whole request, reads the answer and keeps the connection open without a word.
func Idle(path string) Attack {
	return Attack{Head: "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"}
}

// Held opens n connections to addr, each making the attack, and returns how many the server has
// not closed by the time bound has passed. It returns as soon as the server has closed them all.
func Held(addr string, n int, a Attack, bound time.Duration) int {
	deadline := time.Now().Add(bound)
	var mu sync.Mutex
	held := 0
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !closedBy(addr, a, deadline) {
				mu.Lock()
				held++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return held
}

// closedBy makes one attack and reports whether the server closed the connection before deadline.
func closedBy(addr string, a Attack, deadline time.Time) bool {
	conn, err := net.DialTimeout("tcp", addr, time.Until(deadline))
	if err != nil {
		return true // refused: nothing held
	}
	defer conn.Close()
	_ = conn.SetDeadline(deadline)
	closed := make(chan struct{})
	go func() {
		// The server may answer (408, 400) before closing: read until the end of the connection.
		_, _ = io.Copy(io.Discard, conn)
		close(closed)
	}()
	if _, err := conn.Write([]byte(a.Head)); err != nil {
		return true
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-closed:
			return time.Now().Before(deadline)
		case <-tick.C:
			if !a.Trickle {
				continue
			}
			if _, err := conn.Write([]byte("a")); err != nil && time.Now().Before(deadline) {
				<-closed
				return true
			}
		}
	}
}

// Stalled opens n connections to addr at once, each posting to path a body of size bytes of which
// it sends all but the last, and keeps them all open for wait. It returns how many the server
// answered meanwhile: a server that holds every body it is sent answers none, and holds n × size
// bytes until its read timeout.
func Stalled(addr, path string, n, size int, wait time.Duration) (answered int) {
	head := "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(size) + "\r\n\r\n"
	body := make([]byte, size-1)
	for i := range body {
		body[i] = 'x'
	}
	deadline := time.Now().Add(wait)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			conn, err := net.DialTimeout("tcp", addr, wait)
			if err != nil {
				return
			}
			defer conn.Close()
			_ = conn.SetDeadline(deadline)
			go func() { _, _ = conn.Write(append([]byte(head), body...)) }() // the server may stop reading
			status := make([]byte, len("HTTP/1.1 200"))
			if _, err := io.ReadFull(conn, status); err == nil {
				mu.Lock()
				answered++
				mu.Unlock()
			}
			<-time.After(time.Until(deadline)) // hold the connection for the whole attack
		})
	}
	wg.Wait()
	return answered
}
