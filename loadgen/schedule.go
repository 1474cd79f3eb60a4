package loadgen

import (
	"math"
	"time"

	"github.com/loadcap/loadcap/scenarios"
)

// schedule yields the intended send times of an open-model workload: the
// arrival rate is piecewise linear over the stages, and arrival i happens when
// the integral of the rate since the start reaches i (so arrival 0 is at the
// start and a constant rate r for d yields exactly r·d arrivals).
//
// It is a plain iterator, used by one pacer goroutine; it does not allocate.
type schedule struct {
	startRate float64 // per second, rate at the start of the current stage
	stages    []scenarios.RateStage

	stage      int           // current stage index
	stageStart time.Duration // offset of the current stage's start
	stageBase  float64       // arrivals (integral) before the current stage
	next       float64       // index of the next arrival
}

func newSchedule(startRatePerSec float64, stages []scenarios.RateStage) *schedule {
	return &schedule{startRate: startRatePerSec, stages: stages}
}

// Next returns the offset from the workload's start of the next arrival, or
// false when the stages are exhausted.
func (s *schedule) Next() (time.Duration, bool) {
	for s.stage < len(s.stages) {
		st := s.stages[s.stage]
		a, b := s.startRate, st.TargetPerSec
		d := st.Duration.Seconds()
		need := s.next - s.stageBase // arrivals into this stage
		// Arrivals this stage holds: the integral of a linear ramp.
		total := (a + b) / 2 * d
		if d > 0 && need < total-1e-9 {
			t := rampTime(a, b, d, need)
			if t < d {
				s.next++
				return s.stageStart + time.Duration(t*float64(time.Second)), true
			}
		}
		s.stageBase += total
		s.stageStart += st.Duration
		s.startRate = b
		s.stage++
	}
	return 0, false
}

// At returns the offset of arrival i (0-based), skipping the arrivals
// before it, or false when the stages hold fewer. i must not be below an
// index already returned.
func (s *schedule) At(i int64) (time.Duration, bool) {
	s.next = float64(i)
	return s.Next()
}

// rampTime solves a·t + (b−a)·t²/(2d) = n for t in seconds: the time at
// which a rate ramping linearly from a to b over d seconds has produced n
// arrivals. The form 2n / (a + √(a² + 2(b−a)n/d)) is stable for a = 0 and
// for a = b.
func rampTime(a, b, d, n float64) float64 {
	if n <= 0 {
		return 0
	}
	disc := a*a + 2*(b-a)*n/d
	if disc < 0 {
		return math.Inf(1)
	}
	den := a + math.Sqrt(disc)
	if den <= 0 {
		return math.Inf(1)
	}
	return 2 * n / den
}

// PlannedArrivals counts the open-model arrivals of f that seg owns (all
// of them for a nil seg) whose intended time, since the run's start, is
// before until: what an engine running seg schedules by then. Closed-model
// scenarios plan no arrivals, and a replayed recording's length decides
// its own: they are left out, and uncounted says so ("" when nothing is
// left out).
func PlannedArrivals(f *scenarios.File, seg *Segment, until time.Duration) (n int64, uncounted string) {
	if f.Replay != nil {
		return 0, "a replay's records are not counted in advance"
	}
	for i := range f.Scenarios {
		w := &f.Scenarios[i].Workload
		if w.Model != scenarios.Open {
			uncounted = "closed-model iterations are not planned in advance"
			continue
		}
		sched := newSchedule(w.StartRatePerSec, w.RateStages)
		var owned *stripe
		if seg != nil {
			owned = &stripe{s: seg}
		}
		for {
			off, ok := nextArrival(sched, owned)
			if !ok || w.StartTime+off >= until {
				break
			}
			n++
		}
	}
	return n, uncounted
}
