package k6

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.k6.io/k6/metrics"
	"go.k6.io/k6/output"
)

// fixture builds k6 samples as k6's HTTP module emits them.
type fixture struct {
	reg *metrics.Registry
	bm  *metrics.BuiltinMetrics
	t0  time.Time
}

func newFixture() *fixture {
	reg := metrics.NewRegistry()
	return &fixture{reg: reg, bm: metrics.RegisterBuiltinMetrics(reg), t0: time.Unix(1_800_000_000, 0)}
}

// req is one HTTP request: scenario, name, status (0: no response),
// k6 error code, whether k6 counts it failed, its duration and end.
type req struct {
	scenario, name string
	status, code   int
	failed         bool
	dur            time.Duration
	end            time.Duration // since t0
}

// trail returns the samples k6 emits for one request, in one container.
func (f *fixture) trail(r req) metrics.SampleContainer {
	tags := f.reg.RootTagSet().With("scenario", r.scenario).With("name", r.name).With("method", "GET").
		With("url", "http://127.0.0.1/"+r.name).With("status", strconv.Itoa(r.status))
	if r.code != 0 {
		tags = tags.With("error_code", strconv.Itoa(r.code)).With("error", "dial: code "+strconv.Itoa(r.code))
	}
	at := f.t0.Add(r.end)
	failed := 0.0
	if r.failed {
		failed = 1
	}
	ms := float64(r.dur) / float64(time.Millisecond)
	return metrics.Samples{
		{TimeSeries: metrics.TimeSeries{Metric: f.bm.HTTPReqs, Tags: tags}, Time: at, Value: 1},
		{TimeSeries: metrics.TimeSeries{Metric: f.bm.HTTPReqDuration, Tags: tags}, Time: at, Value: ms},
		{TimeSeries: metrics.TimeSeries{Metric: f.bm.HTTPReqWaiting, Tags: tags}, Time: at, Value: ms},
		{TimeSeries: metrics.TimeSeries{Metric: f.bm.HTTPReqFailed, Tags: tags}, Time: at, Value: failed},
	}
}

// counter returns one sample of a per-scenario counter (bytes, drops).
func (f *fixture) counter(m *metrics.Metric, scenario string, v float64, end time.Duration) metrics.SampleContainer {
	tags := f.reg.RootTagSet().With("scenario", scenario)
	return metrics.Sample{TimeSeries: metrics.TimeSeries{Metric: m, Tags: tags}, Time: f.t0.Add(end), Value: v}
}

// collect runs frames through the wire (JSON) into a collector, as the
// parent does, and returns the outcome.
func collect(t *testing.T, frames []*frame, progress *bytes.Buffer) (*collector, *Outcome) {
	t.Helper()
	var wire bytes.Buffer
	enc := json.NewEncoder(&wire)
	for _, f := range frames {
		if err := enc.Encode(f); err != nil {
			t.Fatal(err)
		}
	}
	c := &collector{path: "test.js", iters: map[string]*Iterations{}, checks: map[checkKey]*Check{}}
	if progress != nil {
		c.progress, c.live = &muteWriter{w: progress}, true
	}
	if err := c.read(&wire); err != nil {
		t.Fatal(err)
	}
	return c, c.outcome(0, "", "", "")
}

// aggregate feeds batches to an aggregator started at t0 and returns the
// frames it sends, as the output would.
func aggregate(f *fixture, max int, end time.Duration, batches ...[]metrics.SampleContainer) []*frame {
	a := newAggregator(f.t0, max)
	frames := []*frame{{Hello: &helloFrame{Scenarios: []string{"s"}, Planned: end}}}
	for _, b := range batches {
		a.add(b)
	}
	for _, iv := range a.finish(f.t0.Add(end)) {
		frames = append(frames, &frame{Interval: iv})
	}
	return append(frames, &frame{Final: &finalFrame{End: end}})
}

