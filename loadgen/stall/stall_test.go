package stall

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestStealShare(t *testing.T) {
	type stat struct {
		steal, total uint64
		ok           bool
	}
	seq := []stat{{100, 1000, true}, {150, 2000, true}, {150, 2000, true}, {0, 0, false}, {200, 3000, true}}
	i := 0
	c := stealCounter{read: func() (uint64, uint64, bool) { s := seq[i]; i++; return s.steal, s.total, s.ok }}
	got := []float64{c.take(), c.take(), c.take(), c.take(), c.take()}
	want := []float64{-1, 0.05, 0, -1, -1}
	for k := range want {
		if got[k] != want[k] {
			t.Errorf("takes %v, want %v", got, want)
			break
		}
	}
}

// A sleep that overran by 200 ms is a 200 ms stall; Take starts over.
// The test follows the watch by its sleeps, not by the clock: a test
// process the host froze would otherwise read before the watch stored the
// overrun, or see the freeze itself as a stall after the Take.
func TestWatchRecordsLateWakeups(t *testing.T) {
	overrun := make(chan time.Duration, 1)
	var calls atomic.Int64
	var late atomic.Int64 // the longest a sleep overslept its asked length, ns
	sleep := func(d time.Duration) {
		calls.Add(1)
		select {
		case o := <-overrun:
			d += o
		default:
		}
		t0 := time.Now()
		time.Sleep(d)
		if l := int64(time.Since(t0) - d); l > late.Load() {
			late.Store(l)
		}
	}
	// sleeps waits until the watch has begun n more sleeps: the one under
	// way when it is called has ended, and what it saw is stored.
	sleeps := func(n int64) {
		t.Helper()
		until := calls.Load() + n
		for deadline := time.Now().Add(10 * time.Second); calls.Load() < until; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the watch slept %d times in 10s", calls.Load())
			}
		}
	}
	w := newWatch(sleep, readProcStat)
	go w.loop(time.Millisecond)
	defer w.Stop()
	sleeps(5)
	w.Take()
	overrun <- 200 * time.Millisecond
	sleeps(2) // the next sleep takes the overrun; the one after begins once it is stored
	if r := w.Take(); r.Max < 200*time.Millisecond {
		t.Errorf("max stall %v after a 200 ms overrun", r.Max)
	}
	late.Store(0)
	sleeps(20)
	// Unless the host froze the sleeps themselves, nothing stalled since
	// the Take.
	if r, host := w.Take(), time.Duration(late.Load()); r.Max >= 30*time.Millisecond && r.Max > host+5*time.Millisecond {
		t.Errorf("max stall %v after a take and no overrun (the sleeps overslept at most %v)", r.Max, host)
	}
}
