package httpc

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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
