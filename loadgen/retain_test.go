package loadgen

import (
	"testing"
	"time"
)

// A recorder that retains the last seconds only (a soak streaming them to
// disk) holds a bounded number however long it runs, numbers them as the
// run's seconds, and still counts every request and every disturbed
// second in its result.
func TestRecorderRetainBoundsIntervals(t *testing.T) {
	for _, tc := range []struct {
		name       string
		keep, secs int
		wantHeld   int // len(Intervals) at the end
	}{
		{name: "all kept without a bound", keep: 0, secs: 23, wantHeld: 23},
		{name: "shorter than the bound", keep: 30, secs: 23, wantHeld: 23},
		{name: "a long run keeps the tail", keep: 5, secs: 23, wantHeld: 8},
		{name: "at twice the bound it lets go", keep: 5, secs: 10, wantHeld: 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRecorder([]Series{{"s", "a"}, {"s", "b"}}, time.Minute)
			r.Retain(tc.keep)
			t0 := time.Unix(1_700_000_000, 0)
			r.Start(t0)
			maxHeld := 0
			for s := range tc.secs {
				if s == 0 {
					r.noteHost(50*time.Millisecond, 0) // the first second stalled
				}
				end := t0.Add(time.Duration(s)*time.Second + 500*time.Millisecond)
				for v := range 3 {
					r.Sent(v%2, v, end)
					r.Record(v, &Outcome{Name: v % 2, Latency: time.Millisecond, Service: time.Millisecond, Status: 200, End: end})
				}
				r.Rotate(t0.Add(time.Duration(s+1) * time.Second))
				r.mu.Lock()
				maxHeld = max(maxHeld, len(r.intervals))
				r.mu.Unlock()
			}
			res := r.Result()
			if len(res.Intervals) != tc.wantHeld {
				t.Errorf("holds %d seconds, want %d", len(res.Intervals), tc.wantHeld)
			}
			if tc.keep > 0 && maxHeld > 2*tc.keep {
				t.Errorf("held up to %d seconds during the run, bound %d", maxHeld, 2*tc.keep)
			}
			if res.Earlier+len(res.Intervals) != tc.secs {
				t.Errorf("earlier %d + held %d != %d seconds", res.Earlier, len(res.Intervals), tc.secs)
			}
			for i, iv := range res.Intervals {
				if iv.T != res.Earlier+i {
					t.Fatalf("interval %d is second %d, want %d", i, iv.T, res.Earlier+i)
				}
			}
			if res.Totals.Completed != int64(3*tc.secs) {
				t.Errorf("completed %d, want %d", res.Totals.Completed, 3*tc.secs)
			}
			if got := res.Disturbed(); got != 1 {
				t.Errorf("disturbed seconds %d, want 1 (the first, let go or not)", got)
			}
		})
	}
}
