package autoscale

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loadcap/loadcap/capacity"
	"github.com/loadcap/loadcap/scenarios"
)

var t0 = time.Date(2026, 11, 11, 19, 0, 0, 0, time.UTC)

// step is traffic at before req/s for pre seconds, then after req/s for post.
func step(before, after float64, pre, post int) Traffic {
	tr := Traffic{Start: t0}
	for i := 0; i < pre; i++ {
		tr.RPS = append(tr.RPS, before)
	}
	for i := 0; i < post; i++ {
		tr.RPS = append(tr.RPS, after)
	}
	return tr
}

func service(current int) Service {
	return Service{
		Name: "product", CapacityQPS: 150, Fanout: 1, Current: current, Startup: 30 * time.Second,
		HPA: HPA{Min: current, Max: 50, Target: 100, Tolerance: DefaultTolerance, Sync: DefaultSync, Up: DefaultUp(), Down: DefaultDown()},
	}
}

// A flash sale: 150 req/s on 2 replicas of 150 jumps to 1200 at 60 s.
// The HPA's metric counts answers, and saturated replicas answer only
// their capacity: it sees 150/s per pod against 100, not 600, and asks
// for ceil(2 × 1.5) = 3. Until that pod is ready (90 s) it sees the same
// and asks for nothing more (the pod starting counts as idle); then 3 ×
// 1.5 → 5, at 120 s 5 × 1.5 → 8, at 150 s 8 × 1.5 → 12, ready at 180 s,
// after the sale's whole 120 s in this curve: every second from 60 s on
// is over capacity, the queue growing.
func TestReactiveHPALagsAStep(t *testing.T) {
	s := service(2)
	s.MetricWindow = time.Second
	tl, err := Run(s, step(150, 1200, 60, 120))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range tl.Decisions {
		got = append(got, d.At.Sub(t0).String()+":"+strconv.Itoa(d.From)+"→"+strconv.Itoa(d.To))
	}
	if want := "1m0s:2→3 1m30s:3→5 2m0s:5→8 2m30s:8→12"; strings.Join(got, " ") != want {
		t.Errorf("decisions %v, want %s", got, want)
	}
	if tl.OverSeconds != 120 || !tl.FirstOver.Equal(t0.Add(60*time.Second)) || tl.LongestOver != 120 {
		t.Errorf("over %d s from %v (longest %d), want 120 s from +60s", tl.OverSeconds, tl.FirstOver.Sub(t0), tl.LongestOver)
	}
	if tl.Ready[89] != 2 || tl.Ready[90] != 3 || tl.Ready[119] != 3 || tl.Ready[120] != 5 {
		t.Errorf("ready at 89, 90, 119, 120 s: %v %v %v %v", tl.Ready[89], tl.Ready[90], tl.Ready[119], tl.Ready[120])
	}
	if v := tl.Verdict(time.UTC); v != "product: over capacity for 120 s from 19:01:00; peak 12 replicas" {
		t.Errorf("verdict %q", v)
	}
}

// The metric the HPA reads is as old as the scrape behind it: with the
// sale's first second 20 s old when read, the first scale-up waits for the
// sync after the jump has reached the metric, one period after the
// undelayed one.
func TestMetricDelayPostponesTheReaction(t *testing.T) {
	at := func(delay time.Duration) time.Duration {
		s := service(2)
		s.MetricWindow, s.MetricDelay = time.Second, delay
		tl, err := Run(s, step(150, 1200, 60, 120))
		if err != nil {
			t.Fatal(err)
		}
		if len(tl.Decisions) == 0 {
			t.Fatalf("delay %v: no decision", delay)
		}
		return tl.Decisions[0].At.Sub(t0)
	}
	if got := at(0); got != 60*time.Second {
		t.Errorf("without a delay the first scale-up is at %v, want 1m0s", got)
	}
	if got := at(20 * time.Second); got != 90*time.Second {
		t.Errorf("with the metric 20 s old the first scale-up is at %v, want 1m30s (the first sync that sees the jump)", got)
	}
	s := service(2)
	s.MetricDelay = -time.Second
	if _, err := Run(s, step(150, 1200, 60, 120)); err == nil {
		t.Error("a negative metric delay is accepted")
	}
}

