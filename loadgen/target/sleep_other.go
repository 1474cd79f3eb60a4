//go:build !(linux || freebsd || netbsd || openbsd || dragonfly)

package target

import "time"

// fineSleep blocks for d; on this platform with Go timer precision.
func fineSleep(d time.Duration) { time.Sleep(d) }
