//go:build linux

package stall

import (
	"bytes"
	"os"
	"strconv"
)

// readProcStat reads the host's cumulative steal and total CPU time (in
// clock ticks) from /proc/stat.
func readProcStat() (steal, total uint64, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	return parseStat(b)
}

// parseStat reads the aggregate "cpu" line: user nice system idle iowait
// irq softirq steal [guest guest_nice]. Guest time is already counted in
// user and nice, so it is not added again.
func parseStat(b []byte) (steal, total uint64, ok bool) {
	line, _, _ := bytes.Cut(b, []byte{'\n'})
	f := bytes.Fields(line)
	if len(f) < 9 || string(f[0]) != "cpu" {
		return 0, 0, false
	}
	for i := 1; i <= 8; i++ {
		v, err := strconv.ParseUint(string(f[i]), 10, 64)
		if err != nil {
			return 0, 0, false
		}
		total += v
		if i == 8 {
			steal = v
		}
	}
	return steal, total, true
}
