package loadgen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/loadcap/loadcap/scenarios"
)

func twoSeriesFile(t *testing.T) *scenarios.File {
	t.Helper()
	f, err := scenarios.Parse("merge.yaml", []byte(`
target: http://127.0.0.1:9
scenarios:
  s:
    executor: constant-arrival-rate
    rate: 10
    duration: 5s
    preAllocatedVUs: 1
requests:
  - name: a
    path: /a
  - name: b
    path: /b
thresholds:
  http_req_duration: ["p(99)<100000"]
`))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// sameBuckets fails unless a and b hold the same count in every bucket.
func sameBuckets(t *testing.T, what string, a, b *hdr.Histogram) {
	t.Helper()
	if a.TotalCount() != b.TotalCount() {
		t.Fatalf("%s: merged histogram holds %d values, the single one %d", what, a.TotalCount(), b.TotalCount())
	}
	da, db := a.Distribution(), b.Distribution()
	if len(da) != len(db) {
		t.Fatalf("%s: %d buckets vs %d", what, len(da), len(db))
	}
	for i := range da {
		if da[i] != db[i] {
			t.Fatalf("%s: bucket %d is %+v merged, %+v single", what, i, da[i], db[i])
		}
	}
}

// TestMergedEqualsSingleRecorder records the same requests once in a
// single recorder and spread over three "agents" whose snapshots are
// merged: every histogram must match bucket by bucket, and every count.
func TestMergedEqualsSingleRecorder(t *testing.T) {
	// Snapshots as an agent's engine makes them (sparse histograms), and
	// as a coordinator decodes them (bucket lists).
	for _, buckets := range []bool{false, true} {
		t.Run(fmt.Sprintf("buckets=%v", buckets), func(t *testing.T) { mergedEqualsSingleRecorder(t, buckets) })
	}
}

// bucketsOf lists h's buckets; nil for nil.
func bucketsOf(h *hdr.PackedHistogram) *Buckets {
	if h == nil {
		return nil
	}
	b := &Buckets{}
	for v, c := range h.ForEachBucket {
		b.Values, b.Counts = append(b.Values, v), append(b.Counts, c)
	}
	return b
}

func mergedEqualsSingleRecorder(t *testing.T, buckets bool) {
	f := twoSeriesFile(t)
	series := SeriesOf(f)
	_, top, _ := limits(f)
	t0 := time.Unix(1_700_000_000, 0)
	single := NewRecorder(series, top)
	single.Start(t0)
	const parts = 3
	agents := make([]*Recorder, parts)
	for i := range agents {
		agents[i] = NewRecorder(series, top)
		agents[i].Start(t0)
	}
	m, err := NewMerger(f, parts)
	if err != nil {
		t.Fatal(err)
	}
	m.Start(t0)
	rng := rand.New(rand.NewPCG(1, 2))
	const intervals = 5
	for k := range intervals {
		for range 4000 {
			a := agents[rng.IntN(parts)]
			name := rng.IntN(len(series))
			at := t0.Add(time.Duration(k)*time.Second + time.Duration(rng.IntN(900))*time.Millisecond)
			// Log-uniform latency from 50 µs to 5 s.
			lat := time.Duration(math.Exp(math.Log(50e3)+rng.Float64()*math.Log(1e5))) * time.Nanosecond
			o := Outcome{Name: name, Latency: lat, Service: lat / 2, Status: 200, End: at.Add(lat), BytesSent: 100, BytesRecv: 1000}
			if rng.IntN(10) == 0 {
				o.Status, o.Class, o.Err = 503, class5xx, "GET /: HTTP 503"
			}
			for _, r := range []*Recorder{single, a} {
				r.Scheduled(1)
				r.Sent(name, 0, at)
				oc := o
				r.Record(0, &oc)
			}
		}
		now := t0.Add(time.Duration(k+1) * time.Second)
		single.Rotate(now)
		for i, a := range agents {
			snap := &Snapshot{}
			a.rotate(now, snap)
			if buckets {
				for j := range snap.Series {
					sd := &snap.Series[j]
					sd.LatencyBuckets, sd.ServiceBuckets = bucketsOf(sd.Latency), bucketsOf(sd.Service)
					sd.Latency, sd.Service = nil, nil
				}
			}
			if _, err := m.Add(i, snap); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, a := range agents {
		res := a.result()
		res.Duration = intervals * time.Second
		if err := m.Finish(i, FinalOf(res)); err != nil {
			t.Fatal(err)
		}
	}
	got := m.Result()
	want := single.result()

	sameBuckets(t, "all latency", got.Latency, want.Latency)
	sameBuckets(t, "all service", got.Service, want.Service)
	for j := range series {
		g, w := got.Series[j], want.Series[j]
		sameBuckets(t, "latency of "+w.Name, g.Latency, w.Latency)
		sameBuckets(t, "service of "+w.Name, g.Service, w.Service)
		if g.Sent != w.Sent || g.Completed != w.Completed || g.Failed != w.Failed || g.BytesSent != w.BytesSent || g.BytesRecv != w.BytesRecv {
			t.Errorf("%s: merged %+v, single %+v", w.Name, *g, *w)
		}
		if !reflect.DeepEqual(g.StatusCodes, w.StatusCodes) || !reflect.DeepEqual(g.Errors, w.Errors) || !reflect.DeepEqual(g.ErrorSamples, w.ErrorSamples) {
			t.Errorf("%s: merged codes %v errors %v samples %v; single %v %v %v", w.Name, g.StatusCodes, g.Errors, g.ErrorSamples, w.StatusCodes, w.Errors, w.ErrorSamples)
		}
	}
	if g, w := got.Totals, want.Totals; g != w {
		t.Errorf("totals: merged %+v, single %+v", g, w)
	}
	if len(got.Intervals) != intervals || len(want.Intervals) != intervals {
		t.Fatalf("intervals: merged %d, single %d, want %d", len(got.Intervals), len(want.Intervals), intervals)
	}
	for k := range intervals {
		g, w := got.Intervals[k], want.Intervals[k]
		if g.Sent != w.Sent || g.Completed != w.Completed || g.Failed != w.Failed || g.Scheduled != w.Scheduled || g.Classes != w.Classes || g.Latency != w.Latency {
			t.Errorf("interval %d: merged %+v, single %+v", k, g, w)
		}
		for name, h := range w.Hists {
			gh := hdr.New(histLowest, single.top, histDigits)
			wh := hdr.New(histLowest, single.top, histDigits)
			g.Hists[name].MergeInto(gh)
			h.MergeInto(wh)
			sameBuckets(t, "interval latency of "+name, gh, wh)
		}
	}
	if got.Status != StatusPassed || len(got.Thresholds) != 1 || !got.Thresholds[0].Passed {
		t.Errorf("status %s thresholds %+v, want passed", got.Status, got.Thresholds)
	}
}

func TestMergerWaitsForEveryPartAndMarksLost(t *testing.T) {
	f := twoSeriesFile(t)
	series := SeriesOf(f)
	var merged []Interval
	segs, err := Segments("", 2)
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMerger(f, 2, WithPartSegments(segs), WithIntervalHook(func(iv Interval) { merged = append(merged, iv) }))
	if err != nil {
		t.Fatal(err)
	}
	m.Start(time.Unix(0, 0))
	snap := func(tt int, sent int64) *Snapshot {
		s := &Snapshot{T: tt, End: time.Duration(tt+1) * time.Second, Scheduled: sent, Series: make([]SeriesDelta, len(series))}
		s.Series[0].Sent, s.Series[0].Completed = sent, sent
		return s
	}
	add := func(part int, s *Snapshot) {
		t.Helper()
		if _, err := m.Add(part, s); err != nil {
			t.Fatal(err)
		}
	}
	add(0, snap(0, 10))
	add(0, snap(1, 10))
	if len(merged) != 0 {
		t.Fatalf("merged %d intervals before part 1 sent any", len(merged))
	}
	add(1, snap(0, 5))
	if len(merged) != 1 || merged[0].Sent != 15 {
		t.Fatalf("after both sent interval 0: merged %+v, want one interval with 15 sent", merged)
	}
	m.Lose(1, Lost{Agent: "b:1", At: 1500 * time.Millisecond, Share: 0.5, Reason: "stream broken"})
	if len(merged) != 2 || merged[1].Sent != 10 {
		t.Fatalf("a lost part must not hold back the rest: merged %+v", merged)
	}
	if _, err := m.Add(0, snap(0, 1)); err == nil {
		t.Error("a part's interval sent twice must be refused")
	}
	res := m.Result()
	if !res.Partial() || res.Lost[0].Agent != "b:1" || res.Lost[0].Share != 0.5 {
		t.Errorf("result must be partial, naming b:1 with share 0.5: %+v", res.Lost)
	}
	// The file plans 10/s for 5 s: 25 arrivals per part. Part 1 sent 5
	// of its 25: 20 are lost, and scheduled counts them.
	if l := res.Lost[0]; l.Unsent != 20 || l.Uncounted != "" {
		t.Errorf("lost part: unsent %d (%q), want its 20 planned arrivals never sent", l.Unsent, l.Uncounted)
	}
	tt := res.Totals
	if tt.Sent != 25 || tt.Lost != 20 || tt.Scheduled != 45 || tt.Scheduled != tt.Sent+tt.Dropped+tt.Lost {
		t.Errorf("totals %+v, want scheduled 45 = sent 25 + dropped 0 + lost 20", tt)
	}
}

// A coordinator that was itself stopped (SIGSTOP) notices a loss late: the
// loss time stays inside the run.
func TestMergerClampsLossTimeToTheRun(t *testing.T) {
	f := twoSeriesFile(t)
	segs, err := Segments("", 2)
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMerger(f, 2, WithPartSegments(segs))
	if err != nil {
		t.Fatal(err)
	}
	m.Start(time.Unix(0, 0))
	m.Lose(0, Lost{Agent: "a:1", At: time.Hour, Share: 0.5, Reason: "no snapshot"})
	m.Lose(1, Lost{Agent: "b:1", At: time.Hour, Share: 0.5, Reason: "no snapshot"})
	res := m.Result()
	for _, l := range res.Lost {
		if l.At > 5*time.Second || l.Unsent != 25 {
			t.Errorf("lost %s at %v with %d unsent, want within the 5 s run and its 25 arrivals", l.Agent, l.At, l.Unsent)
		}
	}
	if tt := res.Totals; tt.Scheduled != 50 || tt.Lost != 50 || tt.Sent != 0 {
		t.Errorf("totals %+v, want all 50 planned arrivals lost", tt)
	}
}
