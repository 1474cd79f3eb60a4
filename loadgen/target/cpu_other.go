//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package target

import "time"

// processCPU is unavailable on this platform.
func processCPU() (time.Duration, bool) { return 0, false }
