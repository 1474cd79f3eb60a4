package k6

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/scenarios"
)

// ivFrame builds an interval frame by hand: n requests of d for each
// listed series.
func ivFrame(t int, newSeries []seriesName, d time.Duration, counts map[int]int64) *frame {
	f := &intervalFrame{T: t, End: time.Duration(t+1) * time.Second, NewSeries: newSeries, VUs: 2, PeakVUs: 2}
	if t == 0 {
		f.Start = time.Unix(1_800_000_000, 0).UnixNano()
	}
	for _, i := range sortedKeys(counts) {
		h := newHist()
		_ = h.RecordValues(d.Microseconds(), counts[i])
		f.Series = append(f.Series, seriesDelta{I: i, Completed: counts[i], Sum: time.Duration(counts[i]) * d, Hist: encodeHist(h), Status: map[int]int64{200: counts[i]}})
	}
	return &frame{Interval: f}
}

func TestCollectorNewSeriesLater(t *testing.T) {
	hello := &frame{Hello: &helloFrame{Scenarios: []string{"s"}, Planned: 3 * time.Second}}
	frames := []*frame{
		hello,
		ivFrame(0, []seriesName{{"s", "a"}}, 2*time.Millisecond, map[int]int64{0: 10}),
		ivFrame(1, []seriesName{{"s", "b"}}, 4*time.Millisecond, map[int]int64{0: 10, 1: 5}),
		ivFrame(2, []seriesName{{"t", "a"}}, 6*time.Millisecond, map[int]int64{0: 1, 2: 3}),
	}
	var progress bytes.Buffer
	var hooked []int
	c := &collector{path: "x.js", iters: map[string]*Iterations{}, checks: map[checkKey]*Check{},
		progress: &muteWriter{w: &progress}, live: true, hook: func(iv loadgen.Interval) { hooked = append(hooked, iv.T) }}
	var wire bytes.Buffer
	enc := json.NewEncoder(&wire)
	for _, f := range frames {
		if err := enc.Encode(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.read(&wire); err != nil {
		t.Fatal(err)
	}
	res := c.outcome(0, "", "", "").Result
	// Each interval shows once, though the merger was rebuilt twice.
	if n := strings.Count(progress.String(), "rate "); n != 3 {
		t.Errorf("%d progress lines for 3 intervals:\n%q", n, progress.String())
	}
	if len(hooked) != 3 || hooked[0] != 0 || hooked[2] != 2 {
		t.Errorf("interval hook saw %v, want [0 1 2]", hooked)
	}
	if a, b := res.Request("a"), res.Request("b"); a.Sent != 24 || b.Sent != 5 || a.StatusCodes[200] != 24 {
		t.Errorf("a %+v, b %+v", a, b)
	}
	if got := res.Select(map[string]string{"scenario": "t"}); got == nil || got.Sent != 3 {
		t.Errorf("scenario t: %+v", got)
	}
	if len(res.Intervals) != 3 || res.Intervals[1].Sent != 15 || res.Intervals[1].Latency.Max < 3.99 {
		t.Errorf("intervals %+v", res.Intervals)
	}
	if res.Totals.Sent != 29 || res.Totals.Completed != 29 || res.Totals.InflightAtStop != 0 {
		t.Errorf("totals %+v", res.Totals)
	}
	// Busy is ∫ inflight dt: Σ durations, in the interval each request ended.
	if want := 10*2*time.Millisecond + 15*4*time.Millisecond + 4*6*time.Millisecond; res.Intervals[2].Busy != want {
		t.Errorf("busy %s, want %s", res.Intervals[2].Busy, want)
	}
	if res.Duration != 3*time.Second || !res.Started.Equal(time.Unix(1_800_000_000, 0)) {
		t.Errorf("started %v, duration %s", res.Started, res.Duration)
	}
}

func TestCollectorLongLatency(t *testing.T) {
	frames := []*frame{
		{Hello: &helloFrame{Scenarios: []string{"s"}}},
		ivFrame(0, []seriesName{{"s", "a"}}, 5*time.Millisecond, map[int]int64{0: 4}),
		ivFrame(1, nil, 90*time.Second, map[int]int64{0: 1}),
	}
	_, out := collect(t, frames, nil)
	a := out.Result.Request("a")
	if a.Sent != 5 || a.Latency.TotalCount() != 5 {
		t.Fatalf("a: sent %d, %d latencies", a.Sent, a.Latency.TotalCount())
	}
	if got := time.Duration(a.Latency.Max()) * time.Microsecond; got < 89*time.Second {
		t.Errorf("max %s: the 90 s request was clamped", got)
	}
}

func TestCollectorNoRequests(t *testing.T) {
	frames := []*frame{
		{Hello: &helloFrame{Scenarios: []string{"idle"}}},
		{Interval: &intervalFrame{T: 0, Start: 1, End: time.Second, Iters: []iterDelta{{Scenario: "idle", Count: 3}}}},
	}
	_, out := collect(t, frames, nil)
	res := out.Result
	if res == nil || len(res.Requests) != 1 || res.Requests[0].Name != NoRequests || res.Totals.Sent != 0 {
		t.Fatalf("result %+v", res)
	}
	if res.Status != loadgen.StatusPassed || len(out.Iterations) != 1 || out.Iterations[0].Count != 3 {
		t.Errorf("status %s, iterations %+v", res.Status, out.Iterations)
	}
}

func TestCollectorAbortOnFail(t *testing.T) {
	f, err := scenarios.Parse("ours.yaml", []byte(`target: http://127.0.0.1:1
requests: [{name: a, path: /}]
scenarios: {s: {executor: constant-vus, vus: 1, duration: 1s}}
thresholds:
  http_req_failed: [{threshold: "rate<0.1", abortOnFail: true}]
`))
	if err != nil {
		t.Fatal(err)
	}
	var stopped []string
	c := &collector{path: "x.js", thresholds: f.Thresholds, iters: map[string]*Iterations{}, checks: map[checkKey]*Check{},
		stop: func(cause, reason string) { stopped = append(stopped, cause+": "+reason) }}
	ok := ivFrame(0, []seriesName{{"s", "a"}}, time.Millisecond, map[int]int64{0: 10})
	bad := ivFrame(1, nil, time.Millisecond, map[int]int64{0: 2})
	bad.Interval.Series[0].Completed, bad.Interval.Series[0].Failed = 0, 2
	bad.Interval.Series[0].Classes = map[string]int64{"5xx": 2}
	for _, fr := range []*frame{{Hello: &helloFrame{Scenarios: []string{"s"}}}, ok, bad} {
		if fr.Interval != nil {
			if err := c.interval(fr.Interval); err != nil {
				t.Fatal(err)
			}
		} else {
			c.part(0).hello, c.hello = fr.Hello, fr.Hello
		}
	}
	if len(stopped) != 1 || !strings.HasPrefix(stopped[0], loadgen.CauseThreshold+": ") {
		t.Fatalf("stop calls %q: want one, for the threshold", stopped)
	}
	res := c.outcome(exitExternalAbort, loadgen.CauseThreshold, "threshold crossed", "").Result
	if res.Status != loadgen.StatusAborted || res.AbortCause != loadgen.CauseThreshold {
		t.Errorf("status %s, cause %s", res.Status, res.AbortCause)
	}
	if res.Request("a").Errors["5xx"] != 2 {
		t.Errorf("errors %v", res.Request("a").Errors)
	}
}

func TestK6Cause(t *testing.T) {
	tests := []struct {
		name  string
		final *finalFrame
		exit  int
		cause string
	}{
		{name: "clean", final: &finalFrame{}, exit: 0},
		{name: "thresholds after the end", final: &finalFrame{Error: "thresholds crossed"}, exit: 99},
		{name: "ctrl+c", final: &finalFrame{AbortReason: abortUser}, exit: 105, cause: loadgen.CauseSignal},
		{name: "abortOnFail", final: &finalFrame{AbortReason: abortThreshold}, exit: 99, cause: loadgen.CauseThreshold},
		{name: "test.abort()", final: &finalFrame{AbortReason: abortScript}, exit: 108, cause: CauseScript},
		{name: "killed hard", exit: 105, cause: loadgen.CauseSignal},
		{name: "crashed", exit: 109, cause: CauseScript},
		{name: "no final, clean exit", exit: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if cause, _ := k6Cause(tt.final, tt.exit); cause != tt.cause {
				t.Errorf("cause %q, want %q", cause, tt.cause)
			}
		})
	}
}

func TestK6ThresholdsInResult(t *testing.T) {
	v := 12.5
	frames := []*frame{
		{Hello: &helloFrame{Scenarios: []string{"s"}}},
		ivFrame(0, []seriesName{{"s", "a"}}, time.Millisecond, map[int]int64{0: 1}),
		{Final: &finalFrame{End: time.Second, Thresholds: []thresholdResult{
			{Metric: "http_req_duration", Expr: "p(95)<10", Failed: true, Value: &v},
			{Metric: "my_counter", Expr: "count>0"},
		}}},
	}
	_, out := collect(t, frames, nil)
	th := out.Result.Thresholds
	if len(th) != 2 || th[0].Passed || th[0].Value != 12.5 || !th[1].Passed || !math.IsNaN(th[1].Value) {
		t.Fatalf("thresholds %+v", th)
	}
	if out.Result.Status != loadgen.StatusFailed {
		t.Errorf("status %s, want failed", out.Result.Status)
	}
}

func TestHistWire(t *testing.T) {
	h := newHist()
	for _, v := range []int64{1, 999, 1000, 1001, 123456, 9_000_000, maxHistTop} {
		_ = h.RecordValues(v, v%7+1)
	}
	got, err := decodeHist(encodeHist(h))
	if err != nil {
		t.Fatal(err)
	}
	want := map[int64]int64{}
	for v, c := range h.ForEachBucket {
		want[v] = c
	}
	n := 0
	for v, c := range got.ForEachBucket {
		n++
		if want[v] != c {
			t.Errorf("bucket %d: %d, want %d", v, c, want[v])
		}
	}
	if n != len(want) {
		t.Errorf("%d buckets, want %d", n, len(want))
	}
	for _, bad := range []*wireHist{
		{Lowest: 1, Highest: maxHistTop * 2, Digits: 3},
		{Lowest: 1, Highest: 1000, Digits: 3, Deltas: []int64{5, 0}, Counts: []int64{1, 1}},
		{Lowest: 1, Highest: 1000, Digits: 3, Deltas: []int64{5}, Counts: []int64{1, 1}},
	} {
		if _, err := decodeHist(bad); err == nil {
			t.Errorf("decoded %+v", bad)
		}
	}
}
