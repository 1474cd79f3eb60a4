package guard_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loadcap/loadcap/internal/guard"
)

func TestHealthRule(t *testing.T) {
	tests := []struct {
		name   string
		answer func(w http.ResponseWriter, r *http.Request) // once the service goes bad
		value  float64
		reason string
		// timeout of a probe; 0: the default, the 100 ms period. Where
		// the answer is immediate, 1 s keeps a stall of the machine from
		// turning a probe into "no answer".
		timeout time.Duration
	}{
		{name: "5xx", answer: func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) },
			value: 503, reason: "503 Service Unavailable", timeout: time.Second},
		{name: "a redirect is not healthy", answer: func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/login", http.StatusFound) },
			value: 302, reason: "302 Found", timeout: time.Second},
		{name: "no answer within the timeout", answer: func(_ http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(2 * time.Second):
			}
		}, value: 0, reason: "no answer within 100ms"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var bad atomic.Bool
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if bad.Load() {
					tc.answer(w, r)
				}
			}))
			defer srv.Close()
			g, err := guard.New(guard.Config{Every: 100 * time.Millisecond, Rules: []guard.Rule{
				{Name: "shop", Health: srv.URL + "/healthz", Breaches: 2, Timeout: tc.timeout},
			}})
			if err != nil {
				t.Fatal(err)
			}
			stopped := make(chan guard.Breach, 2)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			done := make(chan error)
			go func() { done <- g.Run(ctx, func(b guard.Breach) { stopped <- b }) }()

			waitFor(t, func() bool { st := g.Status().Rules[0]; return st.State == guard.StateOK && st.Evaluations >= 3 })
			if st := g.Status(); st.Stopped != nil {
				t.Fatalf("stopped while healthy: %v", st.Stopped)
			}
			bad.Store(true)
			var b guard.Breach
			select {
			case b = <-stopped:
			case <-ctx.Done():
				t.Fatal("a failing health URL did not stop the drill")
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if b.Kind != guard.KindHealth || b.Rule != "shop" || b.Value != tc.value || b.Consecutive != 2 || !strings.Contains(b.Reason, tc.reason) {
				t.Errorf("breach %+v; want value %g and %q", b, tc.value, tc.reason)
			}
			if len(stopped) != 0 {
				t.Error("stop called twice")
			}
		})
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 5 s")
}
