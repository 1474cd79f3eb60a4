//go:build linux || freebsd || netbsd || openbsd || dragonfly

package target

import (
	"syscall"
	"time"
)

// fineSleep blocks the calling thread for d with OS timer precision.
func fineSleep(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	_ = syscall.Nanosleep(&ts, nil) // EINTR only shortens one step of the loop
}
