//go:build linux || freebsd || netbsd || openbsd || dragonfly

// Package clock holds what loadcap needs to wait more precisely than Go's
// timers: on an idle process they wake through epoll_wait, whose timeout is
// whole milliseconds, so a sub-millisecond sleep lasts up to a millisecond
// too long.
package clock

import (
	"syscall"
	"time"
)

// Sleep blocks the calling OS thread for d with the kernel's timer
// precision (tens of microseconds). The goroutine keeps its P while it
// sleeps: call it only where that is harmless (a thread of its own, or
// with other Ps to run the rest).
func Sleep(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	_ = syscall.Nanosleep(&ts, nil) // EINTR only shortens one step of the caller's loop
}
