package reports

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/scenarios"
)

// Merge adds up runs that are parts of one load (the run.json of several
// coordinators, each over its share of the agents, or of agents written
// with loadcap agent --parts-dir) into the run one process would have
// written for all of it: counts are summed and every histogram, overall,
// per request and per second, merged bucket by bucket, so totals and
// percentiles are exact. Seconds are matched by their number since each
// part's own start; the merged run starts with the earliest part and ends
// with the latest. Thresholds are evaluated again on the merged figures
// where run.json holds what they measure (latency, failure rate and the
// counters, overall or of one request); any other (a scenario's, gRPC
// latency) keeps the verdict
// of its parts, all of which must pass, with a note saying so. The parts
// must agree on the schema and the engine, and each one be valid
// (ParseRun).
func Merge(parts ...*Run) (*Run, error) {
	if len(parts) == 0 {
		return nil, errors.New("merge: no runs")
	}
	first := parts[0]
	m := &Run{
		Schema: Schema, Status: loadgen.StatusPassed, Meta: first.Meta,
		Requests: map[string]Request{}, Histograms: map[string]string{}, ServiceHist: map[string]string{},
		Intervals: []Interval{}, Thresholds: []Threshold{},
	}
	m.Meta.MaxVUs = 0
	var start, end time.Time
	for i, p := range parts {
		if p.Schema != Schema {
			return nil, fmt.Errorf("merge: run %d has schema %q, want %q", i+1, p.Schema, Schema)
		}
		if p.Meta.Engine != first.Meta.Engine {
			return nil, fmt.Errorf("merge: run %d ran on engine %q, run 1 on %q: not parts of one load", i+1, p.Meta.Engine, first.Meta.Engine)
		}
		s, err := time.Parse(time.RFC3339Nano, p.Started)
		if err != nil {
			return nil, fmt.Errorf("merge: run %d: started: %w", i+1, err)
		}
		e := s.Add(time.Duration(p.DurationS * float64(time.Second)))
		if start.IsZero() || s.Before(start) {
			start = s
		}
		if e.After(end) {
			end = e
		}
		for _, sc := range p.Meta.Scenarios {
			if !slices.Contains(m.Meta.Scenarios, sc) {
				m.Meta.Scenarios = append(m.Meta.Scenarios, sc)
			}
		}
		m.Meta.MaxVUs += p.Meta.MaxVUs
		if p.Status == loadgen.StatusAborted && m.Status != loadgen.StatusAborted {
			m.Status, m.AbortCause, m.AbortReason = loadgen.StatusAborted, p.AbortCause, p.AbortReason
		}
		m.Partial = m.Partial || p.Partial
		m.Lost = append(m.Lost, p.Lost...)
		addTotals(&m.Totals, p.Totals)
	}
	m.Started = start.UTC().Format(time.RFC3339Nano)
	m.Ended = end.UTC().Format(time.RFC3339Nano)
	secs := end.Sub(start).Seconds()
	m.DurationS = round3(secs)
	if secs > 0 {
		m.Totals.RPS = round3(float64(m.Totals.Completed+m.Totals.Failed) / secs)
	}

	all, allSvc := &histSum{}, &histSum{}
	names := map[string]bool{}
	for _, p := range parts {
		for name := range p.Requests {
			names[name] = true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(names)) {
		rq := Request{StatusCodes: map[string]int64{}, Errors: map[string]int64{}}
		lat, svc := &histSum{}, &histSum{}
		for i, p := range parts {
			q, ok := p.Requests[name]
			if !ok {
				continue
			}
			addTotals(&rq.Totals, q.Totals)
			addCounts(rq.StatusCodes, q.StatusCodes)
			addCounts(rq.Errors, q.Errors)
			for class, msg := range q.ErrorSamples {
				if _, ok := rq.ErrorSamples[class]; !ok {
					if rq.ErrorSamples == nil {
						rq.ErrorSamples = map[string]string{}
					}
					rq.ErrorSamples[class] = msg
				}
			}
			if err := lat.add(p.Histograms[name]); err != nil {
				return nil, fmt.Errorf("merge: run %d: histograms[%q]: %w", i+1, name, err)
			}
			if err := svc.add(p.ServiceHist[name]); err != nil {
				return nil, fmt.Errorf("merge: run %d: service_histograms[%q]: %w", i+1, name, err)
			}
		}
		if secs > 0 {
			rq.Totals.RPS = round3(float64(rq.Totals.Completed+rq.Totals.Failed) / secs)
		}
		rq.LatencyMs, rq.ServiceMs = lat.summary(), svc.summary()
		if lat.h != nil {
			m.Histograms[name] = encode(lat.h)
			all.merge(lat.h)
		}
		if svc.h != nil {
			m.ServiceHist[name] = encode(svc.h)
			allSvc.merge(svc.h)
		}
		m.Requests[name] = rq
	}
	m.LatencyMs, m.ServiceMs = all.summary(), allSvc.summary()

	if err := m.mergeIntervals(parts); err != nil {
		return nil, err
	}
	m.mergeThresholds(parts, all.h)
	if m.Status != loadgen.StatusAborted {
		for _, th := range m.Thresholds {
			if !th.Passed {
				m.Status = loadgen.StatusFailed
			}
		}
	}
	var clusters []json.RawMessage
	for _, p := range parts {
		if len(p.Cluster) > 0 {
			clusters = append(clusters, p.Cluster)
		}
	}
	switch len(clusters) {
	case 0:
	case 1:
		m.Cluster = clusters[0]
	default:
		// Each coordinator's report, in the order of the parts.
		m.Cluster, _ = json.Marshal(map[string][]json.RawMessage{"coordinators": clusters})
	}
	return m, nil
}

// addTotals adds b's counts to a; maxima take the larger, RPS is left to
// the caller.
func addTotals(a *Totals, b Totals) {
	a.Scheduled += b.Scheduled
	a.Sent += b.Sent
	a.Completed += b.Completed
	a.Failed += b.Failed
	a.Dropped += b.Dropped
	a.Lost += b.Lost
	a.InflightAtStop += b.InflightAtStop
	a.BytesSent += b.BytesSent
	a.BytesReceived += b.BytesReceived
	a.LateArrivals += b.LateArrivals
	a.MaxLagMs = max(a.MaxLagMs, b.MaxLagMs)
	a.MaxStallMs = max(a.MaxStallMs, b.MaxStallMs)
	a.HostStealPct = max(a.HostStealPct, b.HostStealPct)
}

func addCounts(a, b map[string]int64) {
	for k, n := range b {
		a[k] += n
	}
}

// histSum merges encoded histograms; h is nil until one is added.
type histSum struct{ h *hdr.Histogram }

func (s *histSum) add(enc string) error {
	if enc == "" {
		return nil
	}
	h, err := hdr.Decode([]byte(enc))
	if err != nil {
		return err
	}
	s.merge(h)
	return nil
}

func (s *histSum) merge(h *hdr.Histogram) {
	if s.h == nil {
		s.h = hdr.New(h.LowestTrackableValue(), h.HighestTrackableValue(), int(h.SignificantFigures()))
	}
	s.h.Merge(h)
}

func (s *histSum) summary() Latency {
	if s.h == nil {
		return Latency{}
	}
	return latency(loadgen.Summarize(s.h))
}

// mergeIntervals adds up the parts' seconds of the same number.
func (m *Run) mergeIntervals(parts []*Run) error {
	byT := map[int]*Interval{}
	hists := map[int]map[string]*histSum{}
	for i, p := range parts {
		for _, iv := range p.Intervals {
			x, ok := byT[iv.T]
			if !ok {
				x = &Interval{T: iv.T}
				byT[iv.T], hists[iv.T] = x, map[string]*histSum{}
			}
			x.EndS = max(x.EndS, iv.EndS)
			x.Scheduled += iv.Scheduled
			x.Sent += iv.Sent
			x.Completed += iv.Completed
			x.Failed += iv.Failed
			x.Dropped += iv.Dropped
			x.Inflight += iv.Inflight
			x.StallMs = max(x.StallMs, iv.StallMs)
			x.StealPct = max(x.StealPct, iv.StealPct)
			if len(iv.Errors) > 0 && x.Errors == nil {
				x.Errors = map[string]int64{}
			}
			addCounts(x.Errors, iv.Errors)
			for name, enc := range iv.Histograms {
				hs := hists[iv.T][name]
				if hs == nil {
					hs = &histSum{}
					hists[iv.T][name] = hs
				}
				if err := hs.add(enc); err != nil {
					return fmt.Errorf("merge: run %d: intervals[t=%d].histograms[%q]: %w", i+1, iv.T, name, err)
				}
			}
		}
	}
	for _, t := range slices.Sorted(maps.Keys(byT)) {
		x := byT[t]
		all := &histSum{}
		for _, name := range slices.Sorted(maps.Keys(hists[t])) {
			h := hists[t][name].h
			if x.Histograms == nil {
				x.Histograms = map[string]string{}
			}
			x.Histograms[name] = encode(h)
			all.merge(h)
		}
		x.LatencyMs = all.summary()
		m.Intervals = append(m.Intervals, *x)
	}
	return nil
}

// mergeThresholds evaluates the parts' thresholds again on the merged
// run where it can (Merge).
func (m *Run) mergeThresholds(parts []*Run, all *hdr.Histogram) {
	type key struct{ metric, expr string }
	var order []key
	passedAll := map[key]bool{}
	abort := map[key]bool{}
	for _, p := range parts {
		for _, th := range p.Thresholds {
			k := key{th.Metric, th.Expr}
			if _, seen := passedAll[k]; !seen {
				order = append(order, k)
				passedAll[k] = true
			}
			passedAll[k] = passedAll[k] && th.Passed
			abort[k] = abort[k] || th.Abort
		}
	}
	for _, k := range order {
		x := Threshold{Metric: k.metric, Expr: k.expr, Abort: abort[k]}
		if v, ok := m.thresholdValue(k.metric, k.expr, all); ok {
			t, _ := scenarios.ParseThreshold(k.metric, k.expr)
			x.Passed = !math.IsNaN(v) && t.Compare(v)
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				x.Value = &v
			}
		} else {
			x.Passed = passedAll[k]
			x.Note = "not measurable from run.json: passed only if it passed in every part"
		}
		m.Thresholds = append(m.Thresholds, x)
	}
}