func TestFailureClasses(t *testing.T) {
	tests := []struct {
		name    string
		r       req
		class   string // "" when completed
		message string
	}{
		{name: "ok", r: req{status: 200}},
		{name: "expected 404", r: req{status: 404}},
		{name: "5xx", r: req{status: 503, failed: true}, class: "5xx", message: "GET http://127.0.0.1/x: HTTP 503"},
		{name: "4xx", r: req{status: 404, failed: true}, class: "4xx", message: "GET http://127.0.0.1/x: HTTP 404"},
		{name: "unexpected 2xx", r: req{status: 201, failed: true}, class: "other"},
		{name: "refused", r: req{code: 1212, failed: true}, class: "refused", message: "dial: code 1212"},
		{name: "dial timeout", r: req{code: 1211, failed: true}, class: "timeout"},
		{name: "request timeout", r: req{code: 1050, failed: true}, class: "timeout"},
		{name: "reset", r: req{code: 1220, failed: true}, class: "reset"},
		{name: "no such host", r: req{code: 1101, failed: true}, class: "dns"},
		{name: "unknown authority", r: req{code: 1310, failed: true}, class: "tls"},
		{name: "http2 stream", r: req{code: 1630, failed: true}, class: "protocol"},
		{name: "generic", r: req{code: 1000, failed: true}, class: "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture()
			tt.r.scenario, tt.r.name, tt.r.dur, tt.r.end = "s", "x", 3*time.Millisecond, 100*time.Millisecond
			_, out := collect(t, aggregate(f, 0, time.Second, []metrics.SampleContainer{f.trail(tt.r)}), nil)
			rs := out.Result.Request("x")
			if tt.class == "" {
				if rs.Completed != 1 || rs.Failed != 0 {
					t.Fatalf("completed %d, failed %d: want completed", rs.Completed, rs.Failed)
				}
				return
			}
			if rs.Failed != 1 || rs.Errors[tt.class] != 1 {
				t.Fatalf("failed %d, errors %v: want class %s", rs.Failed, rs.Errors, tt.class)
			}
			if tt.message != "" && rs.ErrorSamples[tt.class] != tt.message {
				t.Errorf("sample %q, want %q", rs.ErrorSamples[tt.class], tt.message)
			}
		})
	}
}

func TestIntervalsAndLateSamples(t *testing.T) {
	f := newFixture()
	a := newAggregator(f.t0, 0)
	r := req{scenario: "s", name: "a", status: 200, dur: 10 * time.Millisecond}
	at := func(d time.Duration) metrics.SampleContainer { r.end = d; return f.trail(r) }
	// The first request began at t0+90ms: the test's start.
	a.add([]metrics.SampleContainer{at(100 * time.Millisecond), at(600 * time.Millisecond)})
	start := f.t0.Add(90 * time.Millisecond)
	if got := a.startTime(); !got.Equal(start) {
		t.Fatalf("start %v, want the first request's send %v", got.Sub(f.t0), start.Sub(f.t0))
	}
	a.add([]metrics.SampleContainer{at(1200 * time.Millisecond)})
	if got := a.due(start.Add(time.Second + closeGrace - time.Millisecond)); len(got) != 0 {
		t.Fatalf("interval 0 closed before its grace ran out")
	}
	got := a.due(start.Add(time.Second + closeGrace))
	if len(got) != 1 || got[0].T != 0 || got[0].Series[0].Completed != 2 || got[0].End != time.Second {
		t.Fatalf("first close: %+v", got)
	}
	// A sample of interval 0 arriving now is counted in interval 1.
	a.add([]metrics.SampleContainer{at(900 * time.Millisecond)})
	rest := a.finish(start.Add(1500 * time.Millisecond))
	if len(rest) != 1 || rest[0].T != 1 || rest[0].Series[0].Completed != 2 || rest[0].End != 1500*time.Millisecond {
		t.Fatalf("finish: %+v", rest)
	}
}

func TestBytesAttribution(t *testing.T) {
	f := newFixture()
	reqs := []metrics.SampleContainer{}
	for i, name := range []string{"a", "a", "a", "b"} {
		reqs = append(reqs, f.trail(req{scenario: "s", name: name, status: 200, dur: time.Millisecond, end: time.Duration(i+1) * 10 * time.Millisecond}))
	}
	frames := aggregate(f, 0, 2500*time.Millisecond,
		// Bytes before any request of the scenario wait for one.
		[]metrics.SampleContainer{f.trail(req{scenario: "s", name: "a", status: 200, dur: time.Millisecond, end: 5 * time.Millisecond})},
		reqs,
		[]metrics.SampleContainer{
			f.counter(f.bm.DataSent, "s", 1001, 50*time.Millisecond),
			f.counter(f.bm.DataReceived, "s", 4000, 50*time.Millisecond),
			// Interval 1 has bytes and no request: they go to b, used last.
			f.counter(f.bm.DataSent, "s", 7, 1500*time.Millisecond),
			// Interval 2: bytes of a scenario that never sent a request.
			f.counter(f.bm.DataSent, "other", 9, 2100*time.Millisecond),
		},
	)
	_, out := collect(t, frames, nil)
	a, b := out.Result.Request("a"), out.Result.Request("b")
	// 4 of a and 1 of b in interval 0: 1001 sent split 4:1, remainder to a.
	if a.BytesSent != 801 || b.BytesSent != 200+7 || a.BytesRecv != 3200 || b.BytesRecv != 800 {
		t.Errorf("a sent %d recv %d, b sent %d recv %d", a.BytesSent, a.BytesRecv, b.BytesSent, b.BytesRecv)
	}
	if out.Result.Totals.BytesSent != 1008 {
		t.Errorf("total sent %d, want 1008 of the scenario with requests", out.Result.Totals.BytesSent)
	}
}

