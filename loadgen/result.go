package loadgen

import (
	"sort"
	"strings"
	"time"
	"unicode"

	"google.golang.org/grpc/codes"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/loadcap/loadcap/loadgen/httpc"
)

// Run status values (docs/ARCHITECTURE.md).
const (
	StatusPassed  = "passed"
	StatusFailed  = "failed"
	StatusAborted = "aborted"
)

const numTransportClasses = int(httpc.ClassOther) + 1

// ClassName names an error class as results and reports show it: the
// transport classes of httpc, "4xx" and "5xx", and the gRPC status codes as
// "grpc_" and the code in snake case ("grpc_unavailable",
// "grpc_deadline_exceeded").
func ClassName(c uint8) string {
	switch {
	case c == class4xx:
		return "4xx"
	case c == class5xx:
		return "5xx"
	case c >= classGRPC && c < numClasses:
		return grpcClassNames[c-classGRPC]
	}
	return httpc.Class(c).String()
}

// grpcClassNames are the gRPC classes' names, by code − 1.
var grpcClassNames = func() (out [numGRPCCodes]string) {
	for i := range out {
		var b strings.Builder
		b.WriteString("grpc_")
		for j, r := range codes.Code(i + 1).String() {
			if unicode.IsUpper(r) {
				if j > 0 {
					b.WriteByte('_')
				}
				r = unicode.ToLower(r)
			}
			b.WriteRune(r)
		}
		out[i] = b.String()
	}
	return out
}()

// grpcClass is the error class of a gRPC status code; 0 for OK.
func grpcClass(c codes.Code) uint8 {
	if c == codes.OK {
		return 0
	}
	if c > numGRPCCodes {
		return classGRPC + uint8(codes.Unknown) - 1
	}
	return classGRPC + uint8(c) - 1
}

// Summary is a latency distribution reduced to the figures reports show, in
// milliseconds.
type Summary struct {
	Count                               int64
	Min, Mean, P50, P90, P95, P99, P999 float64
	Max                                 float64
}

