package loadgen

import (
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// NumClasses is the number of error classes (index 0 is success), the
// length of Interval.Classes and SeriesDelta.Classes.
const NumClasses = int(numClasses)

// Snapshot is one interval of one engine's run with everything a Merger
// needs to rebuild the run's Result exactly: what an agent streams to the
// coordinator. Counts and histograms are the interval's own (deltas);
// status codes and error samples are cumulative since the start.
type Snapshot struct {
	T         int           // interval number: [T, T+1) s since the engine's start
	End       time.Duration // when the interval closed, since the engine's start
	Scheduled int64         // arrivals scheduled (open) or iterations begun (closed)
	Dropped   int64
	Late      int64         // arrivals dispatched more than LateAfter behind schedule
	MaxLag    time.Duration // worst pacer lag since the start
	Inflight  int64         // requests in flight at End
	Busy      time.Duration // ∫ inflight dt from the start to End
	VUs       int           // VUs active at End
	PeakVUs   int           // most VUs active at once since the start
	Series    []SeriesDelta // by series, in SeriesOf order
	// Stall and Steal are the interval's, as in Interval.
	Stall time.Duration
	Steal float64
}

// SeriesDelta is one series (scenario and request name) in a Snapshot.
type SeriesDelta struct {
	Sent                   int64
	Completed, Failed      int64
	BytesSent, BytesRecv   int64
	ServiceSum, LatencySum time.Duration
	Classes                [numClasses]int64
	Latency, Service       *hdr.PackedHistogram // µs; nil when nothing finished
	StatusCodes            map[int]int64        // cumulative
	ErrorSamples           map[string]string    // cumulative: class name → one message
	// LatencyBuckets and ServiceBuckets are the histograms as bucket lists
	// instead, when Latency and Service are nil: what a coordinator decodes
	// from an agent, which a Merger adds without building a sparse
	// histogram (a hundred agents send 4,000 a second).
	LatencyBuckets, ServiceBuckets *Buckets
}

// Buckets is a latency histogram (µs) as its populated buckets, in
// ascending order of value, each value the lowest of its bucket (as
// hdr.PackedHistogram.ForEachBucket gives them), with their counts.
type Buckets struct {
	Values, Counts []int64
}

// addTo records b's counts in h; values h cannot hold are dropped, as a
// histogram merge drops them.
func (b *Buckets) addTo(h *hdr.Histogram) {
	for i, v := range b.Values {
		_ = h.RecordValues(v, b.Counts[i])
	}
}

// Final is how one engine's run ended, besides its snapshots.
type Final struct {
	Status      string
	AbortCause  string
	AbortReason string
	Totals      Totals
	Duration    time.Duration
	MaxVUs      int
}

// FinalOf returns what a Merger needs of an engine's Result.
func FinalOf(r *Result) Final {
	return Final{Status: r.Status, AbortCause: r.AbortCause, AbortReason: r.AbortReason,
		Totals: r.Totals, Duration: r.Duration, MaxVUs: r.MaxVUs}
}

// WithSnapshots calls fn with a Snapshot after every interval closes, the
// run's last included, on the engine's ticker goroutine; fn owns the
// Snapshot. fn should not block: the next interval waits for it.
func WithSnapshots(fn func(*Snapshot)) Option {
	return func(o *options) { o.snapshots = fn }
}

// WithSegment runs only seg's part of the file (see Segment); nil runs it
// all. With a replay the engine takes only seg's records from the source
// (SegmentReplay).
func WithSegment(seg *Segment) Option {
	return func(o *options) { o.seg = seg }
}

// Series returns the series the engine records, in Snapshot.Series order.
func (e *Engine) Series() []Series { return e.series }
