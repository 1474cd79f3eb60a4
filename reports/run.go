// Package reports turns a run's measurements into what people and CI read:
// the run result file (schema loadcap.run/v1) and the text summary. Every
// reporter reads the same Run; none recomputes what the recorder knows.
package reports

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/loadcap/loadcap/internal/cli"
	"github.com/loadcap/loadcap/loadgen"
)

// Schema is the run result's schema name.
const Schema = "loadcap.run/v1"

// Run is the run result (docs/ARCHITECTURE.md): stable field names, JSON-encoded with
// sorted keys, so any result can be merged and re-reported exactly from its
// histograms.
type Run struct {
	Schema      string             `json:"schema"`
	Status      string             `json:"status"`
	AbortReason string             `json:"abort_reason"`
	AbortCause  string             `json:"abort_cause,omitempty"`
	Started     string             `json:"started"`
	Ended       string             `json:"ended"`
	DurationS   float64            `json:"duration_s"`
	Meta        Meta               `json:"meta"`
	Totals      Totals             `json:"totals"`
	LatencyMs   Latency            `json:"latency_ms"`
	ServiceMs   Latency            `json:"service_ms"`
	Requests    map[string]Request `json:"requests"`
	Intervals   []Interval         `json:"intervals"`
	// IntervalsFile, when set, is where a long run's seconds are (more
	// than InlineIntervals): Intervals is empty in the file, and holds
	// them folded once read (FoldS seconds each).
	IntervalsFile *IntervalsRef     `json:"intervals_file,omitempty"`
	Thresholds    []Threshold       `json:"thresholds"`
	Histograms    map[string]string `json:"histograms"`
	ServiceHist   map[string]string `json:"service_histograms,omitempty"`
	// A distributed run: Partial when an agent was lost (Lost says which,
	// when and its share of the load), Cluster the coordinator's report
	// (agents, segments, clock offsets, shortfalls).
	Partial bool            `json:"partial,omitempty"`
	Lost    []LostPart      `json:"lost,omitempty"`
	Cluster json.RawMessage `json:"cluster,omitempty"`

	// FoldS is how many seconds each of Intervals covers: 1 unless a long
	// run's were folded when read (MaxReadIntervals); 0 means 1.
	FoldS         int    `json:"-"`
	tally         *tally // the seconds read from an intervals file
	intervalsNote string // what of the intervals file could not be read
}

// Seconds is the number of the run's seconds with data, and how many of
// them the generator's host disturbed (loadgen.HostStalled).
func (r *Run) Seconds() (seconds, disturbed int) {
	if r.tally != nil {
		return r.tally.seconds, r.tally.stalled
	}
	for i := range r.Intervals {
		if stalled(&r.Intervals[i]) {
			disturbed++
		}
	}
	return len(r.Intervals), disturbed
}

// IntervalsNote says, when the run's intervals file is missing or cut
// short, which seconds the figures over time lack; "" otherwise.
func (r *Run) IntervalsNote() string { return r.intervalsNote }

// LostPart is an agent that ended before its run did.
type LostPart struct {
	Agent  string  `json:"agent"`
	AtS    float64 `json:"at_s"`  // seconds since the start, within the run
	Share  float64 `json:"share"` // its fraction of the load
	Reason string  `json:"reason"`
	// Unsent counts the arrivals planned for it that it never reported
	// sent or dropped (part of totals.lost); Uncounted says what that
	// count leaves out.
	Unsent    int64  `json:"unsent,omitempty"`
	Uncounted string `json:"uncounted,omitempty"`
}

// Meta describes what ran.
type Meta struct {
	Version   string   `json:"loadcap_version"`
	File      string   `json:"scenario_file,omitempty"`
	Target    string   `json:"target,omitempty"`
	Scenarios []string `json:"scenarios,omitempty"`
	MaxVUs    int      `json:"max_vus"`
	// Engine is "k6" for a k6 script run inside loadcap, whose latencies
	// are k6's, timed from the actual send; "" for loadcap's own engine.
	Engine string `json:"engine,omitempty"`
}

// EngineK6 is Meta.Engine for a k6 script.
const EngineK6 = "k6"

