package guard_test

import (
	"context"
	"math"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/loadcap/loadcap/internal/guard"
	"github.com/loadcap/loadcap/loadgen"
)

// lat is n requests of one name, all taking d.
type lat struct {
	name string
	n    int64
	d    time.Duration
}

// interval is one second of drill traffic: failed of the requests failed.
func interval(failed int64, lats ...lat) loadgen.Interval {
	iv := loadgen.Interval{Hists: map[string]*hdr.PackedHistogram{}}
	for _, l := range lats {
		h := iv.Hists[l.name]
		if h == nil {
			h = hdr.NewPacked(1, 60_000_000, 3)
			iv.Hists[l.name] = h
		}
		if err := h.RecordValues(l.d.Microseconds(), l.n); err != nil {
			panic(err)
		}
		iv.Completed += l.n
	}
	iv.Completed -= failed
	iv.Failed = failed
	return iv
}

func fast(n int64) lat { return lat{"a", n, 20 * time.Millisecond} }

func TestTrafficRules(t *testing.T) {
	slow := lat{"b", 2, 900 * time.Millisecond}
	tests := []struct {
		name        string
		slo         string
		every       time.Duration
		k           int
		minRequests int64
		intervals   []loadgen.Interval
		stopAt      int // the interval whose arrival stops the drill (1-based); 0: none
		value       float64
		limit       float64
		state       guard.State // of the last evaluation, when it does not stop
	}{
		{name: "error rate above the limit K times", slo: "error<1%", k: 3,
			intervals: []loadgen.Interval{interval(5, fast(100)), interval(5, fast(100)), interval(5, fast(100))},
			stopAt:    3, value: 0.05, limit: 0.01},
		{name: "a good second resets the count", slo: "error<1%", k: 2,
			intervals: []loadgen.Interval{interval(5, fast(100)), interval(0, fast(100)), interval(5, fast(100))},
			state:     guard.StateBad},
		{name: "p99 of all request names together", slo: "p(99)<500ms", k: 1,
			intervals: []loadgen.Interval{interval(0, fast(98), slow)},
			stopAt:    1, value: 900, limit: 500},
		{name: "p97 of the same traffic holds", slo: "p(97)<500ms", k: 1,
			intervals: []loadgen.Interval{interval(0, fast(98), slow)},
			state:     guard.StateOK},
		{name: "every clause must hold: the failing one is reported", slo: "p(99)<500ms,error<1%", k: 1,
			intervals: []loadgen.Interval{interval(3, fast(100))},
			stopAt:    1, value: 0.03, limit: 0.01},
		{name: "all clauses hold: the one closest to its limit is shown", slo: "error<10%,p(99)<2s", k: 1,
			intervals: []loadgen.Interval{interval(3, fast(98), slow)},
			state:     guard.StateOK, value: 900, limit: 2000},
		{name: "max latency", slo: "max<=800ms", k: 1,
			intervals: []loadgen.Interval{interval(0, fast(98), slow)},
			stopAt:    1, value: 900, limit: 800},
		{name: "too few requests are no data", slo: "error<1%", k: 1, minRequests: 10,
			intervals: []loadgen.Interval{interval(3, fast(3)), interval(0)},
			state:     guard.StateNoData},
		{name: "a window is Every long: two seconds judged together", slo: "error<3%", k: 1, every: 2 * time.Second,
			intervals: []loadgen.Interval{interval(4, fast(100)), interval(0, fast(100)), interval(4, fast(100)), interval(4, fast(100))},
			stopAt:    4, value: 0.04, limit: 0.03},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := guard.Config{Every: tc.every, Rules: []guard.Rule{{Name: "drill", SLO: tc.slo, Breaches: tc.k, MinRequests: tc.minRequests}}}
				stoppedAt := 0
				r := runFor(t, cfg, time.Minute, func(g *guard.Guard) {
					for i, iv := range tc.intervals {
						g.Observe(iv)
						synctest.Wait()
						if st := g.Status(); st.Stopped != nil && stoppedAt == 0 {
							stoppedAt = i + 1
						}
					}
				})
				if tc.stopAt == 0 {
					st := r.g.Status().Rules[0]
					if len(r.stops) != 0 || st.State != tc.state {
						t.Fatalf("stops %v, last state %q (%s); want no stop, %q", r.stops, st.State, st.Detail, tc.state)
					}
					if tc.limit != 0 && (math.Abs(st.Value-tc.value) > 0.001*tc.value || st.Limit != tc.limit) {
						t.Errorf("status shows %g against %g, want %g against %g", st.Value, st.Limit, tc.value, tc.limit)
					}
					return
				}
				if len(r.stops) != 1 || stoppedAt != tc.stopAt {
					t.Fatalf("%d stops, after interval %d; want one after interval %d", len(r.stops), stoppedAt, tc.stopAt)
				}
				b := r.stops[0]
				if b.Kind != guard.KindTraffic || b.Rule != "drill" || math.Abs(b.Value-tc.value) > 0.001*tc.value || b.Limit != tc.limit || b.Consecutive != tc.k {
					t.Errorf("breach %+v; want value %g (±0.1%%: HDR precision), limit %g", b, tc.value, tc.limit)
				}
				if !strings.Contains(b.Reason, "does not hold") {
					t.Errorf("reason %q", b.Reason)
				}
			})
		})
	}
}

// TestEngineFeedsTheGuard wires a real engine to a guard: the target starts
// failing, the guard stops the engine.
func TestEngineFeedsTheGuard(t *testing.T) {
	srv := failingAfter(t, 1500*time.Millisecond)
	f := scenario(t, srv.URL)
	g, err := guard.New(guard.Config{Rules: []guard.Rule{{Name: "drill errors", SLO: "error<1%", Breaches: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	e, err := loadgen.New(f, loadgen.WithIntervalHook(g.Observe))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopped := make(chan guard.Breach, 1)
	go func() {
		_ = g.Run(ctx, func(b guard.Breach) {
			stopped <- b
			e.Stop(loadgen.CauseSignal, b.Reason)
		})
	}()
	res, err := e.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-stopped:
		if b.Kind != guard.KindTraffic || b.Value < 0.5 {
			t.Errorf("breach %+v", b)
		}
	default:
		t.Fatal("the guard did not stop the engine")
	}
	// Failing from 1.5 s: seconds 2 and 3 are bad, the stop comes as the
	// third interval closes, far before the scenario's 20 s.
	if res.Status != loadgen.StatusAborted || res.Duration > 6*time.Second {
		t.Errorf("status %s after %v; want aborted within 6 s", res.Status, res.Duration)
	}
}
