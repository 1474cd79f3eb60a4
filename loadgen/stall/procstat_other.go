//go:build !linux

package stall

// readProcStat: this platform does not tell steal time.
func readProcStat() (steal, total uint64, ok bool) { return 0, 0, false }