func TestSeriesCap(t *testing.T) {
	f := newFixture()
	var batch []metrics.SampleContainer
	for i := range 5 {
		batch = append(batch, f.trail(req{scenario: "s", name: "/item/" + strconv.Itoa(i), status: 200, dur: time.Millisecond, end: time.Duration(i+1) * time.Millisecond}))
	}
	_, out := collect(t, aggregate(f, 2, time.Second, batch), nil)
	var names []string
	for _, r := range out.Result.Requests {
		names = append(names, r.Name+"="+strconv.FormatInt(r.Sent, 10))
	}
	if got := strings.Join(names, " "); got != "(other)=3 /item/0=1 /item/1=1" {
		t.Errorf("requests %s", got)
	}
}

func TestDroppedAndVUs(t *testing.T) {
	f := newFixture()
	vus := func(n float64, end time.Duration) metrics.SampleContainer {
		return metrics.Sample{TimeSeries: metrics.TimeSeries{Metric: f.bm.VUs, Tags: f.reg.RootTagSet()}, Time: f.t0.Add(end), Value: n}
	}
	frames := aggregate(f, 0, 2*time.Second,
		[]metrics.SampleContainer{vus(0, 0), f.trail(req{scenario: "s", name: "a", status: 200, dur: time.Millisecond, end: 10 * time.Millisecond})},
		[]metrics.SampleContainer{vus(7, 500*time.Millisecond), f.counter(f.bm.DroppedIterations, "s", 1, 600*time.Millisecond), f.counter(f.bm.DroppedIterations, "s", 1, 1600*time.Millisecond)},
		[]metrics.SampleContainer{vus(3, 1500*time.Millisecond)},
	)
	_, out := collect(t, frames, nil)
	tot := out.Result.Totals
	if tot.Dropped != 2 || tot.Scheduled != 3 || tot.Sent != 1 {
		t.Errorf("totals %+v: want 2 dropped, 3 scheduled, 1 sent", tot)
	}
	if out.Result.MaxVUs != 7 {
		t.Errorf("max VUs %d, want 7", out.Result.MaxVUs)
	}
}

func TestOutputVerdicts(t *testing.T) {
	f := newFixture()
	th := metrics.NewThresholds([]string{"p(50)<10", "count>3"})
	if err := th.Parse(); err != nil {
		t.Fatal(err)
	}
	var pipe bytes.Buffer
	o := newStreamOutput(nopCloser{&pipe}, output.Params{})
	o.SetThresholds(map[string]metrics.Thresholds{"http_req_duration{name:a}": th})
	o.SetBuiltinMetrics(f.bm)
	sm, err := f.bm.HTTPReqDuration.AddSubmetric("name:a")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []float64{4, 8, 12} {
		sm.Metric.Sink.Add(metrics.Sample{Value: v})
	}
	th.Thresholds[0].LastFailed = false
	th.Thresholds[1].LastFailed = true
	got := o.verdicts(time.Second)
	if len(got) != 2 || got[0].Failed || !got[1].Failed || got[0].Value == nil || *got[0].Value != 8 || got[1].Value != nil {
		t.Fatalf("verdicts %+v", got)
	}
}

type nopCloser struct{ *bytes.Buffer }

func (nopCloser) Close() error { return nil }

func BenchmarkAggregatorAdd(b *testing.B) {
	f := newFixture()
	a := newAggregator(f.t0, 0)
	const perBatch = 100
	batch := make([]metrics.SampleContainer, perBatch)
	for i := range batch {
		batch[i] = f.trail(req{scenario: "s", name: "n" + strconv.Itoa(i%5), status: 200, dur: time.Duration(i+1) * 100 * time.Microsecond, end: time.Millisecond})
	}
	a.add(batch)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		a.add(batch)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perBatch), "ns/request")
}
