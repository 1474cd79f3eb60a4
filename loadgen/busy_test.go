package loadgen

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The in-flight integral each interval carries never runs backwards and
// stays within what the requests in flight could add, however sends,
// completions and the interval's rotation interleave: a request sent
// while an interval closes is counted in the sends and in their times
// alike. (It once was not, and a drill's stage showed a negative mean
// in flight.)
func TestBusyIntegralIsConsistent(t *testing.T) {
	r := NewRecorder([]Series{{"s", "a"}, {"s", "b"}}, time.Minute)
	r.Start(time.Now())
	var stop atomic.Bool
	var wg sync.WaitGroup
	const vus = 8
	for v := 0; v < vus; v++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				at := time.Now()
				r.Sent(v%2, v, at)
				time.Sleep(50 * time.Microsecond)
				end := time.Now()
				r.Record(v, &Outcome{Name: v % 2, Latency: end.Sub(at), Service: end.Sub(at), Status: 200, End: end})
			}
		}()
	}
	var prev, prevEnd, prevRot time.Duration
	for i := 0; i < 200; i++ {
		time.Sleep(2 * time.Millisecond)
		now := time.Now()
		iv := r.Rotate(now)
		rot := time.Since(now)
		// The requests that end while the interval closes are counted to
		// their end, past it by at most the rotation's time: slack for
		// that, far below the send times (since the start) a mismatch
		// moved it by.
		slack := time.Duration(vus)*(rot+prevRot) + time.Millisecond
		if iv.Busy < prev-slack {
			t.Fatalf("interval %d: the in-flight integral went from %v back to %v", i, prev, iv.Busy)
		}
		// At most vus requests in flight over the time since the last one.
		if grow := iv.Busy - prev; grow > time.Duration(vus)*(iv.End-prevEnd)+slack {
			t.Fatalf("interval %d: the integral grew %v in %v with %d VUs", i, grow, iv.End-prevEnd, vus)
		}
		prev, prevEnd, prevRot = iv.Busy, iv.End, rot
	}
	stop.Store(true)
	wg.Wait()
}
