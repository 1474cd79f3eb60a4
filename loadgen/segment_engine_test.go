package loadgen_test

import (
	"context"
	"math"
	"sync"
	"testing"

	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/loadgen/target"
	"github.com/loadcap/loadcap/loadgen/target/targettest"
	"github.com/loadcap/loadcap/scenarios"
)

// runSegments runs f as n engines with the segments of an even sequence,
// at once, merging their snapshots as a coordinator does.
func runSegments(t *testing.T, f *scenarios.File, n int) (merged *loadgen.Result, parts []*loadgen.Result) {
	t.Helper()
	segs, err := loadgen.Segments("", n)
	if err != nil {
		t.Fatal(err)
	}
	m, err := loadgen.NewMerger(f, n)
	if err != nil {
		t.Fatal(err)
	}
	engines := make([]*loadgen.Engine, n)
	for i, seg := range segs {
		i := i
		engines[i], err = loadgen.New(f, loadgen.WithSegment(seg), loadgen.WithSnapshots(func(s *loadgen.Snapshot) {
			if _, err := m.Add(i, s); err != nil {
				t.Error(err)
			}
		}))
		if err != nil {
			t.Fatal(err)
		}
	}
	parts = make([]*loadgen.Result, n)
	var wg sync.WaitGroup
	for i, e := range engines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := e.Run(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			parts[i] = res
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for i, p := range parts {
		if i == 0 {
			m.Start(p.Started)
		}
		if err := m.Finish(i, loadgen.FinalOf(p)); err != nil {
			t.Error(err)
		}
	}
	return m.Result(), parts
}

func TestSegmentedEnginesAddUpToTheScenario(t *testing.T) {
	srv := targettest.Start(t, target.Config{})
	f := parse(t, `
target: %s
scenarios:
  ramp:
    executor: ramping-arrival-rate
    startRate: 100
    timeUnit: 1s
    preAllocatedVUs: 6
    maxVUs: 60
    stages:
      - target: 300
        duration: 1s
      - target: 300
        duration: 1s
requests:
  - name: a
    path: /a
    weight: 2
  - name: b
    path: /b
`, srv.URL())
	// The single-process schedule: 200 arrivals in the ramp, 300 after.
	const want = 500
	merged, parts := runSegments(t, f, 3)
	checkInvariants(t, merged)
	var scheduled, peak int64
	for _, p := range parts {
		scheduled += p.Totals.Scheduled
		peak = max(peak, p.Totals.Scheduled)
	}
	if scheduled != want || merged.Totals.Scheduled != want {
		t.Errorf("3 segments scheduled %d (merged %d), the single schedule holds %d", scheduled, merged.Totals.Scheduled, want)
	}
	if peak > want/3+1 {
		t.Errorf("one segment scheduled %d of %d: the split is uneven", peak, want)
	}
	if merged.Totals.Completed+merged.Totals.Failed != merged.Latency.TotalCount() {
		t.Errorf("merged histogram holds %d, completed+failed %d", merged.Latency.TotalCount(), merged.Totals.Completed+merged.Totals.Failed)
	}
	var sent int64
	disturbed := 0
	for _, p := range parts {
		sent += p.Totals.Sent
		disturbed = max(disturbed, p.Disturbed())
	}
	// The target sees what was sent; all of the schedule unless the host
	// kept an engine from running and it dropped arrivals at the end.
	got := srv.Stats().Arrived
	if math.Abs(float64(got-merged.Totals.Sent)) > want/100 {
		t.Errorf("target counted %d arrivals, the engines sent %d", got, merged.Totals.Sent)
	}
	if math.Abs(float64(got-want)) > want/100 {
		if disturbed > 0 {
			t.Logf("target counted %d arrivals of %d; the host stalled the engines in %d seconds", got, want, disturbed)
		} else {
			t.Errorf("target counted %d arrivals, want %d ±1%%", got, want)
		}
	}
	if merged.Totals.Sent != sent || len(merged.Requests) != 2 {
		t.Errorf("merged sent %d with %d request names; the parts sent %d", merged.Totals.Sent, len(merged.Requests), sent)
	}
}

func TestSegmentedClosedModelScalesVUs(t *testing.T) {
	srv := targettest.Start(t, target.Config{})
	f := parse(t, `
target: %s
scenarios:
  loop:
    executor: constant-vus
    vus: 5
    duration: 1s
requests:
  - name: a
    path: /
`, srv.URL())
	merged, parts := runSegments(t, f, 3)
	checkInvariants(t, merged)
	total := 0
	for _, p := range parts {
		if p.MaxVUs < 1 || p.MaxVUs > 2 {
			t.Errorf("a segment ran %d VUs; 5 VUs over 3 segments are 2, 2 and 1", p.MaxVUs)
		}
		total += p.MaxVUs
	}
	if total != 5 || merged.MaxVUs != 5 {
		t.Errorf("segments ran %d VUs (merged %d), the scenario plans 5", total, merged.MaxVUs)
	}
}
