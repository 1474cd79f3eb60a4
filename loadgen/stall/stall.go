// Package stall watches whether the generator itself was kept from
// running. Latency is measured from the intended send time, so a generator
// that does not run for 100 ms adds up to 100 ms to every request it was
// timing: the figures then describe the generator's host, not the target.
//
// A Watch keeps a goroutine that wakes every period and records how late it
// woke (the process was not run: the host gave its CPUs to others, or the
// process's own goroutines left none), and, on Linux, the host's steal time
// (CPU time a hypervisor gave to other guests).
//
// The goroutine sleeps on Go's timers rather than on a locked thread of its
// own in nanosleep: in 8 interleaved pairs of test/bench/grpc_vs_ghz.sh
// runs (generator on one core) the timer gave more requests per generator
// CPU-second in 7, by about 6% (median paired difference). Go's timers wake
// up to a millisecond late on an idle process, far below the 10 ms from
// which a stall is reported.
package stall

import (
	"sync/atomic"
	"time"
)

// Period is how often a Watch wakes.
const Period = 10 * time.Millisecond

// Reading is what a Watch saw between two Takes.
type Reading struct {
	// Max is the longest the watching goroutine woke late: how long the
	// process was kept from running at least once.
	Max time.Duration
	// Steal is the share of all CPUs' time the hypervisor gave to others
	// (0..1); -1 when the platform does not tell.
	Steal float64
}

// Watch is a running stall watcher.
type Watch struct {
	max   atomic.Int64 // ns, since the last Take
	stop  chan struct{}
	done  chan struct{}
	steal stealCounter
	sleep func(time.Duration) // time.Sleep; replaced in tests
}

// Start starts watching.
func Start() *Watch {
	w := newWatch(time.Sleep, readProcStat)
	go w.loop(Period)
	return w
}

func newWatch(sleep func(time.Duration), stat func() (steal, total uint64, ok bool)) *Watch {
	w := &Watch{stop: make(chan struct{}), done: make(chan struct{}), sleep: sleep, steal: stealCounter{read: stat}}
	w.steal.take() // the baseline
	return w
}

func (w *Watch) loop(period time.Duration) {
	defer close(w.done)
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		t0 := time.Now()
		w.sleep(period)
		if late := int64(time.Since(t0) - period); late > w.max.Load() {
			w.max.Store(late)
		}
	}
}

// Take returns what was seen since the last Take (or Start) and starts
// over.
func (w *Watch) Take() Reading {
	return Reading{Max: time.Duration(w.max.Swap(0)), Steal: w.steal.take()}
}

// Stop ends the watching thread.
func (w *Watch) Stop() {
	close(w.stop)
	<-w.done
}

// stealCounter turns the host's cumulative steal and total CPU time into
// the share stolen since the previous take.
type stealCounter struct {
	read         func() (steal, total uint64, ok bool)
	steal, total uint64
	ok           bool
}

func (c *stealCounter) take() float64 {
	s, t, ok := c.read()
	prev := *c
	c.steal, c.total, c.ok = s, t, ok
	switch {
	case !ok || !prev.ok:
		return -1
	case t <= prev.total || s < prev.steal:
		return 0
	}
	return float64(s-prev.steal) / float64(t-prev.total)
}
