package loadgen

import (
	"runtime"
	"time"

	"github.com/loadcap/loadcap/loadgen/internal/clock"
)

// Go's timers wake an idle process through epoll_wait, whose timeout is
// whole milliseconds: an arrival due in 0.3 ms is dispatched up to 1 ms
// late, and since latency runs from the intended time, that lateness would
// be charged to the target (a 0.2 ms service would show a 0.7 ms median).
// The pacer therefore runs on an OS thread of its own, waits with a Go timer
// until shortly before an arrival, and covers the rest with nanosleep, which
// the kernel honours to within microseconds. Its P sits in the syscall
// meanwhile, so the engine keeps at least one more P for the VUs.
const (
	coarseAbove = 2 * time.Millisecond    // use a Go timer while the arrival is further than this
	coarseEarly = 1500 * time.Microsecond // and aim it this far ahead, to absorb its rounding
	spinBelow   = 20 * time.Microsecond   // closer than this, a nanosleep costs more than it saves
)

// preciseThread locks the calling goroutine to its thread and tightens the
// thread's timer slack; the returned func undoes the lock.
func preciseThread() func() {
	runtime.LockOSThread()
	clock.TightenThread()
	return runtime.UnlockOSThread
}

// waitUntil blocks until t, or returns false when stop closes first. tm is
// a stopped timer the caller owns.
func waitUntil(t time.Time, tm *time.Timer, stop <-chan struct{}) bool {
	for {
		d := time.Until(t)
		switch {
		case d <= 0:
			return true
		case d > coarseAbove:
			tm.Reset(d - coarseEarly)
			select {
			case <-tm.C:
			case <-stop:
				tm.Stop()
				return false
			}
		case d > spinBelow:
			select {
			case <-stop:
				return false
			default:
			}
			clock.Sleep(d - spinBelow/2)
		default:
			for time.Now().Before(t) {
			}
			return true
		}
	}
}

// pacerProcs raises GOMAXPROCS so that every open-model pacer, parked in
// nanosleep on its own P, leaves at least one P to the VUs; it returns the
// previous value.
func pacerProcs(pacers int) int {
	prev := runtime.GOMAXPROCS(0)
	if want := pacers + 1; pacers > 0 && prev < want {
		runtime.GOMAXPROCS(want)
	}
	return prev
}
