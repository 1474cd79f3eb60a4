package guard_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loadcap/loadcap/internal/guard"
)

// fakeProm is a Prometheus HTTP API on loopback whose n-th instant query
// (from 0) is answered with the samples answer(n) gives: nil is an empty
// vector, each string a sample value as Prometheus writes it ("0.1",
// "NaN", "+Inf"). It counts the queries.
func fakeProm(t *testing.T, answer func(n int64) []string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/query" {
			http.NotFound(w, r)
			return
		}
		var result []string
		for i, v := range answer(n.Add(1) - 1) {
			result = append(result, fmt.Sprintf(`{"metric":{"service":"s%d"},"value":[%d,%q]}`, i, time.Now().Unix(), v))
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":[%s]}}`, strings.Join(result, ","))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// TestNoDataFromPrometheus: a PromQL rule whose query Prometheus answers
// without a usable sample (an empty vector, NaN, an infinity that does not
// breach the rule) stops the drill once the grace has passed since the
// start, and says so; every such evaluation is counted.
func TestNoDataFromPrometheus(t *testing.T) {
	const every, grace = 50 * time.Millisecond, 500 * time.Millisecond
	tests := []struct {
		name   string
		values []string
		max    *float64
		min    *float64
		why    string
	}{
		{name: "empty vector", values: nil, max: guard.Float(0.5), why: "query returned no series"},
		{name: "NaN", values: []string{"NaN"}, max: guard.Float(0.5), why: "1 series, none with a usable value (1 NaN, 0 infinite)"},
		{name: "NaN on every series", values: []string{"NaN", "NaN"}, min: guard.Float(1), why: "2 NaN"},
		{name: "-Inf against a max", values: []string{"-Inf"}, max: guard.Float(0.5), why: "1 infinite"},
		{name: "+Inf against a min", values: []string{"+Inf"}, min: guard.Float(1), why: "1 infinite"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prom, _ := fakeProm(t, func(int64) []string { return tc.values })
			cfg := guard.Config{Prometheus: prom.URL, Every: every, SignalLoss: guard.SignalLoss{Grace: grace},
				Rules: []guard.Rule{{Name: "checkout errors", PromQL: `sum(rate(errors_total[1m]))`, Max: tc.max, Min: tc.min}}}
			started := time.Now()
			g, stops := startGuard(t, cfg)
			b, at := stops.wait(t, 10*time.Second)
			if at.Sub(started) < grace {
				t.Errorf("stopped %v after the start, before the grace %v", at.Sub(started), grace)
			}
			if b.Kind != guard.KindSignal || b.Rule != "checkout errors" || b.Value <= grace.Seconds() || b.Limit != grace.Seconds() || b.Unit != "s" {
				t.Errorf("breach %+v", b)
			}
			if want := `signal lost: no data from rule "checkout errors" for `; !strings.HasPrefix(b.Reason, want) || !strings.Contains(b.Reason, tc.why) {
				t.Errorf("reason %q, want %q ... %q", b.Reason, want, tc.why)
			}
			st := g.Status().Rules[0]
			if st.NoData == 0 || st.NoData != st.Evaluations || !strings.Contains(st.LastNoData, tc.why) || st.State != guard.StateNoData {
				t.Errorf("status %+v: want every evaluation counted without data", st)
			}
		})
	}
}

// TestNoDataRecovery: samples coming back before the grace keep the drill
// going, and the evaluations without data stay counted; a rule that opts
// out (OnNoData: ignore) is never stopped by empty answers.
func TestNoDataRecovery(t *testing.T) {
	const every, grace = 50 * time.Millisecond, time.Second
	tests := []struct {
		name     string
		answer   func(n int64) []string
		onNoData guard.NoData
		empty    func(evals int) int // evaluations without data, of evals
		state    guard.State
	}{
		{name: "samples back before the grace", answer: func(n int64) []string {
			if n < 3 {
				return nil
			}
			return []string{"0.1"}
		}, empty: func(int) int { return 3 }, state: guard.StateOK},
		{name: "NaN, then samples", answer: func(n int64) []string {
			if n < 3 {
				return []string{"NaN"}
			}
			return []string{"0.1", "0.2"}
		}, empty: func(int) int { return 3 }, state: guard.StateOK},
		{name: "a rule that ignores no data", answer: func(int64) []string { return nil }, onNoData: guard.NoDataIgnore,
			empty: func(evals int) int { return evals }, state: guard.StateNoData},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prom, queries := fakeProm(t, tc.answer)
			cfg := guard.Config{Prometheus: prom.URL, Every: every, SignalLoss: guard.SignalLoss{Grace: grace},
				Rules: []guard.Rule{{Name: "r", PromQL: "x", Max: guard.Float(0.5), OnNoData: tc.onNoData}}}
			g, stops := startGuard(t, cfg)
			// Twice the grace in evaluations.
			waitUntil(t, 20*time.Second, "evaluations over twice the grace", func() bool {
				return queries.Load() > int64(2*grace/every)
			})
			select {
			case c := <-stops.ch:
				t.Fatalf("stopped: %v", c.b)
			default:
			}
			st := g.Status().Rules[0]
			if st.NoData != tc.empty(st.Evaluations) || st.State != tc.state || st.SignalLost {
				t.Errorf("status %+v: want %d evaluations without data, state %s", st, tc.empty(st.Evaluations), tc.state)
			}
		})
	}
}
