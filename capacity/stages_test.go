package capacity

import (
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/scenarios"
)

// stageRun is a drill's run of n seconds as its seconds: a rate that
// follows the stages, latencies that grow with it, a few drops, and the
// in-flight integral.
func stageRun(d *scenarios.Drill, n int, seed uint64) []loadgen.Interval {
	rng := rand.New(rand.NewPCG(seed, 1))
	var out []loadgen.Interval
	var busy time.Duration
	for s := range n {
		rate := 10.0
		var at time.Duration
		for _, st := range d.Stages {
			if time.Duration(s)*time.Second >= at {
				rate = st.Rate
			}
			at += st.Ramp + st.Hold
		}
		done := int64(rate) - int64(rng.IntN(3))
		lat := time.Duration(2+rng.IntN(int(rate/10)+1)) * time.Millisecond
		h := hdr.NewPacked(1, 60_000_000, 3)
		for range done {
			_ = h.RecordValue(lat.Microseconds() + int64(rng.IntN(500)))
		}
		iv := loadgen.Interval{T: s, End: time.Duration(s+1) * time.Second, Scheduled: done + 1, Sent: done, Completed: done,
			Dropped: 1, ServiceSum: time.Duration(done) * lat, LatencySum: time.Duration(done) * lat, Steal: -1,
			Hists: map[string]*hdr.PackedHistogram{"GET /": h}}
		busy += iv.ServiceSum
		iv.Busy = busy
		out = append(out, iv)
	}
	return out
}

// The tracker measures each stage as it ends and keeps only the seconds a
// stage still to be measured needs, and its steps are those measured from
// the whole run at its end: for a run to its last stage's end and for one
// cut short mid-stage.
func TestStageTrackerMeasuresStagesAsTheyEnd(t *testing.T) {
	d := &scenarios.Drill{Stages: []scenarios.DrillStage{
		{Name: "warm", Rate: 50, Hold: 20 * time.Second},
		{Name: "peak", Rate: 200, Ramp: 5 * time.Second, Hold: 30 * time.Second},
		{Name: "short", Rate: 300, Hold: 500 * time.Millisecond}, // too short to measure
		{Name: "over", Rate: 400, Ramp: 2 * time.Second, Hold: 40 * time.Second},
	}}
	for _, tc := range []struct {
		name string
		secs int
	}{{"to the end", 98}, {"cut mid-stage", 70}, {"cut at a stage's end", 56}} {
		t.Run(tc.name, func(t *testing.T) {
			ivs := stageRun(d, tc.secs, 7)
			whole := &loadgen.Result{Intervals: ivs, Duration: time.Duration(tc.secs) * time.Second}
			want := NewStageTracker(d, nil, nil, 0).Finish(whole)

			tr := NewStageTracker(d, nil, nil, 0)
			most := 0
			for _, iv := range ivs {
				tr.Interval(iv)
				most = max(most, len(tr.held))
			}
			// The result keeps only its last second, as a long drill's does.
			got := tr.Finish(&loadgen.Result{Intervals: ivs[len(ivs)-1:], Duration: whole.Duration})
			if !reflect.DeepEqual(got.Steps, want.Steps) {
				t.Errorf("steps measured as the stages ended:\n%+v\nwant, from the whole run:\n%+v", got.Steps, want.Steps)
			}
			if len(want.Steps) == 0 {
				t.Fatal("nothing measured")
			}
			// The longest stage is 42 s: the tracker never held more than
			// it and a second on either side.
			if most > 44 {
				t.Errorf("the tracker held up to %d seconds of a %d-second run", most, tc.secs)
			}
		})
	}
}
