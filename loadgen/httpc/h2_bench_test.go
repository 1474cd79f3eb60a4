package httpc

import (
	"strings"
	"testing"
)

// BenchmarkH2 is one client, one request at a time, over h2c to the
// canned HTTP/2 server (which allocates nothing per request), so
// -benchmem counts the client's allocations alone. It must report 0
// allocs/op.
func BenchmarkH2(b *testing.B) {
	tests := []struct {
		name string
		req  Request
	}{
		{name: "GET", req: Request{Method: "GET", Target: []byte("/fast?x=1"),
			Header: []Header{{"X-Loadcap-Shadow", []byte("drill-1")}}}},
		{name: "POST 1KB", req: Request{Method: "POST", Target: []byte("/orders"),
			Header: []Header{{"Content-Type", []byte("application/json")}}, Body: []byte(strings.Repeat("x", 1024))}},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			srv := newRawH2(b, rawH2Options{})
			tr := NewTransport(Options{HTTP2: true})
			defer tr.Close()
			c := tr.NewClient()
			defer c.Close()
			req := tt.req
			req.Scheme, req.Host = "http", srv.addr
			var res Result
			c.Do(&req, &res) // connect outside the measurement
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				c.Do(&req, &res)
				if res.Status != 200 {
					b.Fatalf("status %d class %q err %v", res.Status, res.Class, res.Err)
				}
			}
		})
	}
}

// BenchmarkH2Parallel runs one client per goroutine (like VUs), all on
// one HTTP/2 connection.
func BenchmarkH2Parallel(b *testing.B) {
	srv := newRawH2(b, rawH2Options{})
	tr := NewTransport(Options{HTTP2: true})
	defer tr.Close()
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		c := tr.NewClient()
		defer c.Close()
		req := &Request{Method: "GET", Scheme: "http", Host: srv.addr, Target: []byte("/fast")}
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
