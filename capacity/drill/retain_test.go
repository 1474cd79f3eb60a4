package drill_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/loadcap/loadcap/capacity/drill"
	"github.com/loadcap/loadcap/loadgen"
)

// A drill that streams its seconds to the caller (OnInterval) and keeps
// only the last of them (KeepIntervals): the caller gets every second
// once, the result holds the last ones and counts the rest, and the stage
// is still measured, from the seconds the result no longer holds.
func TestDrillKeepsOnlyTheLastSeconds(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 4 s drill")
	}
	d := noDataPlan(t, crashingProm(t, 1<<40).URL, 4*time.Second, "")
	var mu sync.Mutex
	var seen []loadgen.Interval
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := drill.Run(ctx, drill.Config{Plan: d, KeepIntervals: 1, OnInterval: func(iv loadgen.Interval) {
		mu.Lock()
		seen = append(seen, iv)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	r := res.Run
	if len(seen) < 4 || r.Earlier+len(r.Intervals) != len(seen) || len(r.Intervals) > 2 || r.Earlier == 0 {
		t.Fatalf("the caller got %d seconds; the result holds %d after %d earlier: want at most 2 kept and every second counted",
			len(seen), len(r.Intervals), r.Earlier)
	}
	var sent int64
	for i, iv := range seen {
		if iv.T != i {
			t.Fatalf("second %d reached the caller in place %d", iv.T, i)
		}
		sent += iv.Sent
	}
	if sent != r.Totals.Sent {
		t.Errorf("the seconds sent %d requests, the totals say %d", sent, r.Totals.Sent)
	}
	if res.Stages == nil || len(res.Stages.Steps) != 1 || res.Stages.Steps[0].Achieved < 15 {
		t.Fatalf("stages %+v: want the one stage measured at about 20 req/s", res.Stages)
	}
}
