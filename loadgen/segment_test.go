package loadgen

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loadcap/loadcap/scenarios"
)

func TestSegmentsPartitionTheSchedule(t *testing.T) {
	stages := []scenarios.RateStage{
		{TargetPerSec: 90, Duration: 3 * time.Second},
		{TargetPerSec: 90, Duration: 2 * time.Second},
		{TargetPerSec: 7, Duration: 1500 * time.Millisecond},
	}
	var full []time.Duration
	for s := newSchedule(3, stages); ; {
		off, ok := s.Next()
		if !ok {
			break
		}
		full = append(full, off)
	}
	tests := []struct {
		name     string
		sequence string
		n        int
	}{
		{"one", "", 1},
		{"two", "", 2},
		{"three", "", 3},
		{"seven", "", 7},
		{"uneven", "0,1/2,3/4,1", 3},
		{"decimal", "0,0.1,0.35,1", 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			segs, err := Segments(tc.sequence, tc.n)
			if err != nil {
				t.Fatal(err)
			}
			seen := make([]int, len(full))
			for _, seg := range segs {
				sched := newSchedule(3, stages)
				owned := &stripe{s: seg}
				n := 0
				for {
					i := owned.next()
					off, ok := sched.At(i)
					if !ok {
						break
					}
					if off != full[i] {
						t.Fatalf("segment %s: arrival %d at %v, the single schedule has it at %v", seg, i, off, full[i])
					}
					if !seg.Owns(i) {
						t.Fatalf("segment %s iterates arrival %d, which Owns denies", seg, i)
					}
					seen[i]++
					n++
				}
				// Its share of the arrivals, within one per stripe cycle.
				if want := seg.Share() * float64(len(full)); float64(n) < want-float64(seg.lcd) || float64(n) > want+float64(seg.lcd) {
					t.Errorf("segment %s sends %d of %d arrivals, want ≈%.0f", seg, n, len(full), want)
				}
			}
			for i, c := range seen {
				if c != 1 {
					t.Fatalf("arrival %d sent %d times over %d segments, want once", i, c, tc.n)
				}
			}
		})
	}
}

func TestSegmentScaleAddsUp(t *testing.T) {
	for _, n := range []int{2, 3, 5, 8} {
		segs, err := Segments("", n)
		if err != nil {
			t.Fatal(err)
		}
		for v := int64(0); v <= 40; v++ {
			var sum int64
			for _, s := range segs {
				sum += s.Scale(v)
			}
			if sum != v {
				t.Errorf("%d segments: parts of %d add up to %d", n, v, sum)
			}
		}
		for _, s := range segs {
			if got := s.scaleVUs(1); got != 1 {
				t.Errorf("%d segments: segment %s runs %d VUs of 1, want at least 1", n, s, got)
			}
		}
	}
	var whole *Segment
	if whole.Scale(7) != 7 || whole.String() != "0:1" || !whole.Owns(5) {
		t.Error("a nil segment must be the whole run")
	}
}

func TestSegmentsRefuseBadSequences(t *testing.T) {
	tests := []struct {
		name, seq string
		n         int
		want      string
	}{
		{"count", "0,1/2,1", 3, "has 2 segments for 3 agents"},
		{"not full", "0,1/2,3/4", 2, "must start at 0 and end at 1"},
		{"gap", "0,1/2,1/3,1", 3, "segment start"},
		{"huge denominator", "0,1/999983,2/999979,1", 3, "common denominator"},
		{"none", "", 0, "at least 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Segments(tc.seq, tc.n)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Segments(%q, %d) = %v, want an error with %q", tc.seq, tc.n, err, tc.want)
			}
		})
	}
}

// countingSource hands out items 0..n-1 (cycling when cycle is set); Skip
// is offered only when skip is set.
type countingSource struct {
	mu    sync.Mutex
	n     int64
	pos   int64
	cycle bool
}

func (s *countingSource) Next() (*ReplayItem, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.cycle && s.pos >= s.n {
		return nil, false
	}
	it := &ReplayItem{Request: int(s.pos % s.n)}
	s.pos++
	return it, true
}

func (s *countingSource) Release(*ReplayItem) {}

type skippingSource struct{ countingSource }

func (s *skippingSource) Skip(n int64) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.cycle {
		n = min(n, s.n-s.pos)
	}
	s.pos += n
	return n
}

func TestSegmentReplayPartitionsTheRecording(t *testing.T) {
	for _, skip := range []bool{false, true} {
		t.Run(fmt.Sprintf("skip=%v", skip), func(t *testing.T) {
			segs, err := Segments("", 3)
			if err != nil {
				t.Fatal(err)
			}
			const n = 100
			seen := make([]int, n)
			for _, seg := range segs {
				var src ReplaySource = &countingSource{n: n}
				if skip {
					src = &skippingSource{countingSource{n: n}}
				}
				r := SegmentReplay(src, seg)
				for {
					it, ok := r.Next()
					if !ok {
						break
					}
					if !seg.Owns(int64(it.Request)) {
						t.Fatalf("segment %s got record %d it does not own", seg, it.Request)
					}
					seen[it.Request]++
				}
			}
			for i, c := range seen {
				if c != 1 {
					t.Fatalf("record %d replayed %d times over 3 segments, want once", i, c)
				}
			}
		})
	}
}
