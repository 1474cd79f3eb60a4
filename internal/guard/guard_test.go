package guard_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/common/model"

	"github.com/loadcap/loadcap/internal/guard"
)

// script is a fake Prometheus: each query is answered by the next letter
// of seq, then by rest. B: 0.9 (bad against max 0.5), G: 0.1, N: no series,
// n: NaN, i: -Inf (no data against a max), E: an error, H: hangs until the
// query's deadline.
type script struct {
	mu    sync.Mutex
	seq   string
	rest  byte
	calls int
}

func (s *script) Query(ctx context.Context, _ string, _ time.Time) (model.Value, error) {
	s.mu.Lock()
	c := s.rest
	if s.calls < len(s.seq) {
		c = s.seq[s.calls]
	}
	s.calls++
	s.mu.Unlock()
	switch c {
	case 'B':
		return vector(0.9), nil
	case 'G':
		return vector(0.1), nil
	case 'N':
		return model.Vector{}, nil
	case 'n':
		return vector(math.NaN()), nil
	case 'i':
		return vector(math.Inf(-1)), nil
	case 'H':
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return nil, errors.New("dial tcp 127.0.0.1:9090: connect: connection refused")
}

func vector(vs ...float64) model.Vector {
	var out model.Vector
	for i, v := range vs {
		out = append(out, &model.Sample{
			Metric: model.Metric{"service": model.LabelValue([]string{"cart", "order", "user"}[i%3])},
			Value:  model.SampleValue(v),
		})
	}
	return out
}

// run is one Run of a guard inside a synctest bubble, for horizon of fake
// time (or until it stops).
type run struct {
	stops []guard.Breach
	after []time.Duration // since Run began, per stop
	err   error
	g     *guard.Guard
}

func runFor(t *testing.T, cfg guard.Config, horizon time.Duration, during func(g *guard.Guard)) run {
	t.Helper()
	g, err := guard.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var r run
	r.g = g
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	done := make(chan error)
	go func() {
		done <- g.Run(ctx, func(b guard.Breach) {
			r.stops = append(r.stops, b)
			r.after = append(r.after, time.Since(start))
		})
	}()
	if during != nil {
		during(g)
	}
	select {
	case r.err = <-done:
	case <-time.After(horizon):
		cancel()
		r.err = <-done
	}
	return r
}

func promCfg(q guard.Querier, k int) guard.Config {
	return guard.Config{
		Querier: q,
		Rules:   []guard.Rule{{Name: "cart p99", PromQL: "p99", Max: guard.Float(0.5), Breaches: k}},
	}
}

func TestConsecutiveBreaches(t *testing.T) {
	tests := []struct {
		name   string
		seq    string // one letter per evaluation (every 1 s), then no data
		k      int
		stopAt int // the evaluation that stops the drill (1-based); 0: none
		streak int // when it does not stop: the bad evaluations in a row at the end
	}{
		{name: "K bad in a row stop at the K-th", seq: "BBB", k: 3, stopAt: 3},
		{name: "fewer than K do not stop", seq: "BB", k: 3, streak: 2},
		{name: "a good evaluation resets the count", seq: "BBGBBGBB", k: 3, streak: 2},
		{name: "K again after a reset stop", seq: "BBGBBB", k: 3, stopAt: 6},
		{name: "no data keeps the count", seq: "BBNB", k: 3, stopAt: 4},
		{name: "a failed query keeps the count", seq: "BEBB", k: 3, stopAt: 4},
		{name: "K=1 stops at the first bad one", seq: "GGB", k: 1, stopAt: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				q := &script{seq: tc.seq, rest: 'N'}
				r := runFor(t, promCfg(q, tc.k), time.Duration(len(tc.seq)+3)*time.Second, nil)
				if r.err != nil {
					t.Fatal(r.err)
				}
				if tc.stopAt == 0 {
					if len(r.stops) != 0 {
						t.Fatalf("stopped: %v", r.stops[0])
					}
					if st := r.g.Status().Rules[0]; st.Consecutive != tc.streak || st.State != guard.StateNoData {
						t.Errorf("status: %d bad in a row, state %q; want %d, %q", st.Consecutive, st.State, tc.streak, guard.StateNoData)
					}
					return
				}
				if len(r.stops) != 1 {
					t.Fatalf("stop called %d times, want once", len(r.stops))
				}
				// The first evaluation is at once, then one every second:
				// the stop comes at the very instant of the K-th bad one.
				if want := time.Duration(tc.stopAt-1) * time.Second; r.after[0] != want {
					t.Errorf("stopped %v after the start, want %v (evaluation %d)", r.after[0], want, tc.stopAt)
				}
				b := r.stops[0]
				if b.Rule != "cart p99" || b.Kind != guard.KindPromQL || b.Value != 0.9 || b.Limit != 0.5 || b.Consecutive != tc.k {
					t.Errorf("breach %+v", b)
				}
				if !strings.Contains(b.Reason, "above max 0.5") {
					t.Errorf("reason %q does not say what was seen", b.Reason)
				}
				if st := r.g.Status(); st.Stopped == nil || st.Running {
					t.Errorf("status after the stop: %+v", st)
				}
			})
		})
	}
}

