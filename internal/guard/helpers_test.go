package guard_test

import (
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/loadcap/loadcap/scenarios"
)

// failingAfter serves 200 on loopback, then 500 once d has passed.
func failingAfter(t *testing.T, d time.Duration) *httptest.Server {
	t.Helper()
	start := time.Now()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if time.Since(start) > d {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// scenario is a bounded open-model load on target: 50 req/s for 20 s.
func scenario(t *testing.T, target string) *scenarios.File {
	t.Helper()
	f, err := scenarios.Parse("guard.yaml", fmt.Appendf(nil, `
target: %s
scenarios:
  steady:
    executor: constant-arrival-rate
    rate: 50
    timeUnit: 1s
    duration: 20s
    preAllocatedVUs: 5
    maxVUs: 20
requests:
  - name: a
    path: /
`, target))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func posInf() float64 { return math.Inf(1) }
