package k6

import (
	"fmt"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// The child streams frames to the parent over an inherited pipe, one JSON
// object per line: a hello when k6 starts its outputs, an interval every
// second of the test, a final one when k6 stops them. A child that dies
// hard sends no final frame; what it sent until then stays valid.
type frame struct {
	Hello    *helloFrame    `json:"hello,omitempty"`
	Interval *intervalFrame `json:"interval,omitempty"`
	Final    *finalFrame    `json:"final,omitempty"`
}

// helloFrame describes the test k6 is about to run.
type helloFrame struct {
	Scenarios []string      `json:"scenarios"` // names, sorted
	Planned   time.Duration `json:"planned"`   // end of k6's execution plan (graceful stops included)
}

// seriesName is one request name of one scenario: a series of the result.
type seriesName struct {
	Scenario string `json:"scenario"`
	Name     string `json:"name"`
}

// intervalFrame is one second [T, T+1) of the test since its start.
// Counts are the interval's own; series are declared once, in NewSeries, and
// numbered by the order of declaration over the whole stream.
type intervalFrame struct {
	T         int           `json:"t"`
	Start     int64         `json:"start,omitempty"` // unix ns of the test's start; in interval 0
	End       time.Duration `json:"end"`             // when the interval closed, since the start
	NewSeries []seriesName  `json:"new_series,omitempty"`
	Series    []seriesDelta `json:"series,omitempty"` // only the series with requests done in it
	Dropped   int64         `json:"dropped,omitempty"`
	VUs       int           `json:"vus"`
	PeakVUs   int           `json:"peak_vus"`
	Iters     []iterDelta   `json:"iterations,omitempty"`
	Checks    []checkDelta  `json:"checks,omitempty"`
}

// seriesDelta is what one series did in one interval.
type seriesDelta struct {
	I         int               `json:"i"` // series number
	Completed int64             `json:"completed,omitempty"`
	Failed    int64             `json:"failed,omitempty"`
	Sum       time.Duration     `json:"sum,omitempty"` // Σ durations
	Hist      *wireHist         `json:"hist,omitempty"`
	Status    map[int]int64     `json:"status,omitempty"`  // by status code
	Classes   map[string]int64  `json:"classes,omitempty"` // failures by loadgen class name
	Samples   map[string]string `json:"samples,omitempty"` // class name → first message (sent once)
	BytesSent int64             `json:"bytes_sent,omitempty"`
	BytesRecv int64             `json:"bytes_recv,omitempty"`
}

// iterDelta is one scenario's finished iterations in one interval.
type iterDelta struct {
	Scenario string    `json:"scenario"`
	Count    int64     `json:"count"`
	Hist     *wireHist `json:"hist,omitempty"`
}

// checkDelta is one check's results in one interval.
type checkDelta struct {
	Group string `json:"group,omitempty"`
	Name  string `json:"name"`
	Pass  int64  `json:"pass,omitempty"`
	Fail  int64  `json:"fail,omitempty"`
}

// finalFrame is how k6 ended the test, as its outputs learn it.
type finalFrame struct {
	End         time.Duration     `json:"end"`                    // since the start
	Error       string            `json:"error,omitempty"`        // the test run error, "" when it ended cleanly
	AbortReason string            `json:"abort_reason,omitempty"` // one of the abort* constants
	ExitCode    int               `json:"exit_code,omitempty"`    // attached to Error
	Thresholds  []thresholdResult `json:"thresholds,omitempty"`
}

// thresholdResult is k6's own verdict on one threshold expression.
type thresholdResult struct {
	Metric string   `json:"metric"` // as written in the script, with its tags
	Expr   string   `json:"expr"`
	Failed bool     `json:"failed"`
	Value  *float64 `json:"value,omitempty"` // nil when the metric has no data
	Abort  bool     `json:"abort_on_fail,omitempty"`
}

// wireHist is a histogram as its populated buckets: ascending values as
// deltas, and their counts.
type wireHist struct {
	Lowest  int64   `json:"lo"`
	Highest int64   `json:"hi"`
	Digits  int     `json:"digits"`
	Deltas  []int64 `json:"v"`
	Counts  []int64 `json:"n"`
}

// encodeHist lists h's populated buckets; nil for an empty histogram.
func encodeHist(h *hdr.PackedHistogram) *wireHist {
	if h == nil || h.TotalCount() == 0 {
		return nil
	}
	n := h.Populated()
	w := &wireHist{
		Lowest: h.LowestTrackableValue(), Highest: h.HighestTrackableValue(), Digits: int(h.SignificantFigures()),
		Deltas: make([]int64, 0, n), Counts: make([]int64, 0, n),
	}
	var prev int64
	for v, c := range h.ForEachBucket {
		w.Deltas = append(w.Deltas, v-prev)
		w.Counts = append(w.Counts, c)
		prev = v
	}
	return w
}

// maxHistTop is the highest value (µs) a histogram from the child may hold.
const maxHistTop = int64(24 * time.Hour / time.Microsecond)

// decodeHist is encodeHist's inverse. It refuses geometry the child does
// not send, so that a corrupt frame cannot allocate without bound.
func decodeHist(w *wireHist) (*hdr.PackedHistogram, error) {
	if w == nil {
		return nil, nil
	}
	if w.Digits < 1 || w.Digits > 5 || w.Lowest < 1 || w.Highest < 2*w.Lowest || w.Highest > maxHistTop {
		return nil, fmt.Errorf("histogram geometry %d..%d with %d digits", w.Lowest, w.Highest, w.Digits)
	}
	if len(w.Deltas) != len(w.Counts) {
		return nil, fmt.Errorf("histogram with %d values and %d counts", len(w.Deltas), len(w.Counts))
	}
	h := hdr.NewPacked(w.Lowest, w.Highest, w.Digits)
	var v int64
	for i, d := range w.Deltas {
		if d < 0 || (i > 0 && d == 0) || w.Counts[i] < 0 {
			return nil, fmt.Errorf("histogram buckets not ascending")
		}
		v += d
		if err := h.RecordValues(v, w.Counts[i]); err != nil {
			return nil, err
		}
	}
	return h, nil
}