func TestWorstSeriesAndMinLimit(t *testing.T) {
	tests := []struct {
		name     string
		values   []float64
		max, min *float64
		bad      bool
		value    float64
		series   string
	}{
		{name: "one service above max", values: []float64{0.1, 0.7, 0.2}, max: guard.Float(0.5), bad: true, value: 0.7, series: `service="order"`},
		{name: "all within max", values: []float64{0.1, 0.4}, max: guard.Float(0.5), value: 0.4},
		{name: "below min", values: []float64{5, 1}, min: guard.Float(2), bad: true, value: 1, series: `service="order"`},
		{name: "between min and max", values: []float64{3, 4}, min: guard.Float(2), max: guard.Float(5), value: 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				q := guard.QuerierFunc(func(context.Context, string, time.Time) (model.Value, error) {
					return vector(tc.values...), nil
				})
				cfg := guard.Config{Querier: q, Rules: []guard.Rule{{PromQL: "x", Max: tc.max, Min: tc.min, Breaches: 1}}}
				r := runFor(t, cfg, 1500*time.Millisecond, nil)
				if !tc.bad {
					st := r.g.Status().Rules[0]
					if len(r.stops) != 0 || st.State != guard.StateOK || st.Value != tc.value {
						t.Errorf("stops %v, status %+v; want ok with value %g", r.stops, st, tc.value)
					}
					return
				}
				if len(r.stops) != 1 || r.stops[0].Value != tc.value || !strings.Contains(r.stops[0].Reason, tc.series) {
					t.Fatalf("stops %+v; want value %g naming %s", r.stops, tc.value, tc.series)
				}
				if r.stops[0].Rule != "rule-1" {
					t.Errorf("default rule name %q, want rule-1", r.stops[0].Rule)
				}
			})
		})
	}
}

