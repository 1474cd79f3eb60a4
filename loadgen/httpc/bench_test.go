package httpc

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const benchResp = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"

// fastServer answers every GET (no request body) with benchResp, as cheaply
// as it can, so the benchmark measures the client.
func fastServer(b *testing.B) string { return cannedServer(b, benchResp) }

// cannedServer answers every GET (no request body) with resp.
func cannedServer(b *testing.B, respText string) string {
	resp := []byte(respText)
	return newRawServer(b, func(c net.Conn, br *bufio.Reader) {
		for {
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					return
				}
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					break
				}
			}
			if _, err := c.Write(resp); err != nil {
				return
			}
		}
	}).addr
}

// BenchmarkH1 is one client, one request at a time, to a loopback server.
// It must report 0 allocs/op.
func BenchmarkH1(b *testing.B) {
	addr := fastServer(b)
	tr := NewTransport(Options{})
	defer tr.Close()
	c := tr.NewClient()
	defer c.Close()
	req := &Request{Method: "GET", Scheme: "http", Host: addr, Target: []byte("/fast?x=1"),
		Header: []Header{{"X-Loadcap-Shadow", []byte("drill-1")}}}
	var res Result
	c.Do(req, &res) // connect outside the measurement
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		c.Do(req, &res)
		if res.Status != 200 {
			b.Fatalf("status %d class %q err %v", res.Status, res.Class, res.Err)
		}
	}
}

// BenchmarkH1Bodies covers the other body framings; all must be 0 allocs/op.
func BenchmarkH1Bodies(b *testing.B) {
	chunk := strings.Repeat("c", 1000)
	var chunked strings.Builder
	chunked.WriteString("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
	for range 10 {
		chunked.WriteString("3e8\r\n" + chunk + "\r\n")
	}
	chunked.WriteString("0\r\n\r\n")
	tests := []struct {
		name string
		resp string
	}{
		{name: "chunked 10KB", resp: chunked.String()},
		{name: "length 256KB", resp: "HTTP/1.1 200 OK\r\nContent-Length: 262144\r\n\r\n" + strings.Repeat("x", 262144)},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			addr := cannedServer(b, tt.resp)
			tr := NewTransport(Options{})
			defer tr.Close()
			c := tr.NewClient()
			defer c.Close()
			req := &Request{Method: "GET", Scheme: "http", Host: addr, Target: []byte("/")}
			var res Result
			c.Do(req, &res)
			b.SetBytes(int64(len(tt.resp)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				c.Do(req, &res)
				if res.Status != 200 || res.BytesReceived != int64(len(tt.resp)) {
					b.Fatalf("status %d class %q err %v, %d bytes", res.Status, res.Class, res.Err, res.BytesReceived)
				}
			}
		})
	}
}

// BenchmarkH1TLS is BenchmarkH1 over TLS (httptest server).
func BenchmarkH1TLS(b *testing.B) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer srv.Close()
	tr := NewTransport(Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	defer tr.Close()
	c := tr.NewClient()
	defer c.Close()
	req := &Request{Method: "GET", Scheme: "https", Host: srv.Listener.Addr().String(), Target: []byte("/")}
	var res Result
	c.Do(req, &res)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		c.Do(req, &res)
		if res.Status != 200 {
			b.Fatalf("status %d class %q err %v", res.Status, res.Class, res.Err)
		}
	}
}

// BenchmarkH1Parallel runs one client per goroutine (like VUs).
func BenchmarkH1Parallel(b *testing.B) {
	addr := fastServer(b)
	tr := NewTransport(Options{})
	defer tr.Close()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c := tr.NewClient()
		defer c.Close()
		req := &Request{Method: "GET", Scheme: "http", Host: addr, Target: []byte("/fast")}
		var res Result
		for pb.Next() {
			c.Do(req, &res)
			if res.Status != 200 {
				b.Errorf("status %d class %q err %v", res.Status, res.Class, res.Err)
				return
			}
		}
	})
}

// BenchmarkNetHTTP is the same workload through net/http's client, for
// comparison.
func BenchmarkNetHTTP(b *testing.B) {
	addr := fastServer(b)
	tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest("GET", "http://"+addr+"/fast?x=1", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("User-Agent", "loadcap")
	req.Header.Set("X-Loadcap-Shadow", "drill-1")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp, err := tr.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

// BenchmarkConcurrent50 keeps 50 requests in flight against the in-process
// fast server: 50 Clients on goroutines, or 50 exchanges on one Poller
// (the engine's two shapes for closed VUs). ns/op is per request; client
// and server share the processors, so test/bench/vs_peers.sh, with the
// target in its own process on its own core, is the figure to quote.
func BenchmarkConcurrent50(b *testing.B) {
	const n = 50
	addr := fastServer(b)
	b.Run("goroutines", func(b *testing.B) {
		tr := NewTransport(Options{})
		defer tr.Close()
		var left atomic.Int64
		left.Store(int64(b.N))
		b.ReportAllocs()
		b.ResetTimer()
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				c := tr.NewClient()
				defer c.Close()
				req := &Request{Method: "GET", Scheme: "http", Host: addr, Target: []byte("/fast")}
				var res Result
				for left.Add(-1) >= 0 {
					c.Do(req, &res)
					if res.Status != 200 {
						b.Errorf("status %d class %q err %v", res.Status, res.Class, res.Err)
						return
					}
				}
			})
		}
		wg.Wait()
	})
	b.Run("poller", func(b *testing.B) {
		if !PollerSupported {
			b.Skip("no Poller here")
		}
		if runtime.GOMAXPROCS(0) == 1 {
			// The loop's raw wait holds the one processor that the server
			// in this process needs to answer (see loadgen's pollPool).
			b.Skip("the server in this process needs a second processor")
		}
		tr := NewTransport(Options{})
		defer tr.Close()
		p, err := tr.NewPoller()
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		req := &Request{Method: "GET", Scheme: "http", Host: addr, Target: []byte("/fast")}
		b.ReportAllocs()
		b.ResetTimer()
		started, done := 0, 0
		for ; started < min(n, b.N); started++ {
			p.Start(p.NewExchange(nil), req)
		}
		for done < b.N {
			for _, x := range p.Wait(5 * time.Millisecond) {
				if x.Res.Status != 200 {
					b.Fatalf("status %d class %q err %v", x.Res.Status, x.Res.Class, x.Res.Err)
				}
				done++
				if started < b.N {
					started++
					p.Start(x, req)
				}
			}
		}
	})
}