// Once the replicas catch up, the queue drains first: the answers run
// above the load until it is gone, and the HPA, seeing them, overshoots.
// A service sized for the load never queues.
func TestBacklogDrainsAfterTheScaleUp(t *testing.T) {
	s := service(2)
	s.MetricWindow = time.Second
	s.HPA.Max = 10 // 1500/s: room to drain the queue
	tl, err := Run(s, step(150, 1200, 60, 600))
	if err != nil {
		t.Fatal(err)
	}
	if tl.Held() || tl.LongestOver >= 600 {
		t.Fatalf("over %d s (longest %d): want a breach that ends", tl.OverSeconds, tl.LongestOver)
	}
	last := len(tl.Utilization) - 1
	if tl.Ready[last] < 8 || tl.Utilization[last] > 1 {
		t.Errorf("at the end %d ready at %.2f", tl.Ready[last], tl.Utilization[last])
	}
	s = service(8)
	tl, _ = Run(s, step(150, 1200, 60, 120))
	if !tl.Held() {
		t.Errorf("8 replicas of 150/s over 1200/s: over %d s", tl.OverSeconds)
	}
}

// The same sale with a cron trigger raising the service to 12 replicas ten
// minutes before: ready long before 60 s, it holds.
func TestCronPrescaleHolds(t *testing.T) {
	s := service(2)
	s.Cron = &Cron{Start: t0.Add(-10 * time.Minute), End: t0.Add(time.Hour), Desired: 12}
	// The simulation starts at t0, inside the cron window. The cron goes
	// through the HPA, so its policies apply: 6 at 0 s, 12 at 15 s, all
	// ready at 45 s, before the jump.
	tl, err := Run(s, step(150, 1200, 60, 120))
	if err != nil {
		t.Fatal(err)
	}
	if !tl.Held() || tl.PeakReplicas != 12 || !tl.ReadyAtPeak.Equal(t0.Add(45*time.Second)) {
		t.Errorf("held %v, peak %d ready at %v; decisions %+v", tl.Held(), tl.PeakReplicas, tl.ReadyAtPeak.Sub(t0), tl.Decisions)
	}
}

// Within the 10% tolerance the HPA changes nothing, though the metric is
// off target.
func TestToleranceHoldsReplicas(t *testing.T) {
	s := service(4)
	tl, err := Run(s, step(436, 436, 0, 120)) // 109/s per pod against 100
	if err != nil {
		t.Fatal(err)
	}
	if len(tl.Decisions) != 0 {
		t.Errorf("decisions %+v within the tolerance", tl.Decisions)
	}
	tl, _ = Run(s, step(444, 444, 0, 120)) // 111/s per pod: out of it
	if len(tl.Decisions) == 0 || tl.Decisions[0].To != 5 {
		t.Errorf("decisions %+v, want a scale-up to 5", tl.Decisions)
	}
}

// After the sale the load falls; the default scale-down keeps the highest
// recommendation of the last 300 s, so the replicas stay for five minutes
// before they go.
func TestScaleDownWaitsForStabilization(t *testing.T) {
	s := service(12)
	s.HPA.Min = 2
	s.MetricWindow = time.Second
	tl, err := Run(s, step(1200, 150, 60, 600))
	if err != nil {
		t.Fatal(err)
	}
	if len(tl.Decisions) == 0 {
		t.Fatal("never scaled down")
	}
	first := tl.Decisions[0]
	if first.To >= first.From || first.At.Sub(t0) < 360*time.Second || first.At.Sub(t0) > 375*time.Second {
		t.Errorf("first decision %+v at %v, want a scale-down just after 60 s + 300 s", first, first.At.Sub(t0))
	}
}

// The manifest capacity.HPA writes is read back as written: its target,
// bounds and behavior (scale up at once by 100% or 4 pods per 15 s; down
// after 300 s, 10% a minute).
func TestFromManifestReadsThePlansHPA(t *testing.T) {
	plan := &capacity.PlanResult{Plan: "p.yaml", Headroom: 0.3}
	sp := capacity.ServicePlan{Name: "cart", CapacityQPS: 1000, SafeQPSPerReplica: 700, Replicas: 9, MaxReplicas: 40, Metric: "http_rps", Deployment: "cart"}
	a, err := FromManifest(capacity.HPA(plan, &sp))
	if err != nil {
		t.Fatal(err)
	}
	if a.Min != 9 || a.Max != 40 || a.Target != capacity.TargetQPSPerPod(&sp) || a.Up.Stabilization != 0 || a.Down.Stabilization != 300*time.Second {
		t.Errorf("%+v", a)
	}
	if len(a.Up.Policies) != 2 || a.Up.Policies[1] != (Policy{Pods, 4, 15 * time.Second}) || a.Down.Policies[0] != (Policy{Percent, 10, time.Minute}) {
		t.Errorf("policies up %+v down %+v", a.Up.Policies, a.Down.Policies)
	}
}

