// Package quiet tells a test that checks timing whether the machine let it.
//
// loadcap measures latency from the intended send time, so a test process
// that is not run for 150 ms (a host starved of CPU: a shared CI runner, a
// busy hypervisor) sees 150 ms of latency that no code of ours caused, and
// a capacity search on that machine finds less than the target holds.
// Retry runs such a test's measurement again when the machine stalled it,
// reports the failures of an attempt the machine did not disturb, and
// skips, saying why, only when every attempt was disturbed.
package quiet

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loadcap/loadcap/loadgen/stall"
)

// Thresholds of a disturbed attempt: the test process kept from running
// longer than StallAfter at least once, or the host's hypervisor giving
// other guests more than StealAfter of a second's CPU time.
const (
	StallAfter = 20 * time.Millisecond
	StealAfter = 0.05
)

// A is one attempt: its Errorf collects the attempt's failures instead of
// failing the test at once.
type A struct {
	t    *testing.T
	errs []string
}

// Errorf records a failure of this attempt.
func (a *A) Errorf(format string, args ...any) {
	a.t.Helper()
	a.errs = append(a.errs, fmt.Sprintf(format, args...))
}

// Logf logs to the test.
func (a *A) Logf(format string, args ...any) {
	a.t.Helper()
	a.t.Logf(format, args...)
}

// Failed tells whether the attempt recorded a failure.
func (a *A) Failed() bool { return len(a.errs) > 0 }

// Retry runs body up to attempts times, until an attempt passes. When
// none does, the failures of the last attempt the machine did not disturb
// fail t; when every attempt was disturbed, t is skipped with the figures.
// Setup failures belong on t itself (t.Fatal).
func Retry(t *testing.T, attempts int, body func(a *A)) {
	t.Helper()
	var seen []string
	var quietErrs []string
	for i := 1; i <= attempts; i++ {
		a := &A{t: t}
		stop := startWatch()
		body(a)
		d := stop()
		if !a.Failed() {
			return
		}
		why := "on a quiet machine"
		if d != "" {
			why = "while " + d
			seen = append(seen, d)
		} else {
			quietErrs = a.errs
		}
		t.Logf("attempt %d of %d failed %s:\n\t%s", i, attempts, why, strings.Join(a.errs, "\n\t"))
	}
	if quietErrs == nil {
		t.Skipf("the machine disturbed all %d attempts (%s): nothing to judge", attempts, strings.Join(seen, "; "))
	}
	for _, e := range quietErrs {
		t.Error(e)
	}
}

// watcher samples a stall watch once a second.
type watcher struct {
	w     *stall.Watch
	stopc chan struct{}
	done  sync.WaitGroup
	mu    sync.Mutex
	stall time.Duration
	steal float64
}

// startWatch starts watching; the function it returns stops and describes
// the disturbance ("" for none). Tests of Retry replace it.
var startWatch = func() func() string { return watch().stop }

func watch() *watcher {
	x := &watcher{w: stall.Start(), stopc: make(chan struct{})}
	x.done.Add(1)
	go func() {
		defer x.done.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-x.stopc:
				x.sample()
				return
			case <-tick.C:
				x.sample()
			}
		}
	}()
	return x
}

func (x *watcher) sample() {
	r := x.w.Take()
	x.mu.Lock()
	x.stall, x.steal = max(x.stall, r.Max), max(x.steal, r.Steal)
	x.mu.Unlock()
}

// stop ends watching and describes the disturbance; "" when there was
// none.
func (x *watcher) stop() string {
	close(x.stopc)
	x.done.Wait()
	x.w.Stop()
	return disturbance(x.stall, x.steal)
}

func disturbance(stall time.Duration, steal float64) string {
	if stall <= StallAfter && steal <= StealAfter {
		return ""
	}
	return fmt.Sprintf("this process was kept from running for up to %v, the host's steal reached %.0f%% of a second",
		stall.Round(time.Millisecond), 100*steal)
}
