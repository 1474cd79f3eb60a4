package reports

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/scenarios"
)

const mergeScenario = `target: http://127.0.0.1:9
scenarios:
  s: {executor: constant-arrival-rate, rate: 600, timeUnit: 1s, duration: 3s, preAllocatedVUs: 10}
requests:
  - {name: home, path: /}
  - {name: cart, path: /cart}
thresholds:
  http_req_duration: ["p(99)<20"]
  "http_req_duration{name:cart}": ["p(90)<8"]
  http_req_failed: ["rate<0.02"]
  "http_req_duration{scenario:s}": ["p(50)<100"]
  data_sent: ["count>1000"]
`

// partSnapshots is a part's three seconds: n requests a second per name,
// latencies spread over 0.2-30 ms, 1 in 40 failed.
func partSnapshots(rng *rand.Rand, n int) []*loadgen.Snapshot {
	var out []*loadgen.Snapshot
	for t := range 3 {
		s := &loadgen.Snapshot{T: t, End: time.Duration(t+1) * time.Second, Scheduled: int64(2 * n), Steal: -1, VUs: 2, PeakVUs: 3,
			Series: make([]loadgen.SeriesDelta, 2)}
		for j := range s.Series {
			sd := &s.Series[j]
			sd.Latency, sd.Service = hdr.NewPacked(1, 60_000_000, 3), hdr.NewPacked(1, 60_000_000, 3)
			for range n {
				v := int64(200 + rng.IntN(30_000>>(2*j)))
				_ = sd.Latency.RecordValue(v)
				_ = sd.Service.RecordValue(v / 2)
				sd.LatencySum += time.Duration(v) * time.Microsecond
				if rng.IntN(40) == 0 {
					sd.Failed++
					sd.Classes[1]++
				} else {
					sd.Completed++
				}
			}
			sd.Sent, sd.BytesSent, sd.BytesRecv = int64(n), int64(n)*100, int64(n)*1000
			sd.StatusCodes = map[int]int64{200: int64(t+1) * sd.Completed}
		}
		out = append(out, s)
	}
	return out
}

// merged runs parts' snapshots through one loadgen.Merger, as a
// coordinator of all of them does, and writes the run result.
func merged(t *testing.T, f *scenarios.File, start time.Time, parts ...[]*loadgen.Snapshot) *Run {
	t.Helper()
	m, err := loadgen.NewMerger(f, len(parts))
	if err != nil {
		t.Fatal(err)
	}
	m.Start(start)
	for i, snaps := range parts {
		var tot loadgen.Totals
		for _, s := range snaps {
			if _, err := m.Add(i, s); err != nil {
				t.Fatal(err)
			}
			tot.Scheduled += s.Scheduled
			for _, sd := range s.Series {
				tot.Sent += sd.Sent
				tot.Completed += sd.Completed
				tot.Failed += sd.Failed
			}
		}
		if err := m.Finish(i, loadgen.Final{Status: loadgen.StatusPassed, Totals: tot, Duration: 3 * time.Second, MaxVUs: 3}); err != nil {
			t.Fatal(err)
		}
	}
	return NewRun(m.Result(), Meta{Version: "test", File: f.Path, Target: f.Target, Scenarios: []string{"s"}})
}

// decoded returns the bucket counts of an encoded histogram.
func decoded(t *testing.T, what, enc string) map[int64]int64 {
	t.Helper()
	h, err := hdr.Decode([]byte(enc))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	out := map[int64]int64{}
	for _, b := range h.Distribution() {
		if b.Count > 0 {
			out[b.From] = b.Count
		}
	}
	return out
}

func sameHist(t *testing.T, what, got, want string) {
	t.Helper()
	g, w := decoded(t, what, got), decoded(t, what, want)
	if len(g) != len(w) {
		t.Errorf("%s: %d buckets, want %d", what, len(g), len(w))
		return
	}
	for v, n := range w {
		if g[v] != n {
			t.Errorf("%s: bucket %d holds %d, want %d", what, v, g[v], n)
		}
	}
}

