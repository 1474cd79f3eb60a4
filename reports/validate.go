package reports

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/scenarios"
)

// maxRunProblems bounds the problems reported for one run result: past it
// the file is not a run result gone slightly wrong, and more lines say
// nothing new.
const maxRunProblems = 50

// ParseRun decodes a run result read from the file name and validates it
// (Run.Validate). Every problem is returned at once as scenarios.Errors
// (exit code 104 in the CLI), each naming the file and the field at fault as
// a JSON path: `totals.sent`, `intervals[12].histograms["GET /"]`.
func ParseRun(name string, data []byte) (*Run, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, scenarios.Errors{jsonProblem(name, data, err)}
	}
	var r Run
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, scenarios.Errors{jsonProblem(name, data, err)}
	}
	v := &runCheck{file: name}
	if r.Schema != Schema {
		v.add("schema", "schema %q, want %q: not a run result of this version of loadcap", r.Schema, Schema)
		return nil, v.errs
	}
	for _, k := range []string{"status", "started", "ended", "totals", "latency_ms", "requests", "intervals", "thresholds", "histograms"} {
		if raw, ok := top[k]; !ok || string(raw) == "null" {
			v.add(k, "missing")
		}
	}
	var totals map[string]json.RawMessage
	if raw, ok := top["totals"]; ok && string(raw) != "null" {
		_ = json.Unmarshal(raw, &totals) // its types were checked decoding r
		for _, k := range []string{"scheduled", "sent", "completed", "failed", "dropped", "inflight_at_stop"} {
			if raw, ok := totals[k]; !ok || string(raw) == "null" {
				v.add("totals."+k, "missing")
			}
		}
	}
	// totals.lost (the arrivals a distributed run's lost agents never
	// reported sent) is optional and part of the totals' balance.
	r.check(v, r.Totals.Lost)
	if v.err() == nil && r.IntervalsFile != nil {
		// A long run's seconds: read and checked one at a time, kept
		// folded (MaxReadIntervals).
		r.loadIntervalsFile(name, v, r.Totals.Lost)
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Validate checks what a run result promises its readers: its schema,
// a known status, times in order, counts that are not negative, the
// totals' balance (scheduled = sent + dropped, sent = completed + failed +
// inflight_at_stop, and the same for every request), one latency histogram
// per request name, every histogram (overall and per second) decoding, and
// the seconds in order with counts that fit in the totals. It returns every
// problem at once, as ParseRun does, without a file name.
func (r *Run) Validate() error {
	v := &runCheck{}
	if r.Schema != Schema {
		v.add("schema", "schema %q, want %q", r.Schema, Schema)
		return v.errs
	}
	r.check(v, 0)
	return v.err()
}

// runCheck collects the problems of one run result.
type runCheck struct {
	file string
	line int // the line of an intervals file being read; 0 otherwise
	errs scenarios.Errors
	hr   hdrReader
}

func (v *runCheck) add(path, format string, a ...any) {
	if len(v.errs) > maxRunProblems {
		return
	}
	if len(v.errs) == maxRunProblems {
		path, format, a = "", "too many problems; stopped after %d", []any{maxRunProblems}
	}
	e := &scenarios.Error{File: v.file, Path: path, Msg: fmt.Sprintf(format, a...)}
	if v.line > 0 {
		e.Pos = scenarios.Pos{Line: v.line, Col: 1}
	}
	v.errs = append(v.errs, e)
}

func (v *runCheck) err() error {
	if len(v.errs) == 0 {
		return nil
	}
	return v.errs
}

// counts reports every negative count among fields (name, value pairs).
func (v *runCheck) counts(path string, fields ...any) {
	for i := 0; i+1 < len(fields); i += 2 {
		name := fields[i].(string)
		switch n := fields[i+1].(type) {
		case int64:
			if n < 0 {
				v.add(path+"."+name, "%d is negative: a count cannot be", n)
			}
		case float64:
			if n < 0 {
				v.add(path+"."+name, "%g is negative", n)
			}
		}
	}
}

// quote is a map key in a JSON path: ["GET /"].
func quote(key string) string { return "[" + strconv.Quote(key) + "]" }

func (r *Run) check(v *runCheck, lost int64) {
	switch r.Status {
	case loadgen.StatusPassed, loadgen.StatusFailed, loadgen.StatusAborted:
	default:
		v.add("status", "%q: want passed, failed or aborted", r.Status)
	}
	started, errS := time.Parse(time.RFC3339Nano, r.Started)
	if errS != nil {
		v.add("started", "%q is not an RFC 3339 time", r.Started)
	}
	ended, errE := time.Parse(time.RFC3339Nano, r.Ended)
	if errE != nil {
		v.add("ended", "%q is not an RFC 3339 time", r.Ended)
	}
	if errS == nil && errE == nil && ended.Before(started) {
		v.add("ended", "%s is before started %s", r.Ended, r.Started)
	}
	v.counts("", "duration_s", r.DurationS)
	t := r.Totals
	v.totals("totals", t)
	if lost < 0 {
		v.add("totals.lost", "%d is negative: a count cannot be", lost)
	}
	if t.Scheduled != t.Sent+t.Dropped+lost {
		if lost != 0 {
			v.add("totals.scheduled", "%d != sent %d + dropped %d + lost %d", t.Scheduled, t.Sent, t.Dropped, lost)
		} else {
			v.add("totals.scheduled", "%d != sent %d + dropped %d", t.Scheduled, t.Sent, t.Dropped)
		}
	}
	if t.Sent != t.Completed+t.Failed+t.InflightAtStop {
		v.add("totals.sent", "%d != completed %d + failed %d + inflight_at_stop %d", t.Sent, t.Completed, t.Failed, t.InflightAtStop)
	}
	v.latency("latency_ms", r.LatencyMs)
	v.latency("service_ms", r.ServiceMs)
	for _, name := range slices.Sorted(maps.Keys(r.Requests)) {
		q, path := r.Requests[name], "requests"+quote(name)
		v.totals(path+".totals", q.Totals)
		if q.Totals.Sent != q.Totals.Completed+q.Totals.Failed+q.Totals.InflightAtStop {
			v.add(path+".totals.sent", "%d != completed %d + failed %d + inflight_at_stop %d",
				q.Totals.Sent, q.Totals.Completed, q.Totals.Failed, q.Totals.InflightAtStop)
		}
		v.latency(path+".latency_ms", q.LatencyMs)
		v.latency(path+".service_ms", q.ServiceMs)
		v.countMap(path+".status_codes", q.StatusCodes)
		v.countMap(path+".errors", q.Errors)
		if _, ok := r.Histograms[name]; !ok {
			v.add("histograms"+quote(name), "missing: request %q has no latency histogram", name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(r.Histograms)) {
		v.histogram("histograms"+quote(name), r.Histograms[name])
	}
	for _, name := range slices.Sorted(maps.Keys(r.ServiceHist)) {
		v.histogram("service_histograms"+quote(name), r.ServiceHist[name])
	}
	r.checkIntervals(v, lost)
	for i, th := range r.Thresholds {
		if th.Metric == "" || th.Expr == "" {
			v.add(fmt.Sprintf("thresholds[%d]", i), "a threshold needs a metric and an expr")
		}
	}
	for i, l := range r.Lost {
		path := fmt.Sprintf("lost[%d]", i)
		if l.Agent == "" {
			v.add(path+".agent", "missing")
		}
		if l.AtS < 0 {
			v.add(path+".at_s", "%g is negative", l.AtS)
		}
		if l.Share < 0 || l.Share > 1 {
			v.add(path+".share", "%g is not a fraction between 0 and 1", l.Share)
		}
	}
}

func (v *runCheck) totals(path string, t Totals) {
	v.counts(path, "scheduled", t.Scheduled, "sent", t.Sent, "completed", t.Completed, "failed", t.Failed,
		"dropped", t.Dropped, "inflight_at_stop", t.InflightAtStop, "rps", t.RPS,
		"bytes_sent", t.BytesSent, "bytes_received", t.BytesReceived, "late_arrivals", t.LateArrivals,
		"max_pacer_lag_ms", t.MaxLagMs, "max_generator_stall_ms", t.MaxStallMs, "host_steal_pct", t.HostStealPct)
}

func (v *runCheck) latency(path string, l Latency) {
	v.counts(path, "count", l.Count, "min", l.Min, "mean", l.Mean, "p50", l.P50, "p90", l.P90,
		"p95", l.P95, "p99", l.P99, "p999", l.P999, "max", l.Max)
}

func (v *runCheck) countMap(path string, m map[string]int64) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if m[k] < 0 {
			v.add(path+quote(k), "%d is negative: a count cannot be", m[k])
		}
	}
}

// histogram checks that enc is an HDR histogram in the V2 compressed
// encoding that decodes whole, read first by hdrReader, whose bounds keep a
// hostile header from costing memory.
func (v *runCheck) histogram(path, enc string) {
	g, err := v.hr.read(enc)
	if err != nil {
		v.add(path, "not a histogram: %v", err)
		return
	}
	if err := v.walk(g); err != nil {
		v.add(path, "not a histogram: %v", err)
		return
	}
	h, err := hdr.Decode([]byte(enc))
	if err != nil {
		v.add(path, "not a histogram: %v", err)
		return
	}
	if h.TotalCount() < 0 {
		v.add(path, "a negative count of values")
	}
}

// walk checks the payload hr read last: its buckets within the geometry
// its header declares (so a reader never indexes past them) and no count
// that overflows the total.
func (v *runCheck) walk(g hdrGeom) error {
	n, total := g.countsLen(), int64(0)
	var err error
	werr := v.hr.walk(func(idx, c int64) bool {
		if idx >= n {
			err = fmt.Errorf("bucket %d past the %d buckets of its range", idx, n)
			return false
		}
		if total += c; total < 0 {
			err = errors.New("its counts overflow")
			return false
		}
		return true
	})
	return cmp.Or(werr, err)
}

// checkIntervals checks the seconds: in order, counts not negative and
// adding up to no more than the totals, histograms that decode with one
// precision (Compare merges them).
func (r *Run) checkIntervals(v *runCheck, lost int64) {
	c := newIntervalCheck()
	for i := range r.Intervals {
		c.check(v, fmt.Sprintf("intervals[%d]", i), &r.Intervals[i])
	}
	c.done(v, r.Totals, lost)
}

// intervalCheck checks a run's seconds one at a time, embedded or read
// from an intervals file, in bounded memory.
type intervalCheck struct {
	// each, when set, gets every histogram that checked out, while hr
	// still holds its payload (a reader folding seconds reads each once).
	each    func(name string, g hdrGeom, hr *hdrReader)
	sum     Totals
	geom    *hdrGeom
	lastT   int
	lastEnd float64
}

func newIntervalCheck() *intervalCheck { return &intervalCheck{lastT: -1} }

func (c *intervalCheck) check(v *runCheck, path string, iv *Interval) {
	if iv.T <= c.lastT {
		v.add(path+".t", "%d after %d: the seconds must increase", iv.T, c.lastT)
	}
	if iv.EndS < c.lastEnd {
		v.add(path+".end_s", "%g before the previous second's end %g", iv.EndS, c.lastEnd)
	}
	c.lastT, c.lastEnd = iv.T, max(c.lastEnd, iv.EndS)
	v.counts(path, "end_s", iv.EndS, "scheduled", iv.Scheduled, "sent", iv.Sent, "completed", iv.Completed,
		"failed", iv.Failed, "dropped", iv.Dropped, "inflight", iv.Inflight, "stall_ms", iv.StallMs, "steal_pct", iv.StealPct)
	v.latency(path+".latency_ms", iv.LatencyMs)
	v.countMap(path+".errors", iv.Errors)
	c.sum.Scheduled += max(iv.Scheduled, 0)
	c.sum.Sent += max(iv.Sent, 0)
	c.sum.Completed += max(iv.Completed, 0)
	c.sum.Failed += max(iv.Failed, 0)
	c.sum.Dropped += max(iv.Dropped, 0)
	for _, name := range slices.Sorted(maps.Keys(iv.Histograms)) {
		hp := path + ".histograms" + quote(name)
		g, err := v.hr.read(iv.Histograms[name])
		if err == nil {
			err = v.walk(g)
		}
		if err != nil {
			v.add(hp, "not a histogram: %v", err)
			continue
		}
		if c.geom == nil {
			c.geom = &g
		} else if g.Lowest != c.geom.Lowest || g.Digits != c.geom.Digits {
			v.add(hp, "lowest %d, %d digits: another precision than the seconds before (lowest %d, %d digits)",
				g.Lowest, g.Digits, c.geom.Lowest, c.geom.Digits)
			continue
		}
		if c.each != nil {
			c.each(name, g, &v.hr)
		}
	}
}

// done checks that the seconds add up to no more than the totals t.
func (c *intervalCheck) done(v *runCheck, t Totals, lost int64) {
	sum := c.sum
	for _, c := range []struct {
		name       string
		sum, total int64
	}{
		{"scheduled", sum.Scheduled, t.Scheduled + lost}, {"sent", sum.Sent, t.Sent}, {"completed", sum.Completed, t.Completed},
		{"failed", sum.Failed, t.Failed}, {"dropped", sum.Dropped, t.Dropped},
	} {
		if c.sum > c.total && c.total >= 0 {
			v.add("intervals", "the seconds add up to %d %s, more than totals.%s %d", c.sum, c.name, c.name, c.total)
		}
	}
}

// jsonProblem positions a decoding error: line and column for broken
// JSON, the field for a value of the wrong type.
func jsonProblem(name string, data []byte, err error) *scenarios.Error {
	e := &scenarios.Error{File: name, Msg: "not a JSON run result: " + err.Error()}
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		e.Pos = position(data, se.Offset)
		e.Msg = "not JSON: " + se.Error()
	case errors.As(err, &te):
		e.Pos = position(data, te.Offset)
		e.Path = te.Field
		e.Msg = fmt.Sprintf("%s where %s is wanted", te.Value, te.Type)
		if te.Field == "" {
			e.Msg = fmt.Sprintf("a JSON %s, not an object: not a run result", te.Value)
		}
	}
	return e
}

// position is the 1-based line and column of byte offset off in data.
func position(data []byte, off int64) scenarios.Pos {
	off = min(max(off, 0), int64(len(data)))
	before := data[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(off) - (bytes.LastIndexByte(before, '\n') + 1)
	return scenarios.Pos{Line: line, Col: max(col, 1)}
}