// LatencyNote says what the run's latencies count from.
func (r *Run) LatencyNote() string {
	if r.Meta.Engine == EngineK6 {
		return "latency is k6's http_req_duration, timed from the actual send (k6 drops an iteration that finds no free VU instead of queueing it: read it with dropped)"
	}
	return "latency is measured from the intended send time"
}

// Totals are the run's request counts. Invariants: scheduled = sent +
// dropped + lost; sent = completed + failed + inflight_at_stop.
type Totals struct {
	Scheduled int64 `json:"scheduled"`
	Sent      int64 `json:"sent"`
	Completed int64 `json:"completed"`
	Failed    int64 `json:"failed"`
	Dropped   int64 `json:"dropped"`
	// Lost counts the arrivals planned for agents a distributed run lost
	// that they never reported sent or dropped (absent: none).
	Lost           int64   `json:"lost,omitempty"`
	InflightAtStop int64   `json:"inflight_at_stop"`
	RPS            float64 `json:"rps"`
	BytesSent      int64   `json:"bytes_sent"`
	BytesReceived  int64   `json:"bytes_received"`
	// The pacer fell behind: arrivals dispatched over 10 ms late, the worst lag.
	LateArrivals int64   `json:"late_arrivals,omitempty"`
	MaxLagMs     float64 `json:"max_pacer_lag_ms,omitempty"`
	// The generator's host: the longest the generator's process was kept
	// from running, and the mean share of CPU time the hypervisor gave to
	// other guests (percent).
	MaxStallMs   float64 `json:"max_generator_stall_ms,omitempty"`
	HostStealPct float64 `json:"host_steal_pct,omitempty"`
}

// Latency is a distribution in milliseconds.
type Latency struct {
	Count int64   `json:"count"`
	Min   float64 `json:"min"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P95   float64 `json:"p95"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
}

// Request is one request name's figures.
type Request struct {
	Totals       Totals            `json:"totals"`
	LatencyMs    Latency           `json:"latency_ms"`
	ServiceMs    Latency           `json:"service_ms"`
	StatusCodes  map[string]int64  `json:"status_codes"`
	Errors       map[string]int64  `json:"errors"`
	ErrorSamples map[string]string `json:"error_samples,omitempty"`
}

// Interval is one second of the run.
type Interval struct {
	T          int               `json:"t"`
	EndS       float64           `json:"end_s"`
	Scheduled  int64             `json:"scheduled"`
	Sent       int64             `json:"sent"`
	Completed  int64             `json:"completed"`
	Failed     int64             `json:"failed"`
	Dropped    int64             `json:"dropped"`
	Inflight   int64             `json:"inflight"`
	LatencyMs  Latency           `json:"latency_ms"`
	Errors     map[string]int64  `json:"errors,omitempty"`
	Histograms map[string]string `json:"histograms,omitempty"`
	StallMs    float64           `json:"stall_ms,omitempty"`  // the generator kept from running, longest
	StealPct   float64           `json:"steal_pct,omitempty"` // the host's CPU time given to other guests
}

// pct is a share (0..1, negative when unknown) in percent, rounded; 0 when
// unknown.
func pct(share float64) float64 {
	if share <= 0 {
		return 0
	}
	return math.Round(share*1e5) / 1e3
}

// HostNote says, when the generator's host kept it from running long
// enough to matter, what that did to the figures; "" otherwise.
func (r *Run) HostNote() string {
	t := r.Totals
	if !loadgen.HostStalled(time.Duration(t.MaxStallMs*1e6), t.HostStealPct/100) {
		return ""
	}
	secs, disturbed := r.Seconds()
	return fmt.Sprintf("the generator was kept from running for up to %s (%d of %d seconds disturbed; its host gave %.1f%% of the CPU time to other machines): "+
		"latency from the intended send time includes those stalls, so in those seconds it describes the generator and its host, not the target",
		ms(t.MaxStallMs), disturbed, secs, t.HostStealPct)
}

