package loadgen

import (
	"math"
	"testing"
	"time"

	"github.com/loadcap/loadcap/scenarios"
)

func TestScheduleArrivals(t *testing.T) {
	tests := []struct {
		name      string
		start     float64
		stages    []scenarios.RateStage
		wantCount int64
	}{
		{"constant 100/s for 2s", 100, []scenarios.RateStage{{TargetPerSec: 100, Duration: 2 * time.Second}}, 200},
		{"ramp 0 to 100/s over 10s holds the area", 0, []scenarios.RateStage{{TargetPerSec: 100, Duration: 10 * time.Second}}, 500},
		{"ramp up, hold, down", 10, []scenarios.RateStage{
			{TargetPerSec: 50, Duration: 4 * time.Second},
			{TargetPerSec: 50, Duration: 2 * time.Second},
			{TargetPerSec: 0, Duration: 2 * time.Second}}, 120 + 100 + 50},
		{"zero rate stage sends nothing", 0, []scenarios.RateStage{{TargetPerSec: 0, Duration: 5 * time.Second}}, 0},
		{"fractional rate", 0.5, []scenarios.RateStage{{TargetPerSec: 0.5, Duration: 10 * time.Second}}, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSchedule(tc.start, tc.stages)
			var n int64
			var last time.Duration = -1
			var total time.Duration
			for _, st := range tc.stages {
				total += st.Duration
			}
			for {
				off, ok := s.Next()
				if !ok {
					break
				}
				if off < last {
					t.Fatalf("arrival %d at %v before the previous one at %v", n, off, last)
				}
				if off >= total {
					t.Fatalf("arrival %d at %v after the end %v", n, off, total)
				}
				last = off
				n++
			}
			if n != tc.wantCount {
				t.Errorf("arrivals = %d, want %d", n, tc.wantCount)
			}
		})
	}
}

func TestScheduleFollowsTheRamp(t *testing.T) {
	// 0 → 1000/s over 10 s: arrivals in second k ≈ 100·(k + 0.5).
	s := newSchedule(0, []scenarios.RateStage{{TargetPerSec: 1000, Duration: 10 * time.Second}})
	perSec := make([]int, 10)
	for {
		off, ok := s.Next()
		if !ok {
			break
		}
		perSec[int(off/time.Second)]++
	}
	for k, n := range perSec {
		want := 100 * (float64(k) + 0.5)
		if math.Abs(float64(n)-want) > 1.5 {
			t.Errorf("second %d: %d arrivals, want %.0f", k, n, want)
		}
	}
}

func TestVUTarget(t *testing.T) {
	w := &scenarios.Workload{StartVUs: 0, VUStages: []scenarios.VUStage{
		{Target: 10, Duration: 10 * time.Second},
		{Target: 10, Duration: 5 * time.Second},
		{Target: 0, Duration: 10 * time.Second},
	}}
	tests := []struct {
		at   time.Duration
		want int
	}{
		{0, 0}, {999 * time.Millisecond, 0}, {time.Second, 1}, {5500 * time.Millisecond, 5},
		{12 * time.Second, 10}, {16 * time.Second, 9}, {20 * time.Second, 5}, {30 * time.Second, 0},
	}
	for _, tc := range tests {
		if got := vuTarget(w, tc.at); got != tc.want {
			t.Errorf("vuTarget(%v) = %d, want %d", tc.at, got, tc.want)
		}
	}
}

func TestRecorderFlagsPacerLag(t *testing.T) {
	r := NewRecorder([]Series{{"s", "a"}}, time.Minute)
	for _, d := range []time.Duration{time.Millisecond, 9 * time.Millisecond, 12 * time.Millisecond, 40 * time.Millisecond} {
		r.Lag(d)
	}
	tt, _ := r.totalsLocked()
	if tt.Late != 2 || tt.MaxLag != 40*time.Millisecond {
		t.Errorf("late %d max lag %v; want 2 arrivals over %v, worst 40ms", tt.Late, tt.MaxLag, LateAfter)
	}
}

func TestRecorderInFlightIntegral(t *testing.T) {
	start := time.Unix(1000, 0)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	r := NewRecorder([]Series{{"s", "a"}}, time.Minute)
	r.Start(start)
	// A: 200..700 ms. B: sent at 500 ms, still in flight at 1 s and done at 1500 ms.
	r.Sent(0, 0, at(200))
	r.Sent(0, 1, at(500))
	r.Record(0, &Outcome{Service: 500 * time.Millisecond, Latency: 500 * time.Millisecond, End: at(700), Status: 200})
	iv := r.Rotate(at(1000))
	// ∫ inflight over [0, 1 s] = A's 0.5 s + B's 0.5 s so far.
	if iv.Busy != time.Second || iv.Inflight != 1 {
		t.Errorf("first second: busy %v inflight %d, want 1s and 1", iv.Busy, iv.Inflight)
	}
	r.Record(0, &Outcome{Service: time.Second, Latency: time.Second, End: at(1500), Status: 200})
	iv = r.Rotate(at(2000))
	if iv.Busy != 1500*time.Millisecond || iv.Inflight != 0 {
		t.Errorf("two seconds: busy %v inflight %d, want 1.5s and 0", iv.Busy, iv.Inflight)
	}
}
