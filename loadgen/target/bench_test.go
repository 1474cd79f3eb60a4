package target

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// discardWriter is a reusable http.ResponseWriter for handler benchmarks.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

// BenchmarkHandler is the target's own cost per counted request, without
// HTTP: counters, arrival buckets, histogram, response.
func BenchmarkHandler(b *testing.B) {
	s := start(b, Config{})
	for _, path := range []string{"/", "/bytes/1024"} {
		b.Run(path, func(b *testing.B) {
			r := httptest.NewRequest("GET", path, nil)
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				s.ServeHTTP(w, r)
			}
		})
	}
}

// BenchmarkHandlerWorkers adds a worker pool with zero service time.
func BenchmarkHandlerWorkers(b *testing.B) {
	s := start(b, Config{Workers: 8})
	r := httptest.NewRequest("GET", "/", nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			clear(w.h)
			s.ServeHTTP(w, r)
		}
	})
}

// BenchmarkLoopback is end-to-end requests per second over loopback with
// keep-alive (client and server in this process, sharing the CPUs).
func BenchmarkLoopback(b *testing.B) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"http1", Config{}},
		{"h2c", Config{H2C: true}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s := start(b, tc.cfg)
			c := s.Client()
			defer c.CloseIdleConnections()
			url := s.URL()
			b.ReportAllocs()
			b.SetParallelism(4)
			t0 := time.Now()
			cpu0, _ := processCPU()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := c.Get(url)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
			cpu1, _ := processCPU()
			n := s.Stats().Served
			b.ReportMetric(float64(n)/time.Since(t0).Seconds(), "req/s")
			if n > 0 {
				b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(n), "cpu-µs/req")
			}
		})
	}
}
