package loadgen

import (
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/loadcap/loadcap/scenarios/slo"
)

// Window is a span of a run's per-second intervals merged into one: their
// counts summed and the latency of every request name in one histogram. It
// is what an SLO is judged over (capacity find's steps, the drill guard's
// evaluations, compare's noise windows); build it with a WindowMerger or
// MergeWindow rather than by summing intervals by hand.
type Window struct {
	Intervals                int           // how many intervals were merged
	Elapsed                  time.Duration // the span they cover: Σ of their lengths
	Scheduled, Sent, Dropped int64
	Completed, Failed        int64
	BytesSent, BytesRecv     int64
	ServiceSum, LatencySum   time.Duration
	// Stall is the longest stall of the generator in the span, Steal the
	// highest host steal (-1: unknown); see HostStalled.
	Stall time.Duration
	Steal float64
	// Hist is the latency (µs) of every request finished in the span; nil
	// when none did.
	Hist *hdr.Histogram
}

var _ slo.Window = (*Window)(nil)

// Finished is the number of requests that completed or failed.
func (w *Window) Finished() int64 { return w.Completed + w.Failed }

// Failures is the number of failed requests.
func (w *Window) Failures() int64 { return w.Failed }

// Span is the time the window covers.
func (w *Window) Span() time.Duration { return w.Elapsed }

// Latency is the window's latency histogram (µs), nil when empty.
func (w *Window) Latency() *hdr.Histogram { return w.Hist }

// NewHistogram returns an empty latency histogram (µs) reaching top, with
// the lowest value and precision every loadcap histogram has, so that
// histograms from any run, agent or file merge exactly.
func NewHistogram(top time.Duration) *hdr.Histogram {
	t := max(top, DefaultHistTop).Microseconds()
	return hdr.New(histLowest, t, histDigits)
}

// A WindowMerger merges intervals into windows. It reuses one histogram, so a
// window costs a reset and a pass over the populated buckets and no
// allocation; the window's Hist is the WindowMerger's, valid until its next
// Merge. The zero value is ready to use; not safe for concurrent use.
type WindowMerger struct{ dense *hdr.Histogram }

// Merge sums ivs into a window. Their histograms are only read.
func (m *WindowMerger) Merge(ivs []Interval) Window {
	w := Window{Intervals: len(ivs), Steal: -1}
	if m.dense != nil {
		m.dense.Reset()
	}
	if n := len(ivs); n > 0 {
		w.Elapsed = ivs[n-1].End - time.Duration(ivs[0].T)*time.Second
		if w.Elapsed <= 0 {
			w.Elapsed = time.Duration(n) * time.Second
		}
	}
	for _, iv := range ivs {
		w.Scheduled += iv.Scheduled
		w.Sent += iv.Sent
		w.Dropped += iv.Dropped
		w.Completed += iv.Completed
		w.Failed += iv.Failed
		w.BytesSent += iv.BytesSent
		w.BytesRecv += iv.BytesRecv
		w.ServiceSum += iv.ServiceSum
		w.LatencySum += iv.LatencySum
		w.Stall = max(w.Stall, iv.Stall)
		w.Steal = max(w.Steal, iv.Steal)
		for _, h := range iv.Hists {
			if h == nil || h.TotalCount() == 0 {
				continue
			}
			if m.dense == nil || m.dense.HighestTrackableValue() < h.HighestTrackableValue() {
				// The first window, or a run whose histograms reach
				// higher (a raised top for long timeouts).
				prev := m.dense
				m.dense = hdr.New(h.LowestTrackableValue(), h.HighestTrackableValue(), int(h.SignificantFigures()))
				if prev != nil {
					m.dense.Merge(prev)
				}
			}
			h.MergeInto(m.dense)
			w.Hist = m.dense
		}
	}
	return w
}

// MergeWindow sums ivs into a window with a histogram of its own.
func MergeWindow(ivs []Interval) Window {
	var m WindowMerger
	return m.Merge(ivs)
}
