package capacity

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/loadgen/target"
	"github.com/loadcap/loadcap/loadgen/target/targettest"
	"github.com/loadcap/loadcap/scenarios"
	"github.com/loadcap/loadcap/scenarios/slo"
	"github.com/loadcap/loadcap/test/israce"
	"github.com/loadcap/loadcap/test/quiet"
)

func TestKneedle(t *testing.T) {
	// A hockey stick: flat until 800, then steep.
	var steps []Step
	for i, x := range []float64{100, 200, 400, 600, 700, 780, 800, 805} {
		y := 5.0
		if x > 700 {
			y = 5 + (x-700)*4
		}
		steps = append(steps, Step{N: i + 1, Phase: "ramp", Achieved: x, LatencyMs: StepLatency{P99: y}})
	}
	k := kneedle(steps)
	if k == nil || k.Throughput != 700 {
		t.Errorf("knee %+v, want at 700 req/s", k)
	}
}

func quick(t *testing.T, url string) *scenarios.File {
	t.Helper()
	f, err := scenarios.Quick(scenarios.QuickOptions{URL: url, RatePerSec: 1, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// Against targets of known capacity (4 workers × 5 ms = 800 req/s), find
// lands within 5% of it in at most 12 steps and confirms it with a soak.
func TestFindKnownCapacity(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ~12 load steps")
	}
	if israce.Enabled {
		t.Skip("measures a target's capacity: under the race detector it would measure the detector")
	}
	// The searches below and TestFindOnALoadSheddingTarget's run side by
	// side, after the package's other tests: each is about 40 s of steps
	// spent waiting on targets whose capacity is workers and a service
	// time, not CPU (together well under one core of the two), so they do
	// not disturb each other's figures, and quiet.Retry still repeats a
	// search the machine stalled.
	t.Parallel()
	tests := []struct {
		name string
		cfg  target.Config
		slo  string
	}{
		{"fixed service time", target.Config{Workers: 4, ServiceTime: 5 * time.Millisecond}, "p(99)<50ms,error<1%"},
		{"exponential service time: latency rises before saturation", target.Config{Workers: 4, ServiceTime: 5 * time.Millisecond, Dist: "exp", Seed: 7}, "p(99)<250ms,error<1%"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := targettest.Start(t, tc.cfg)
			sl, err := slo.Parse(tc.slo)
			if err != nil {
				t.Fatal(err)
			}
			var res *FindResult
			// A step the generator was stalled in is repeated by find
			// itself; the whole search is repeated when this machine
			// stalled the in-process target too.
			quiet.Retry(t, 3, func(a *quiet.A) {
				var progress bytes.Buffer
				var err error
				res, err = Find(context.Background(), FindConfig{
					Base: quick(t, srv.URL()+"/"), SLO: sl, StartRate: 100,
					Warmup: time.Second, Window: 2 * time.Second, Soak: 3 * time.Second, Progress: &progress,
				})
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("\n%s", progress.String())
				if math.Abs(res.MaxQPS-800)/800 > 0.05 || !res.Confirmed {
					a.Errorf("max_qps %.1f (confirmed %v), want 800 ±5%%", res.MaxQPS, res.Confirmed)
				}
				judged := 0
				for _, st := range res.Steps {
					if !st.Repeated {
						judged++
					}
				}
				if judged > 12 {
					a.Errorf("%d steps, want ≤ 12", judged)
				}
				if res.SaturationQPS < 760 || res.SaturationQPS > 840 {
					a.Errorf("saturation %.1f, want ≈800", res.SaturationQPS)
				}
				if n := strings.Count(progress.String(), "\n"); n != len(res.Steps) {
					t.Errorf("%d progress lines for %d steps", n, len(res.Steps))
				}
			})
			// find.json carries docs/ARCHITECTURE.md's fields.
			b, _ := json.Marshal(res)
			var m map[string]any
			json.Unmarshal(b, &m)
			step := m["steps"].([]any)[0].(map[string]any)
			for _, k := range []string{"offered", "achieved", "concurrency", "latency_ms", "error_rate", "passed"} {
				if _, ok := step[k]; !ok {
					t.Errorf("step lacks %q", k)
				}
			}
			if _, ok := m["max_qps"]; !ok {
				t.Error("find.json lacks max_qps")
			}
		})
	}
}

// A target that sheds excess load with fast 503s (4 workers × 10 ms = 400
// req/s, a queue of 4): an overloaded step still finishes nearly every
// request it is offered, most of them as failures. Capacity is goodput:
// max QPS and saturation are about 400, not the failing steps' throughput;
// those steps stay out of the USL fit; and their goodput bounds the search,
// which ends within 10 steps.
func TestFindOnALoadSheddingTarget(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ~10 load steps")
	}
	if israce.Enabled {
		t.Skip("measures a target's capacity: under the race detector it would measure the detector")
	}
	t.Parallel() // beside TestFindKnownCapacity's searches: see there
	srv := targettest.Start(t, target.Config{Workers: 4, ServiceTime: 10 * time.Millisecond, MaxQueue: 4})
	sl, err := slo.Parse("p(99)<100ms,error<1%")
	if err != nil {
		t.Fatal(err)
	}
	quiet.Retry(t, 3, func(a *quiet.A) {
		var progress bytes.Buffer
		res, err := Find(context.Background(), FindConfig{
			Base: quick(t, srv.URL()+"/"), SLO: sl, StartRate: 50,
			Warmup: time.Second, Window: 2 * time.Second, Soak: 3 * time.Second, Progress: &progress,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("\n%s", progress.String())
		// Under error<1% a shedding server's max is at or a little below
		// its capacity: bursts fill the short queue before it is busy.
		if res.MaxQPS < 340 || res.MaxQPS > 420 || !res.Confirmed {
			a.Errorf("max_qps %.1f (confirmed %v), want 340–420", res.MaxQPS, res.Confirmed)
		}
		if res.SaturationQPS > 420 || res.SaturationQPS < 370 {
			a.Errorf("saturation %.1f req/s, want the goodput ≈400, not the throughput of failed requests", res.SaturationQPS)
		}
		judged, shed := 0, 0
		for _, st := range res.Steps {
			if !st.Repeated {
				judged++
			}
			if st.ErrorsBreakSLO {
				shed++
				if st.feedsFit() {
					a.Errorf("step %d (%.1f%% errors) feeds the USL fit", st.N, 100*st.ErrorRate)
				}
				if st.Achieved > 420 || st.FailedRate == 0 {
					a.Errorf("step %d: achieved %.1f/s with %.1f/s failed: failures counted as capacity", st.N, st.Achieved, st.FailedRate)
				}
			}
		}
		if shed == 0 {
			a.Errorf("no step failed on errors: the target did not shed load")
		}
		if judged > 10 {
			a.Errorf("%d steps, want ≤ 10", judged)
		}
	})
}

func TestFindScrapesMetrics(t *testing.T) {
	sl, _ := slo.Parse("p(99)<100ms")
	// The target's rate over the window and Little's law hold only while
	// the machine keeps pace: a stall moves arrivals between windows.
	quiet.Retry(t, 3, func(a *quiet.A) {
		srv := targettest.Start(t, target.Config{Workers: 2, ServiceTime: 2 * time.Millisecond})
		src, err := ParseMetricsSource("target=" + srv.URL() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		res, err := Find(context.Background(), FindConfig{
			Base: quick(t, srv.URL()+"/"), SLO: sl, StartRate: 200, MaxRate: 200, MaxSteps: 1,
			Warmup: time.Second, Window: 2 * time.Second, Soak: 2 * time.Second, Metrics: []MetricsSource{src},
		})
		if err != nil {
			t.Fatal(err)
		}
		svc := res.Steps[0].Services
		if len(svc) != 1 || svc[0].Error != "" {
			t.Fatalf("services %+v", svc)
		}
		if svc[0].MeanLatencyMs < 1.5 || svc[0].CPUCores <= 0 {
			t.Errorf("target's own metrics: %+v; want ≈2 ms, some CPU", svc[0])
		}
		if math.Abs(svc[0].RequestRate-200) > 20 {
			a.Errorf("target's own metrics: %+v; want ≈200 req/s", svc[0])
		}
		if !res.Steps[0].LittleOK {
			a.Errorf("steady step flagged by Little's law: %+v", res.Steps[0])
		}
	})
}

func TestJudgeUsesExactPercentiles(t *testing.T) {
	h := hdr.New(1, 60_000_000, 3)
	for i := 1; i <= 100; i++ {
		h.RecordValue(int64(i) * 1000) // 1..100 ms
	}
	sl, _ := slo.Parse("p(95)<96ms")
	st := &Step{Offered: 10, Achieved: 10}
	st.judge(sl, &loadgen.Window{Completed: 100, Elapsed: 10 * time.Second, Hist: h})
	if v := st.Clauses[0].Value; !st.Passed || v < 95 || v > 95.1 { // HDR: 3 significant digits
		t.Errorf("p(95) = %v (passed %v), want 95 ms from the histogram", v, st.Passed)
	}
	sl, _ = slo.Parse("p(95)<94ms")
	st = &Step{Offered: 10, Achieved: 10}
	st.judge(sl, &loadgen.Window{Completed: 100, Elapsed: 10 * time.Second, Hist: h})
	if st.Passed {
		t.Error("p(95)=95ms passed p(95)<94ms")
	}
}

// fakeTarget generates a step's result without sending anything: a target
// that serves capacity req/s at 5 ms and answers an overload in 500 ms.
// stalled(rate, run), when not zero, makes the run's last second one in
// which the generator was stalled 150 ms: a tenth of its requests then
// took that long.
type fakeTarget struct {
	capacity float64
	stalled  func(rate float64, run int) time.Duration
	runs     map[float64]int
}

func (f *fakeTarget) step(_ context.Context, l StepLoad) (*loadgen.Result, error) {
	if f.runs == nil {
		f.runs = map[float64]int{}
	}
	f.runs[l.Rate]++
	stalled := f.stalled(l.Rate, f.runs[l.Rate])
	lat, n := 5*time.Millisecond, int64(math.Round(l.Rate))
	if l.Rate > f.capacity {
		lat, n = 500*time.Millisecond, int64(f.capacity)
	}
	res := &loadgen.Result{Latency: hdr.New(1, 60_000_000, 3)}
	var busy time.Duration
	secs := int(l.Duration / time.Second)
	for t := range secs {
		h := hdr.NewPacked(1, 60_000_000, 3)
		h.RecordValues(lat.Microseconds(), n)
		iv := loadgen.Interval{T: t, End: time.Duration(t+1) * time.Second, Scheduled: n, Sent: n, Completed: n,
			ServiceSum: time.Duration(n) * lat, LatencySum: time.Duration(n) * lat, Steal: -1,
			Hists: map[string]*hdr.PackedHistogram{"GET /": h}}
		if stalled > 0 && t == secs-1 {
			iv.Stall = 150 * time.Millisecond
			h.RecordValues(stalled.Microseconds(), n/10+1)
		}
		busy += iv.ServiceSum
		iv.Busy = busy
		res.Intervals = append(res.Intervals, iv)
	}
	return res, nil
}

// A step that failed while the generator was stalled says nothing about
// the target: find repeats it (twice at most) instead of bisecting below
// it, and leaves it out of the fits.
func TestFindRepeatsStepsFailedByAStalledGenerator(t *testing.T) {
	sl, _ := slo.Parse("p(99)<100ms")
	find := func(stalled func(rate float64, run int) time.Duration) (*FindResult, *fakeTarget) {
		f := &fakeTarget{capacity: 100, stalled: stalled}
		var progress bytes.Buffer
		res, err := Find(context.Background(), FindConfig{SLO: sl, StartRate: 25, Warmup: time.Second,
			Window: 2 * time.Second, Soak: 3 * time.Second, RunStep: f.step, Progress: &progress})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("\n%s", progress.String())
		return res, f
	}

	at := func(r float64, first bool, lat time.Duration) func(float64, int) time.Duration {
		return func(rate float64, run int) time.Duration {
			if rate == r && (run == 1 || !first) {
				return lat
			}
			return 0
		}
	}
	res, f := find(at(50, true, 300*time.Millisecond))
	if math.Abs(res.MaxQPS-100)/100 > 0.05 || !res.Confirmed {
		t.Errorf("max_qps %.1f (confirmed %v), want ≈100 despite the stalled step", res.MaxQPS, res.Confirmed)
	}
	if f.runs[50] != 2 || !res.Steps[1].Repeated || !strings.Contains(res.Steps[1].Disturbed, "150 ms") || res.Steps[2].Repeated || !res.Steps[2].Passed {
		t.Errorf("runs at 50/s: %d; steps %+v", f.runs[50], res.Steps[:3])
	}
	if res.SaturationQPS != 100 {
		t.Errorf("saturation %.1f", res.SaturationQPS)
	}

	// A generator stalled at every run of a rate: the third failure counts.
	res, f = find(at(50, false, 300*time.Millisecond))
	if f.runs[50] != 3 || res.MaxQPS > 50 {
		t.Errorf("runs at 50/s %d, max_qps %.1f: want 3 runs, the last one judged", f.runs[50], res.MaxQPS)
	}
	// A stalled step that passes stands.
	res, f = find(at(25, false, 50*time.Millisecond))
	if f.runs[25] != 1 || res.Steps[0].Disturbed == "" || !res.Steps[0].Passed {
		t.Errorf("runs at 25/s %d; first step %+v", f.runs[25], res.Steps[0])
	}
}

// A search cancelled between steps (the signal arrived as a step ended)
// starts no other step, and one cancelled inside a step does not count it:
// the steps done are the result, with what they say.
func TestFindStopsWhenCancelled(t *testing.T) {
	sl, _ := slo.Parse("p(99)<100ms")
	tests := []struct {
		name   string
		cancel int  // during the run of this step (1-based)
		inside bool // the step's run sees it (else it ends normally)
		want   int  // steps in the result
	}{
		{"between steps", 2, false, 1},
		{"inside a step", 3, true, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeTarget{capacity: 1000, stalled: func(float64, int) time.Duration { return 0 }}
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			runs := 0
			step := func(ctx context.Context, l StepLoad) (*loadgen.Result, error) {
				runs++
				if runs == tc.cancel {
					cancel(errors.New("interrupted by test"))
				}
				r, err := f.step(ctx, l)
				if tc.inside && ctx.Err() != nil {
					r.Status, r.AbortReason = loadgen.StatusAborted, "interrupted by test"
					r.Intervals = r.Intervals[:1]
				}
				return r, err
			}
			res, err := Find(ctx, FindConfig{SLO: sl, StartRate: 25, Warmup: time.Second,
				Window: 2 * time.Second, Soak: 3 * time.Second, RunStep: step})
			if err == nil || !strings.Contains(err.Error(), "interrupted by test") {
				t.Fatalf("err %v, want the cancellation's cause", err)
			}
			if runs != tc.cancel {
				t.Errorf("%d step runs: the search went on after it was cancelled in run %d", runs, tc.cancel)
			}
			if res == nil || len(res.Steps) != tc.want {
				t.Fatalf("result %+v, want the %d steps done", res, tc.want)
			}
			if res.SaturationQPS == 0 {
				t.Error("the steps done are not summarized")
			}
			res.MarkPartial("interrupted by test")
			b, _ := json.Marshal(res)
			if !strings.Contains(string(b), `"partial":true`) || !strings.Contains(string(b), `"max_qps":0`) {
				t.Errorf("find.json does not say it is partial: %s", b)
			}
			var sum strings.Builder
			res.WriteSummary(&sum)
			if !strings.Contains(sum.String(), "PARTIAL") {
				t.Errorf("the summary does not say it is partial:\n%s", sum.String())
			}
		})
	}
}