// Summarize reduces a histogram of microseconds to a Summary in ms.
func Summarize(h *hdr.Histogram) Summary {
	if h == nil || h.TotalCount() == 0 {
		return Summary{}
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Summary{
		Count: h.TotalCount(),
		Min:   ms(h.Min()),
		Mean:  h.Mean() / 1000,
		P50:   ms(h.ValueAtPercentile(50)),
		P90:   ms(h.ValueAtPercentile(90)),
		P95:   ms(h.ValueAtPercentile(95)),
		P99:   ms(h.ValueAtPercentile(99)),
		P999:  ms(h.ValueAtPercentile(99.9)),
		Max:   ms(h.Max()),
	}
}

// summarizePacked is Summarize for a sparse histogram.
func summarizePacked(h *hdr.PackedHistogram) Summary {
	if h.TotalCount() == 0 {
		return Summary{}
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	q := h.ValueAtPercentilesSlice([]float64{50, 90, 95, 99, 99.9})
	return Summary{
		Count: h.TotalCount(), Min: ms(h.Min()), Mean: h.Mean() / 1000,
		P50: ms(q[0]), P90: ms(q[1]), P95: ms(q[2]), P99: ms(q[3]), P999: ms(q[4]), Max: ms(h.Max()),
	}
}

// Interval is one second of a run (the last one may be shorter).
type Interval struct {
	T                        int           // seconds since start: the interval [T, T+1)
	End                      time.Duration // when it was closed, since start
	Scheduled, Sent, Dropped int64
	Completed, Failed        int64
	Inflight                 int64         // at the end of the interval
	Busy                     time.Duration // ∫ inflight dt from the run's start to End: Busy/ΔEnd is mean concurrency
	BytesSent, BytesRecv     int64
	ServiceSum, LatencySum   time.Duration // Σ over the requests done in it
	Classes                  [numClasses]int64
	// Stall is the longest the generator's process was kept from running
	// in the interval, Steal the share of the host's CPU time its
	// hypervisor gave to others (-1: unknown); see HostStalled.
	Stall   time.Duration
	Steal   float64
	Latency Summary                         // all request names
	Hists   map[string]*hdr.PackedHistogram // per request name: latency (µs), sparse
}

// RequestStats is everything recorded for one request name (in one
// scenario, for Result.Series; over all scenarios, for Result.Requests).
type RequestStats struct {
	Name                 string
	Scenario             string // empty when aggregated over scenarios
	Sent                 int64
	Completed, Failed    int64
	BytesSent, BytesRecv int64
	Latency, Service     *hdr.Histogram // µs
	StatusCodes          map[int]int64
	Errors               map[string]int64  // by class name
	ErrorSamples         map[string]string // class name → one message
}

// ThresholdResult is one evaluated threshold.
type ThresholdResult struct {
	Metric string // as written, with its tags: "http_req_duration{name:checkout}"
	Expr   string // "p(99)<200"
	Passed bool
	Value  float64 // the observed value the expression was tested against
	Abort  bool    // abortOnFail and it failed during the run
	// Note says how the verdict was reached when not on the result's own
	// data, e.g. k6's verdicts per agent for a metric loadcap does not
	// measure; "" otherwise.
	Note string
}

// Result is what a run measured: the input of every reporter.
type Result struct {
	Started, Ended time.Time
	Status         string
	AbortReason    string
	AbortCause     string // CauseSignal or CauseThreshold when aborted
	Totals         Totals
	Duration       time.Duration   // Ended − Started
	Requests       []*RequestStats // per request name over all scenarios, sorted by name
	Series         []*RequestStats // per scenario and request name
	Latency        *hdr.Histogram  // all names, from the intended send time (µs)
	Service        *hdr.Histogram  // all names, from the actual send time (µs)
	// Intervals are the run's closed seconds, all of them unless the run
	// kept only the last ones (WithIntervalRetention): then the first
	// Earlier seconds are not here (Intervals[0].T = Earlier).
	Intervals      []Interval
	Earlier        int
	earlierStalled int // of the Earlier seconds, those HostStalled
	Thresholds     []ThresholdResult
	MaxVUs         int // peak VUs in use
	// Lost lists the parts of a distributed run that ended before the
	// rest (an agent lost mid-run); the result holds what they measured
	// until then. Empty for a complete run.
	Lost []Lost

	top int64 // histogram top (µs), for Select
}

// Lost is a part of a distributed run that ended early.
type Lost struct {
	Agent  string        // who ran it (an agent's address)
	At     time.Duration // when it was lost, since the start, within the run
	Share  float64       // its fraction of the load (its segment's length)
	Reason string
	// Unsent counts the open-model arrivals planned for the part (until
	// the run's end, or its stop) that it never reported sent or dropped:
	// the load the result is missing (Totals.Lost). Some may have reached
	// the target in the moments before the loss, unreported; none is
	// counted twice. Uncounted says what the count leaves
	// out ("" when nothing): closed-model iterations and replayed records
	// are not planned in advance, and a k6 script's schedule is k6's.
	Unsent    int64
	Uncounted string
}

// Partial reports whether part of the load was lost (Result.Lost).
func (r *Result) Partial() bool { return len(r.Lost) > 0 }

// Disturbed counts the intervals in which the generator's host kept it
// from running long enough to matter (HostStalled).
func (r *Result) Disturbed() int {
	n := r.earlierStalled
	for _, iv := range r.Intervals {
		if HostStalled(iv.Stall, iv.Steal) {
			n++
		}
	}
	return n
}

// RPS is completed plus failed requests per second of run time.
func (r *Result) RPS() float64 {
	s := r.Duration.Seconds()
	if s <= 0 {
		return 0
	}
	return float64(r.Totals.Completed+r.Totals.Failed) / s
}

// Request returns the stats of the named request, or nil.
func (r *Result) Request(name string) *RequestStats {
	for _, q := range r.Requests {
		if q.Name == name {
			return q
		}
	}
	return nil
}

// Result assembles the cumulative figures, for a caller that drives a
// Recorder itself (a simulation, a benchmark); it sets neither the times
// nor the status. Call it after a final Rotate.
func (r *Recorder) Result() *Result { return r.result() }

// result assembles the cumulative figures. Call it after a final Rotate.
func (r *Recorder) result() *Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, per := r.totalsLocked()
	res := &Result{Totals: t, Intervals: r.intervals, Earlier: r.earlier, earlierStalled: r.earlierStalled, top: r.top}
	lats := make([]*hdr.Histogram, 0, len(r.series))
	svcs := make([]*hdr.Histogram, 0, len(r.series))
	for j, sr := range r.series {
		rs := &RequestStats{
			Name:         sr.Name,
			Scenario:     sr.Scenario,
			Sent:         r.sent[j].Load(),
			Completed:    per[j].Completed,
			Failed:       per[j].Failed,
			BytesSent:    per[j].BytesSent,
			BytesRecv:    per[j].BytesRecv,
			Latency:      r.lat[j],
			Service:      r.svc[j],
			StatusCodes:  map[int]int64{},
			Errors:       map[string]int64{},
			ErrorSamples: map[string]string{},
		}
		for i := range r.shards {
			s := &r.shards[i]
			s.mu.Lock()
			for code, n := range s.names[j].status {
				rs.StatusCodes[code] += n
			}
			s.mu.Unlock()
		}
		for c, n := range per[j].Classes {
			if n > 0 {
				cn := ClassName(uint8(c))
				rs.Errors[cn] = n
				if v, ok := r.samples.Load(seriesKey(j, cn)); ok {
					rs.ErrorSamples[cn] = v.(string)
				}
			}
		}
		lats = append(lats, r.lat[j])
		svcs = append(svcs, r.svc[j])
		res.Series = append(res.Series, rs)
	}
	for _, name := range r.names {
		res.Requests = append(res.Requests, res.Select(map[string]string{"name": name}))
	}
	sort.Slice(res.Requests, func(a, b int) bool { return strings.Compare(res.Requests[a].Name, res.Requests[b].Name) < 0 })
	res.Latency = mergeAll(lats, r.top)
	res.Service = mergeAll(svcs, r.top)
	return res
}

// Select aggregates the series that match every tag given ("name",
// "scenario"). The result's Name and Scenario are set when the tags fix
// them. It returns nil when no series matches.
func (r *Result) Select(tags map[string]string) *RequestStats {
	var out *RequestStats
	for _, s := range r.Series {
		if n, ok := tags["name"]; ok && s.Name != n {
			continue
		}
		if sc, ok := tags["scenario"]; ok && s.Scenario != sc {
			continue
		}
		if out == nil {
			out = &RequestStats{
				Name: tags["name"], Scenario: tags["scenario"],
				Latency: hdr.New(histLowest, r.top, histDigits), Service: hdr.New(histLowest, r.top, histDigits),
				StatusCodes: map[int]int64{}, Errors: map[string]int64{}, ErrorSamples: map[string]string{},
			}
		}
		out.Sent += s.Sent
		out.Completed += s.Completed
		out.Failed += s.Failed
		out.BytesSent += s.BytesSent
		out.BytesRecv += s.BytesRecv
		out.Latency.Merge(s.Latency)
		out.Service.Merge(s.Service)
		for k, v := range s.StatusCodes {
			out.StatusCodes[k] += v
		}
		for k, v := range s.Errors {
			out.Errors[k] += v
		}
		for k, v := range s.ErrorSamples {
			if _, ok := out.ErrorSamples[k]; !ok {
				out.ErrorSamples[k] = v
			}
		}
	}
	return out
}
