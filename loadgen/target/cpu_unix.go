//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package target

import (
	"syscall"
	"time"
)

// processCPU is the user plus system CPU time of this process.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime)), true
}
