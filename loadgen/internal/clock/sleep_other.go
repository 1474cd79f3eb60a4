//go:build !(linux || freebsd || netbsd || openbsd || dragonfly)

// Package clock holds what loadcap needs to wait more precisely than Go's
// timers; on this platform it falls back to them.
package clock

import "time"

// Sleep blocks for d; on this platform with Go timer precision.
func Sleep(d time.Duration) { time.Sleep(d) }