// Threshold is one evaluated threshold; Value is null when the metric had
// no data.
type Threshold struct {
	Metric string   `json:"metric"`
	Expr   string   `json:"expr"`
	Passed bool     `json:"passed"`
	Value  *float64 `json:"value"`
	Abort  bool     `json:"abort_on_fail,omitempty"`
	// Note says how the verdict was reached when not on this run's merged
	// data (k6's verdicts per agent for a metric loadcap does not measure).
	Note string `json:"note,omitempty"`
}

func latency(s loadgen.Summary) Latency {
	return Latency{Count: s.Count, Min: s.Min, Mean: round3(s.Mean), P50: s.P50, P90: s.P90, P95: s.P95, P99: s.P99, P999: s.P999, Max: s.Max}
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

func encode(h *hdr.Histogram) string {
	b, err := h.Encode(hdr.V2CompressedEncodingCookieBase)
	if err != nil {
		return ""
	}
	return string(b)
}

// NewRun builds the run result from what the engine measured.
func NewRun(res *loadgen.Result, meta Meta) *Run {
	r := &Run{
		Schema:      Schema,
		Status:      res.Status,
		AbortReason: res.AbortReason,
		AbortCause:  res.AbortCause,
		Started:     res.Started.UTC().Format(time.RFC3339Nano),
		Ended:       res.Ended.UTC().Format(time.RFC3339Nano),
		DurationS:   round3(res.Duration.Seconds()),
		Meta:        meta,
		LatencyMs:   latency(loadgen.Summarize(res.Latency)),
		ServiceMs:   latency(loadgen.Summarize(res.Service)),
		Requests:    map[string]Request{},
		Histograms:  map[string]string{},
		ServiceHist: map[string]string{},
		Thresholds:  []Threshold{},
		Intervals:   []Interval{},
	}
	r.Meta.MaxVUs = res.MaxVUs
	for _, l := range res.Lost {
		r.Partial = true
		r.Lost = append(r.Lost, LostPart{Agent: l.Agent, AtS: round3(l.At.Seconds()), Share: l.Share, Reason: l.Reason,
			Unsent: l.Unsent, Uncounted: l.Uncounted})
	}
	t := res.Totals
	r.Totals = Totals{
		Scheduled: t.Scheduled, Sent: t.Sent, Completed: t.Completed, Failed: t.Failed,
		Dropped: t.Dropped, Lost: t.Lost, InflightAtStop: t.InflightAtStop, RPS: round3(res.RPS()),
		BytesSent: t.BytesSent, BytesReceived: t.BytesRecv,
		LateArrivals: t.Late, MaxLagMs: round3(float64(t.MaxLag) / 1e6),
		MaxStallMs: round3(float64(t.MaxStall) / 1e6), HostStealPct: pct(t.Steal),
	}
	secs := res.Duration.Seconds()
	for _, q := range res.Requests {
		rq := Request{
			Totals: Totals{
				Sent: q.Sent, Completed: q.Completed, Failed: q.Failed,
				InflightAtStop: q.Sent - q.Completed - q.Failed,
				BytesSent:      q.BytesSent, BytesReceived: q.BytesRecv,
			},
			LatencyMs:    latency(loadgen.Summarize(q.Latency)),
			ServiceMs:    latency(loadgen.Summarize(q.Service)),
			StatusCodes:  map[string]int64{},
			Errors:       q.Errors,
			ErrorSamples: q.ErrorSamples,
		}
		if secs > 0 {
			rq.Totals.RPS = round3(float64(q.Completed+q.Failed) / secs)
		}
		for code, n := range q.StatusCodes {
			rq.StatusCodes[strconv.Itoa(code)] = n
		}
		r.Requests[q.Name] = rq
		r.Histograms[q.Name] = encode(q.Latency)
		r.ServiceHist[q.Name] = encode(q.Service)
	}
	var hw hdrWriter
	for _, iv := range res.Intervals {
		r.Intervals = append(r.Intervals, intervalOf(&hw, iv))
	}
	for _, th := range res.Thresholds {
		x := Threshold{Metric: th.Metric, Expr: th.Expr, Passed: th.Passed, Abort: th.Abort, Note: th.Note}
		if !math.IsNaN(th.Value) && !math.IsInf(th.Value, 0) {
			v := th.Value
			x.Value = &v
		}
		r.Thresholds = append(r.Thresholds, x)
	}
	return r
}

// intervalOf is one second as run.json and the intervals file hold it.
func intervalOf(hw *hdrWriter, iv loadgen.Interval) Interval {
	ri := Interval{
		T: iv.T, EndS: round3(iv.End.Seconds()), Scheduled: iv.Scheduled, Sent: iv.Sent,
		Completed: iv.Completed, Failed: iv.Failed, Dropped: iv.Dropped, Inflight: iv.Inflight,
		LatencyMs: latency(iv.Latency),
		StallMs:   round3(float64(iv.Stall) / 1e6), StealPct: pct(iv.Steal),
	}
	for name, h := range iv.Hists {
		if ri.Histograms == nil {
			ri.Histograms = make(map[string]string, len(iv.Hists))
		}
		ri.Histograms[name] = hw.encode(h)
	}
	for c, n := range iv.Classes {
		if n > 0 {
			if ri.Errors == nil {
				ri.Errors = map[string]int64{}
			}
			ri.Errors[loadgen.ClassName(uint8(c))] = n
		}
	}
	return ri
}

// WriteJSON writes r indented. A run whose seconds are in an intervals
// file (IntervalsFile) writes none here, whatever r holds folded.
func (r *Run) WriteJSON(w io.Writer) error {
	if r.IntervalsFile != nil {
		c := *r
		c.Intervals = []Interval{}
		r = &c
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteFile writes r to path atomically (cli.WriteAtomic: a synced
// temporary file renamed into place), so an interrupted or failed write
// never leaves half a result, nor loses the previous one.
func (r *Run) WriteFile(path string) error {
	if err := cli.WriteAtomic(path, r.WriteJSON); err != nil {
		return fmt.Errorf("write run result: %w", err)
	}
	return nil
}

// ReadFile reads a run result and validates it (ParseRun): a result that
// breaks its promises (a histogram that does not decode, a negative count,
// totals that do not balance) is scenarios.Errors naming the file and the
// field, exit code 104 in the CLI.
func ReadFile(path string) (*Run, error) {
	b, err := readLimited(path)
	if err != nil {
		return nil, fmt.Errorf("read run result: %w", err)
	}
	return ParseRun(path, b)
}

// CheckTotals verifies the totals contract of docs/ARCHITECTURE.md: every scheduled
// request was sent, dropped or lost with an agent, and every sent request
// completed, failed or was in flight when the run stopped.
func (r *Run) CheckTotals() error {
	t := r.Totals
	if t.Scheduled != t.Sent+t.Dropped+t.Lost {
		if t.Lost != 0 {
			return fmt.Errorf("scheduled %d != sent %d + dropped %d + lost %d", t.Scheduled, t.Sent, t.Dropped, t.Lost)
		}
		return fmt.Errorf("scheduled %d != sent %d + dropped %d", t.Scheduled, t.Sent, t.Dropped)
	}
	var unsent int64
	for _, l := range r.Lost {
		unsent += l.Unsent
	}
	if unsent != t.Lost {
		return fmt.Errorf("lost %d != the lost agents' unsent arrivals %d", t.Lost, unsent)
	}
	if t.Lost != 0 && !r.Partial {
		return fmt.Errorf("lost %d arrivals in a run not marked partial", t.Lost)
	}
	if t.Sent != t.Completed+t.Failed+t.InflightAtStop {
		return fmt.Errorf("sent %d != completed %d + failed %d + inflight_at_stop %d", t.Sent, t.Completed, t.Failed, t.InflightAtStop)
	}
	return nil
}

// Histogram decodes the named request's latency histogram (µs).
func (r *Run) Histogram(name string) (*hdr.Histogram, error) {
	s, ok := r.Histograms[name]
	if !ok {
		return nil, fmt.Errorf("no histogram for %q", name)
	}
	return hdr.Decode([]byte(s))
}

// RequestNames returns the request names in order.
func (r *Run) RequestNames() []string {
	return slices.Sorted(maps.Keys(r.Requests))
}
