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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: &p, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok"))
	})}
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