func TestSignalLoss(t *testing.T) {
	const grace = 10 * time.Second
	tests := []struct {
		name     string
		seq      string
		rest     byte
		action   guard.Action
		onNoData guard.NoData
		// the stop, when there is one, comes in (from, from+poll]
		from time.Duration
		why  string // in the reason
	}{
		{name: "unreachable past the grace stops", rest: 'E', from: grace, why: "connection refused"},
		{name: "a query that never answers stops", rest: 'H', from: grace, why: "no answer within"},
		{name: "an answer restarts the grace", seq: "EEEEEEEEG", rest: 'E', from: 8*time.Second + grace},
		{name: "an empty vector past the grace stops", rest: 'N', from: grace, why: "query returned no series"},
		{name: "NaN past the grace stops", rest: 'n', from: grace, why: "1 NaN"},
		{name: "an infinity on the safe side past the grace stops", rest: 'i', from: grace, why: "1 infinite"},
		{name: "samples then silence stop a grace after the last sample", seq: "GGG", rest: 'N', from: 2*time.Second + grace},
		{name: "a real sample restarts the grace", seq: "NNNNNNNNG", rest: 'N', from: 8*time.Second + grace},
		{name: "empty, then errors: one grace", seq: "NNNNN", rest: 'E', from: grace},
		{name: "recovery before the grace keeps going", seq: "NNNNNNNN", rest: 'G'},
		{name: "a rule may ignore no data", rest: 'N', onNoData: guard.NoDataIgnore},
		{name: "ignoring no data still stops when unreachable", seq: "NNN", rest: 'E', onNoData: guard.NoDataIgnore, from: 2*time.Second + grace},
		{name: "continue keeps the drill going", rest: 'E', action: guard.ActionContinue},
		{name: "continue keeps going without data", rest: 'N', action: guard.ActionContinue},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				q := &script{seq: tc.seq, rest: tc.rest}
				cfg := promCfg(q, 3)
				cfg.Rules[0].OnNoData = tc.onNoData
				cfg.SignalLoss = guard.SignalLoss{Grace: grace, Action: tc.action}
				r := runFor(t, cfg, 25*time.Second, nil)
				st := r.g.Status().Rules[0]
				// Every evaluation without a sample is counted, stop or not.
				empty := 0
				for n := 0; n < st.Evaluations; n++ {
					c := tc.rest
					if n < len(tc.seq) {
						c = tc.seq[n]
					}
					if c != 'G' && c != 'B' {
						empty++
					}
				}
				if st.NoData != empty || (empty > 0 && st.LastNoData == "") {
					t.Errorf("status counts %d evaluations without data (last: %q), want %d of %d", st.NoData, st.LastNoData, empty, st.Evaluations)
				}
				if tc.from == 0 {
					if len(r.stops) != 0 {
						t.Fatalf("stopped: %v", r.stops[0])
					}
					lost := tc.action == guard.ActionContinue
					if st.SignalLost != lost || (st.Err != "") != (tc.rest == 'E') {
						t.Errorf("status %+v: signal lost %v, want %v", st, st.SignalLost, lost)
					}
					return
				}
				if len(r.stops) != 1 {
					t.Fatalf("stop called %d times, want once", len(r.stops))
				}
				b := r.stops[0]
				if r.after[0] <= tc.from || r.after[0] > tc.from+guard.DefaultSwitchPoll {
					t.Errorf("stopped after %v, want in (%v, %v]", r.after[0], tc.from, tc.from+guard.DefaultSwitchPoll)
				}
				if b.Kind != guard.KindSignal || b.Rule != "cart p99" || b.Limit != grace.Seconds() || b.Value <= b.Limit {
					t.Errorf("breach %+v", b)
				}
				if !strings.Contains(b.Reason, "signal lost: no data from rule \"cart p99\" for 1") || !strings.Contains(b.Reason, tc.why) {
					t.Errorf("reason %q, want it to say no data from the rule, and %q", b.Reason, tc.why)
				}
			})
		})
	}
}

func TestStopIsCalledOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bad := guard.QuerierFunc(func(context.Context, string, time.Time) (model.Value, error) { return vector(9), nil })
		cfg := guard.Config{Querier: bad, Breaches: 1, Rules: []guard.Rule{
			{Name: "a", PromQL: "a", Max: guard.Float(1)},
			{Name: "b", PromQL: "b", Max: guard.Float(1)},
			{Name: "c", PromQL: "c", Max: guard.Float(1)},
		}}
		r := runFor(t, cfg, 5*time.Second, nil)
		if len(r.stops) != 1 || r.after[0] != 0 {
			t.Fatalf("stop called %d times (%v), want once at the first evaluation", len(r.stops), r.after)
		}
		if err := r.g.Run(context.Background(), func(guard.Breach) { t.Error("stop called by a second Run") }); err == nil {
			t.Error("a second Run returned no error")
		}
	})
}

func TestCancelDoesNotStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := &script{rest: 'G'}
		r := runFor(t, promCfg(q, 1), 3500*time.Millisecond, nil)
		if r.err != nil || len(r.stops) != 0 {
			t.Fatalf("err %v, stops %v", r.err, r.stops)
		}
		st := r.g.Status()
		if st.Running || st.Stopped != nil || st.Rules[0].Evaluations != 4 || st.Rules[0].State != guard.StateOK {
			t.Errorf("status %+v; want not running, not stopped, 4 good evaluations (at 0, 1, 2, 3 s)", st)
		}
	})
}
