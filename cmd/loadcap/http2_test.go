package main

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// `loadcap run --http2` against a server that speaks only h2c: every
// request goes over HTTP/2, and run.json counts each one, as 200.
func TestRunHTTP2(t *testing.T) {
	t.Parallel()
	var h1, h2 atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 {
			h2.Add(1)
		} else {
			h1.Add(1)
		}
		_, _ = w.Write([]byte("ok"))
	}))
	var p http.Protocols
	p.SetUnencryptedHTTP2(true) // and nothing else
	srv.Config.Protocols = &p
	srv.Start()
	defer srv.Close()
	out := filepath.Join(t.TempDir(), "run.json")
	res := loadcap(t, nil, false, "run", "-q", "--no-summary", "--url", srv.URL+"/", "--http2", "--vus", "4", "--duration", "1s", "--out", out)
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	r := readRun(t, out)
	tt := r.Totals
	if tt.Completed < 100 || tt.Failed != 0 || r.Requests["default"].StatusCodes["200"] != tt.Completed {
		t.Errorf("completed %d, failed %d, statuses %v: want every request a 200", tt.Completed, tt.Failed, r.Requests["default"].StatusCodes)
	}
	if h1.Load() != 0 || h2.Load() < tt.Completed {
		t.Errorf("the server saw %d HTTP/1 and %d HTTP/2 requests for %d completed", h1.Load(), h2.Load(), tt.Completed)
	}
}