// Three coordinators' results, each over a third of the agents, merge
// into the result one coordinator over all of them writes: the same
// totals, requests, seconds, histograms bucket for bucket, and the
// thresholds evaluated on the whole (the p(99) of a union is none of the
// parts').
func TestMergeEqualsOneRunOverAllParts(t *testing.T) {
	f, err := scenarios.Parse("s.yaml", []byte(mergeScenario))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	start := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	var agents [][]*loadgen.Snapshot
	for i := range 6 {
		agents = append(agents, partSnapshots(rng, 50+20*i))
	}
	want := merged(t, f, start, agents...)
	var parts []*Run
	dir := t.TempDir()
	var paths []string
	for c := range 3 {
		r := merged(t, f, start, agents[2*c], agents[2*c+1])
		p := filepath.Join(dir, fmt.Sprintf("c%d.json", c))
		if err := r.WriteFile(p); err != nil {
			t.Fatal(err)
		}
		parts, paths = append(parts, r), append(paths, p)
	}
	got, err := MergeFiles(paths...)
	if err != nil {
		t.Fatal(err)
	}
	if got.Totals != want.Totals {
		t.Errorf("totals %+v\nwant   %+v", got.Totals, want.Totals)
	}
	if got.LatencyMs != want.LatencyMs || got.ServiceMs != want.ServiceMs || got.Meta.MaxVUs != want.Meta.MaxVUs || got.DurationS != want.DurationS {
		t.Errorf("latency %+v service %+v max VUs %d duration %v\nwant    %+v service %+v max VUs %d duration %v",
			got.LatencyMs, got.ServiceMs, got.Meta.MaxVUs, got.DurationS, want.LatencyMs, want.ServiceMs, want.Meta.MaxVUs, want.DurationS)
	}
	for name, w := range want.Requests {
		g := got.Requests[name]
		if g.Totals != w.Totals || g.LatencyMs != w.LatencyMs || fmt.Sprint(g.StatusCodes, g.Errors) != fmt.Sprint(w.StatusCodes, w.Errors) {
			t.Errorf("request %s: %+v\nwant %+v", name, g, w)
		}
		sameHist(t, "latency of "+name, got.Histograms[name], want.Histograms[name])
		sameHist(t, "service time of "+name, got.ServiceHist[name], want.ServiceHist[name])
	}
	if len(got.Intervals) != len(want.Intervals) {
		t.Fatalf("%d seconds, want %d", len(got.Intervals), len(want.Intervals))
	}
	for i, w := range want.Intervals {
		g := got.Intervals[i]
		if g.T != w.T || g.Sent != w.Sent || g.Completed != w.Completed || g.Failed != w.Failed || g.Scheduled != w.Scheduled || g.LatencyMs != w.LatencyMs || fmt.Sprint(g.Errors) != fmt.Sprint(w.Errors) {
			g.Histograms, w.Histograms = nil, nil // compared below, bucket by bucket
			t.Errorf("second %d: %+v\nwant %+v", w.T, g, w)
		}
		for name, h := range want.Intervals[i].Histograms {
			sameHist(t, fmt.Sprintf("second %d of %s", w.T, name), got.Intervals[i].Histograms[name], h)
		}
	}
	if len(got.Thresholds) != len(want.Thresholds) {
		t.Fatalf("thresholds %+v, want %+v", got.Thresholds, want.Thresholds)
	}
	partP99 := map[float64]bool{}
	for _, p := range parts {
		partP99[*p.Thresholds[0].Value] = true
	}
	for i, w := range want.Thresholds {
		g := got.Thresholds[i]
		switch {
		case strings.Contains(w.Metric, "scenario"): // run.json has no scenario's histogram: the parts' verdict
			if g.Passed != w.Passed || g.Note == "" {
				t.Errorf("threshold %s %s: %+v, want the parts' verdict with a note", w.Metric, w.Expr, g)
			}
		case g.Metric != w.Metric || g.Passed != w.Passed || g.Value == nil || w.Value == nil || math.Abs(*g.Value-*w.Value) > 1e-9:
			t.Errorf("threshold %s %s: %+v value %v, want %+v value %v", w.Metric, w.Expr, g, deref(g.Value), w, deref(w.Value))
		}
	}
	if partP99[*got.Thresholds[0].Value] && len(partP99) > 1 {
		t.Logf("the merged p(99) equals one part's (%v): the test's data does not tell a re-evaluation from a copy", *got.Thresholds[0].Value)
	}
	if got.Status != want.Status {
		t.Errorf("status %s, want %s", got.Status, want.Status)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("the merged run does not validate: %v", err)
	}
}

func deref(v *float64) any {
	if v == nil {
		return nil
	}
	return *v
}

// A file that is not a valid run result stops the merge, naming it.
func TestMergeFilesRefusesAnInvalidRun(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	if err := NewRun(sample(), Meta{Version: "test"}).WriteFile(good); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"schema": "loadcap.run/v1", "totals": {"sent": -1}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := MergeFiles(good, bad)
	if err == nil || !strings.Contains(err.Error(), "bad.json") {
		t.Fatalf("merging an invalid run: %v, want an error naming bad.json", err)
	}
}
