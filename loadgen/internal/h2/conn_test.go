package h2

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2/hpack"
)

// countingConn counts the write system calls a connection makes.
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// h2cServer serves prior-knowledge h2c on a loopback port: 200 and a
// short body for every request.
func h2cServer(t *testing.T) string {
	t.Helper()
	return h2cServing(t, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) })
}

// h2cServing serves prior-knowledge h2c with h on a loopback port.
func h2cServing(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: &p, Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func getBlock(t *testing.T, authority string) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := hpack.NewEncoder(&b)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", authority}, {":path", "/"}} {
		if err := enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// Concurrent streams on one connection share write system calls: the
// requests of the callers ready to run at once leave together (on one
// processor, where no two callers ever write at the same time), and every
// request is still answered.
func TestConcurrentStreamsShareWrites(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var writes atomic.Int64
	wrapConn = func(nc net.Conn) net.Conn { return countingConn{nc, &writes} }
	defer func() { wrapConn = nil }()
	addr := h2cServer(t)
	c, err := Dial(context.Background(), &Options{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(nil)
	hdr := getBlock(t, addr)
	const callers, each = 50, 40
	writes.Store(0)
	var wg sync.WaitGroup
	var ok atomic.Int64
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var s Stream
			for range each {
				s.Reset()
				if err := c.RoundTrip(context.Background(), nil, &s, hdr, nil, nil); err != nil {
					t.Error(err)
					return
				}
				if s.Status == 200 && s.DataBytes == 2 && s.ConnErr == nil {
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := ok.Load(); n != callers*each {
		t.Fatalf("%d of %d requests answered 200 with their body", n, callers*each)
	}
	// One write per request was the old cost; batching must at least
	// halve it (in practice it is far fewer).
	if w := writes.Load(); w > callers*each/2 {
		t.Errorf("%d write system calls for %d requests, want at most %d", w, callers*each, callers*each/2)
	}
	t.Logf("%d write system calls for %d requests", writes.Load(), callers*each)
}

// A stream's Timeout and its watched context end a round trip as an
// expire channel and a select on the context did: a request the server
// does not answer in time fails with ErrExpired after about Timeout and
// resets only its stream; a timer that fired cannot expire the round trips
// that follow on the same Stream; canceling the watched context ends a
// round trip in flight with the context's error.
func TestStreamTimeoutAndWatch(t *testing.T) {
	addr := h2cServing(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	c, err := Dial(context.Background(), &Options{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(nil)
	fast, slow := getBlock(t, addr), pathBlock(t, addr, "/slow")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var s Stream
	s.Watch(ctx)
	defer s.Unwatch()
	const timeout = 100 * time.Millisecond
	s.Timeout = timeout
	for i := range 3 {
		s.Reset()
		start := time.Now()
		err := c.RoundTrip(ctx, nil, &s, slow, nil, nil)
		if took := time.Since(start); err != ErrExpired || took < timeout || took > 5*time.Second {
			t.Fatalf("slow request %d: %v after %v, want ErrExpired after %v", i, err, took, timeout)
		}
		// Round trips that follow, on the same stream and connection, are
		// answered: nothing of the fired timer is left to expire them.
		for j := range 200 {
			s.Reset()
			if err := c.RoundTrip(ctx, nil, &s, fast, nil, nil); err != nil || s.Status != 200 || s.DataBytes != 2 {
				t.Fatalf("request %d after timeout %d: err %v status %d body %d bytes", j, i, err, s.Status, s.DataBytes)
			}
		}
	}

	// A timeout as long as the response takes: whichever comes first, the
	// outcome is whole (an answer, or ErrExpired), never a mix.
	for i := range 300 {
		s.Reset()
		s.Timeout = time.Duration(i%50) * 10 * time.Microsecond
		err := c.RoundTrip(ctx, nil, &s, fast, nil, nil)
		if err == nil && (s.Status != 200 || s.DataBytes != 2) || err != nil && err != ErrExpired {
			t.Fatalf("racing timeout %v: err %v status %d body %d bytes", s.Timeout, err, s.Status, s.DataBytes)
		}
	}

	s.Timeout = 10 * time.Second
	go func() {
		time.Sleep(50 * time.Millisecond)
		cancel()
	}()
	s.Reset()
	start := time.Now()
	if err := c.RoundTrip(ctx, nil, &s, slow, nil, nil); err != context.Canceled || time.Since(start) > 5*time.Second {
		t.Fatalf("canceled request: %v after %v, want context.Canceled at once", err, time.Since(start))
	}
	if !c.Usable() {
		t.Fatal("the connection is not usable after stream timeouts and a cancel")
	}
}

func pathBlock(t *testing.T, authority, path string) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := hpack.NewEncoder(&b)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", authority}, {":path", path}} {
		if err := enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}