// A plan with a window: reactive falls behind the jump at the window's
// start, the pre-scaled case holds it, and unscaled is over for the whole
// sale.
func TestSimulatePlanCases(t *testing.T) {
	start := t0.Add(20 * time.Minute)
	plan := &capacity.PlanResult{Plan: "p.yaml", Headroom: 0.3,
		Window: &capacity.PlanWindow{Start: start, End: start.Add(time.Hour), Timezone: "UTC"},
		Services: []capacity.ServicePlan{{Name: "product", CapacityQPS: 150, Fanout: 2, SafeQPSPerReplica: 105,
			Current: 2, Replicas: 18, MaxReplicas: 40, Metric: "rps", Deployment: "product"}}}
	tr := step(100, 1000, 20*60, 10*60) // 200/s at product, then 2000/s at 20:20
	tr.Start = t0
	res, err := SimulatePlan(plan, tr, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Cases) != 3 {
		t.Fatalf("%d cases", len(res.Cases))
	}
	reactive, pre, unscaled := res.Cases[0], res.Cases[1], res.Cases[2]
	if reactive.Held() || !pre.Held() || unscaled.Held() {
		t.Errorf("held: reactive %v, pre-scaled %v, unscaled %v; want false, true, false", reactive.Held(), pre.Held(), unscaled.Held())
	}
	if r := reactive.Timelines[0]; r.FirstOver.Before(start) || r.OverSeconds < 30 {
		t.Errorf("reactive: over %d s from %v", r.OverSeconds, r.FirstOver)
	}
	if u := unscaled.Timelines[0]; u.OverSeconds != 10*60 {
		t.Errorf("unscaled: over %d s, want the whole 600 s of the sale", u.OverSeconds)
	}
	var b strings.Builder
	res.WriteText(&b, time.UTC)
	if !strings.Contains(b.String(), "reactive") || !strings.Contains(b.String(), "NOT HELD") || !strings.Contains(b.String(), "pre-scaled") {
		t.Errorf("text:\n%s", b.String())
	}
}

func TestReadForecast(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "f.csv")
	os.WriteFile(good, []byte("time,rps\n2026-11-11T19:59:58Z,100\n2026-11-11T20:00:00Z,900\n2026-11-11T20:00:02Z,0\n"), 0o644)
	tr, err := ReadForecast(good, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if !tr.Start.Equal(time.Date(2026, 11, 11, 19, 59, 58, 0, time.UTC)) || len(tr.RPS) != 5 || tr.RPS[1] != 100 || tr.RPS[2] != 900 || tr.RPS[4] != 0 {
		t.Errorf("%v %v", tr.Start, tr.RPS)
	}
	for _, tc := range []struct{ body, field string }{
		{"0,10\n5,x\n", "rps"},
		{"0,10\n5,-1\n", "rps"},
		{"0,10\n0,20\n", "time"},
		{"2026-11-11T20:00:00Z,1\n5,1\n", "time"},
		{"yesterday,1\n", "time"},
	} {
		f := filepath.Join(dir, "bad.csv")
		os.WriteFile(f, []byte(tc.body), 0o644)
		_, err := ReadForecast(f, time.UTC)
		var se *scenarios.Error
		if !errors.As(err, &se) || se.File != f || se.Line == 0 || se.Path != tc.field {
			t.Errorf("%q: %v, want a *scenarios.Error on %s with its line", tc.body, err, tc.field)
		}
	}
}

func FuzzReadForecast(f *testing.F) {
	f.Add("time,rps\n2026-11-11T19:59:58Z,100\n2026-11-11T20:00:00Z,900\n")
	f.Add("0,10\n60,1000\n120,0\n")
	f.Add("2026-11-11T20:00:00,5\n")
	f.Add("# comment\n\n0,1e3\n")
	f.Fuzz(func(t *testing.T, body string) {
		tr, err := parseForecast(strings.NewReader(body), "f.csv", time.UTC)
		if err != nil {
			var se *scenarios.Error
			if !errors.As(err, &se) || se.File != "f.csv" {
				t.Fatalf("error %v does not name the file", err)
			}
			return
		}
		if len(tr.RPS) == 0 || len(tr.RPS) > MaxTrafficSeconds+1 {
			t.Fatalf("%d seconds", len(tr.RPS))
		}
		for _, v := range tr.RPS {
			if v < 0 {
				t.Fatalf("negative rate %v", v)
			}
		}
	})
}