// thresholdValue is the value of a threshold on the merged run, when
// run.json holds what it measures: http_req_duration, http_req_failed's
// rate, the counters (http_reqs, iterations, dropped_iterations, data_sent,
// data_received), overall or with only a name tag, as loadgen evaluates
// them.
func (m *Run) thresholdValue(metric, expr string, all *hdr.Histogram) (float64, bool) {
	t, err := scenarios.ParseThreshold(metric, expr)
	if err != nil || len(t.Tags) > 1 || (len(t.Tags) == 1 && t.Tags["name"] == "") {
		return 0, false
	}
	h, tot := all, m.Totals
	if name := t.Tags["name"]; name != "" {
		rq, ok := m.Requests[name]
		if !ok {
			return math.NaN(), true
		}
		tot = rq.Totals
		if h, err = m.Histogram(name); err != nil {
			h = nil
		}
	}
	e := t.Condition()
	switch {
	case t.Metric == "http_req_duration":
		return e.OfTrend(h), true
	case t.Metric == "http_req_failed" && t.Agg == "rate":
		return e.OfRate(tot.Failed, tot.Completed+tot.Failed), true
	}
	counter := func(n int64) (float64, bool) {
		return e.OfCounter(n, time.Duration(m.DurationS*float64(time.Second))), true
	}
	switch t.Metric {
	case "http_reqs", "iterations":
		return counter(tot.Completed + tot.Failed)
	case "dropped_iterations":
		if len(t.Tags) > 0 {
			return math.NaN(), true // arrivals are dropped before a request is chosen
		}
		return counter(tot.Dropped)
	case "data_sent":
		return counter(tot.BytesSent)
	case "data_received":
		return counter(tot.BytesReceived)
	}
	return 0, false
}

// MergeFiles reads every path (ReadFile: an invalid one is
// scenarios.Errors, 104 in the CLI) and merges them (Merge).
func MergeFiles(paths ...string) (*Run, error) {
	runs := make([]*Run, 0, len(paths))
	for _, p := range paths {
		r, err := ReadFile(p)
		if err != nil {
			return nil, err
		}
		runs = append(runs, r)
	}
	m, err := Merge(runs...)
	if err != nil {
		return nil, err
	}
	return m, nil
}
