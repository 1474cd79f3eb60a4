package loadgen

import (
	"fmt"
	"io"
	"time"
)

// progress writes the live status of a run: on a terminal one line
// rewritten in place every second, elsewhere (CI logs) one plain line every
// few seconds.
type progress struct {
	w                     io.Writer
	live                  bool
	every                 int
	total                 time.Duration
	n                     int
	sent, failed, dropped int64
}

func newProgress(w io.Writer, live bool, every int, total time.Duration) *progress {
	return &progress{w: w, live: live, every: every, total: total}
}

func (p *progress) interval(iv Interval, vus int) {
	if p.w == nil {
		return
	}
	p.n++
	p.sent += iv.Sent
	p.failed += iv.Failed
	p.dropped += iv.Dropped
	if !p.live && p.n%p.every != 0 {
		return
	}
	secs := (iv.End - time.Duration(iv.T)*time.Second).Seconds()
	var rate float64
	if secs > 0 {
		rate = float64(iv.Completed+iv.Failed) / secs
	}
	line := fmt.Sprintf("%s/%s  rate %.0f/s  p99 %s  sent %d  failed %d  dropped %d  inflight %d  VUs %d",
		roundDur(iv.End), roundDur(p.total), rate, fmtMs(iv.Latency.P99), p.sent, p.failed, p.dropped, iv.Inflight, vus)
	if p.live {
		fmt.Fprintf(p.w, "\r\x1b[K%s", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
}

func (p *progress) finish(res *Result) {
	if p.w == nil {
		return
	}
	if p.live {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
	if res.Status == StatusAborted {
		fmt.Fprintf(p.w, "aborted: %s\n", res.AbortReason)
	}
}

func roundDur(d time.Duration) time.Duration { return d.Round(time.Second) }

// fmtMs prints a latency in ms with sensible precision.
func fmtMs(ms float64) string {
	switch {
	case ms == 0:
		return "-"
	case ms < 10:
		return fmt.Sprintf("%.2fms", ms)
	case ms < 100:
		return fmt.Sprintf("%.1fms", ms)
	}
	return fmt.Sprintf("%.0fms", ms)
}
