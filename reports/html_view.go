package reports

import (
	"cmp"
	"fmt"
	"html/template"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/loadcap/loadcap/capacity"
	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/scenarios/slo"
)

// The view model: what the template shows, every string formatted.

type page struct {
	Title   string
	Version string
	Verdict verdictView
	Nav     []navItem
	Drill   *drillView
	Run     *runView
	Find    *findView
	Plan    *planView
	Verify  *verifyView
	Sim     *simulateView
	Compare *compareView
	Data    template.JS
	CSS     template.CSS
	Script  template.JS
}

type navItem struct{ ID, Label string }

type verdictView struct {
	Pass     bool
	ExitCode int
	Meaning  string
	Stop     *stopView // a drill stopped early
	Cards    []card
}

type card struct{ Label, Value, Note, Class string }

type kv struct{ Key, Value string }

type note struct {
	Level string // "ok", "warn" or "bad"
	Text  string
}

type figure struct {
	ID      string
	Caption string
	SVG     template.HTML
	Frame   string // JSON for the hover script
}

type runView struct {
	Meta        []kv
	LatencyFrom string // what the latencies count from
	Thresholds  []thresholdRow
	Requests    []requestRow
	Latency     []figure
	Traffic     []figure
	Errors      []figure
	TopErrors   []errorRow
	Dist        []figure
	Notes       []note
}

type thresholdRow struct {
	Metric, Expr, Value string
	Passed, Abort       bool
}

type requestRow struct {
	Name, Count, RPS, Errors, ErrorPct              string
	P50, P90, P95, P99, P999, Max, Mean, ServiceP99 string
	All, Failing                                    bool
}

type errorRow struct{ Class, Request, Count, Share, Sample string }

func buildPage(in HTMLInput) (*page, error) {
	p := &page{Title: title(in), CSS: template.CSS(pageCSS), Script: template.JS(pageJS)}
	p.Verdict = verdictView{Pass: in.ExitCode == 0, ExitCode: in.ExitCode, Meaning: exitMeaning(in.ExitCode)}
	var err error
	if d := in.Drill; d != nil {
		if p.Drill, err = buildDrill(in); err != nil {
			return nil, err
		}
		p.Verdict.Stop = stopHeadline(d)
		p.Nav = append(p.Nav, navItem{"drill", "Drill"})
		if p.Drill.Guard != nil {
			p.Nav = append(p.Nav, navItem{"guard", "Guard"})
		}
		if len(p.Drill.Services) > 0 || p.Drill.PlanError != "" {
			p.Nav = append(p.Nav, navItem{"services", "Services"})
		}
		if p.Drill.PreFlight != nil || p.Drill.Audit != nil {
			p.Nav = append(p.Nav, navItem{"isolation", "Isolation"})
		}
		if len(p.Drill.Manifests) > 0 {
			p.Nav = append(p.Nav, navItem{"manifests", "Manifests"})
		}
	}
	if in.Run != nil {
		p.Version = in.Run.Meta.Version
		if p.Run, err = buildRun(in); err != nil {
			return nil, err
		}
		p.Nav = append(p.Nav, navItem{"run", "Run"})
		if len(p.Run.Latency) > 0 {
			p.Nav = append(p.Nav, navItem{"latency", "Latency"}, navItem{"traffic", "Traffic"})
		}
		if len(p.Run.Errors) > 0 || len(p.Run.TopErrors) > 0 {
			p.Nav = append(p.Nav, navItem{"errors", "Errors"})
		}
		p.Nav = append(p.Nav, navItem{"distribution", "Distribution"}, navItem{"quality", "Data quality"})
	}
	if in.Find != nil {
		if p.Find, err = buildFind(in.Find, in.Drill != nil); err != nil {
			return nil, err
		}
		p.Nav = append(p.Nav, navItem{"capacity", map[bool]string{true: "Stages", false: "Capacity"}[in.Drill != nil]})
	}
	if in.Plan != nil {
		p.Plan = buildPlan(in.Plan)
		p.Nav = append(p.Nav, navItem{"plan", "Plan"})
	}
	if in.Verify != nil {
		p.Verify = buildVerify(in.Verify)
		p.Nav = append(p.Nav, navItem{"verify", "Verification"})
	}
	if in.Simulate != nil {
		if p.Sim, err = buildSimulate(in.Simulate); err != nil {
			return nil, err
		}
		p.Nav = append(p.Nav, navItem{"simulate", "Autoscaling"})
	}
	if in.Comparison != nil || in.Baseline != nil {
		if p.Compare, err = buildCompare(in); err != nil {
			return nil, err
		}
		p.Nav = append(p.Nav, navItem{"compare", "Comparison"})
	}
	p.Verdict.Cards = verdictCards(in, p)
	if p.Data, err = embed(in); err != nil {
		return nil, err
	}
	return p, nil
}

func verdictCards(in HTMLInput, p *page) []card {
	var cs []card
	if in.Drill != nil {
		cs = append(cs, drillCards(in, p.Drill)...)
	}
	if r := in.Run; r != nil {
		status := card{Label: "run", Value: r.Status, Class: "ok"}
		if r.Status != "passed" {
			status.Class = "bad"
		}
		if r.AbortReason != "" && p.Verdict.Stop == nil { // a drill's stop heads the page already
			status.Note = r.AbortReason
		}
		cs = append(cs, status)
		t := r.Totals
		cs = append(cs, card{Label: "requests", Value: count(t.Completed + t.Failed), Note: fmt.Sprintf("%.1f req/s over %s", t.RPS, seconds(r.DurationS))})
		if len(p.Run.Requests) > 0 {
			all := p.Run.Requests[len(p.Run.Requests)-1]
			cs = append(cs, card{Label: "latency p99", Value: all.P99, Note: "p50 " + all.P50 + " · max " + all.Max})
			e := card{Label: "errors", Value: all.ErrorPct, Note: all.Errors + " failed", Class: "ok"}
			if t.Failed > 0 {
				e.Class = "warn"
			}
			cs = append(cs, e)
		}
		if n := len(r.Thresholds); n > 0 {
			ok := 0
			for _, th := range r.Thresholds {
				if th.Passed {
					ok++
				}
			}
			c := card{Label: "thresholds", Value: fmt.Sprintf("%d of %d passed", ok, n), Class: "ok"}
			if ok < n {
				c.Class = "bad"
			}
			cs = append(cs, c)
		}
	}
	if f := in.Find; f != nil {
		c := card{Label: "max QPS at SLO", Value: rate(f.MaxQPS) + " req/s", Note: f.SLO, Class: "ok"}
		switch {
		case in.Drill != nil && f.MaxQPS == 0:
			c.Class, c.Note = "bad", "no stage met "+f.SLO
		case in.Drill != nil:
			// A drill has no soak: its figure is the highest stage that passed.
			c.Note = "the highest stage that passed · " + f.SLO
		case f.MaxQPS == 0:
			c.Class, c.Note = "bad", "no rate met "+f.SLO
		case !f.Confirmed:
			c.Class, c.Note = "warn", "not confirmed by the soak · "+f.SLO
		default:
			c.Note = "confirmed by a soak · " + f.SLO
		}
		cs = append(cs, c)
	}
	if pl := in.Plan; pl != nil {
		cs = append(cs, card{Label: "replicas for the peak", Value: fmt.Sprintf("%d (%+d)", pl.Totals.Replicas, pl.Totals.Delta),
			Note: fmt.Sprintf("%s req/s at the entry · bottleneck %s", rate(pl.EntryQPS), pl.Bottleneck.Service)})
	}
	if c := in.Comparison; c != nil {
		v := card{Label: "vs baseline", Value: "no regression", Class: "ok"}
		var worse []string
		for _, ch := range c.Checks {
			if ch.Regressed {
				worse = append(worse, ch.Request+" "+ch.Allowance+" "+ch.Change)
			}
		}
		if c.Regressed {
			v.Value, v.Class = "regression", "bad"
			v.Note = strings.Join(worse[:min(len(worse), 3)], " · ")
			if len(worse) > 3 {
				v.Note += fmt.Sprintf(" · %d more", len(worse)-3)
			}
		} else {
			for _, ch := range c.Checks {
				if a, err := slo.ParseAllowance(ch.Allowance); err == nil && ch.Request == "all" && a.Metric == "p" {
					v.Note = a.Expr().Name() + " " + ch.Change
					break
				}
			}
		}
		cs = append(cs, v)
	}
	return cs
}

// ---- the run ----

func buildRun(in HTMLInput) (*runView, error) {
	r := in.Run
	v := &runView{}
	v.Meta = runMeta(r)
	v.LatencyFrom = "latency from the intended send time"
	if r.Meta.Engine == EngineK6 {
		v.LatencyFrom = "latency as k6 measures it, from the actual send"
	}
	for _, th := range r.Thresholds {
		row := thresholdRow{Metric: th.Metric, Expr: th.Expr, Passed: th.Passed, Abort: th.Abort, Value: "no data"}
		if th.Value != nil {
			row.Value = strconv.FormatFloat(*th.Value, 'g', 4, 64)
		}
		v.Thresholds = append(v.Thresholds, row)
	}
	hists, all, err := decodeRun(r)
	if err != nil {
		return nil, err
	}
	for _, n := range r.RequestNames() {
		q := r.Requests[n]
		v.Requests = append(v.Requests, newRequestRow(n, q.Totals, hists[n], q.ServiceMs.P99, false))
	}
	v.Requests = append(v.Requests, newRequestRow("all", r.Totals, all, r.ServiceMs.P99, true))
	v.TopErrors = topErrors(r)
	if len(r.Intervals) > 0 {
		tl := newTimeline(r)
		if v.Latency, err = latencyFigures(r, tl); err != nil {
			return nil, err
		}
		if v.Traffic, err = trafficFigures(r, tl); err != nil {
			return nil, err
		}
		if v.Errors, err = errorFigures(r, tl); err != nil {
			return nil, err
		}
	}
	if v.Dist, err = distFigures(r, hists, all); err != nil {
		return nil, err
	}
	v.Notes = qualityNotes(r)
	return v, nil
}

func runMeta(r *Run) []kv {
	m := []kv{{"status", r.Status}}
	if r.AbortReason != "" {
		m = append(m, kv{"abort reason", strings.TrimSpace(r.AbortReason + " " + r.AbortCause)})
	}
	add := func(k, v string) {
		if v != "" {
			m = append(m, kv{k, v})
		}
	}
	add("scenario file", r.Meta.File)
	add("engine", r.Meta.Engine)
	add("target", r.Meta.Target)
	add("scenarios", strings.Join(r.Meta.Scenarios, ", "))
	add("started", r.Started)
	add("ended", r.Ended)
	add("duration", seconds(r.DurationS))
	if r.Meta.MaxVUs > 0 {
		add("peak VUs", strconv.Itoa(r.Meta.MaxVUs))
	}
	t := r.Totals
	if r.Partial {
		add("scheduled", fmt.Sprintf("%s = sent %s + dropped %s + lost with agents %s", count(t.Scheduled), count(t.Sent), count(t.Dropped), count(t.Lost)))
	} else {
		add("scheduled", fmt.Sprintf("%s = sent %s + dropped %s", count(t.Scheduled), count(t.Sent), count(t.Dropped)))
	}
	add("sent", fmt.Sprintf("%s = completed %s + failed %s + in flight at stop %s", count(t.Sent), count(t.Completed), count(t.Failed), count(t.InflightAtStop)))
	add("bytes", byteSize(t.BytesSent)+" sent, "+byteSize(t.BytesReceived)+" received")
	add("loadcap", r.Meta.Version)
	return m
}

// decodeRun decodes every request name's latency histogram and their merge.
func decodeRun(r *Run) (map[string]*hdr.Histogram, *hdr.Histogram, error) {
	hists := map[string]*hdr.Histogram{}
	var all *hdr.Histogram
	for _, n := range r.RequestNames() {
		h, err := r.Histogram(n)
		if err != nil {
			return nil, nil, fmt.Errorf("histogram of %q: %w", n, err)
		}
		hists[n] = h
		if all == nil {
			all = hdr.New(h.LowestTrackableValue(), h.HighestTrackableValue(), int(h.SignificantFigures()))
		}
		all.Merge(h)
	}
	if all == nil {
		all = loadgen.NewHistogram(0)
	}
	return hists, all, nil
}

// exact is the distribution of h in ms, read off the histogram.
func exact(h *hdr.Histogram) Latency {
	if h == nil || h.TotalCount() == 0 {
		return Latency{}
	}
	q := h.ValueAtPercentilesSlice([]float64{50, 90, 95, 99, 99.9})
	us := func(v int64) float64 { return float64(v) / 1000 }
	return Latency{Count: h.TotalCount(), Min: us(h.Min()), Mean: h.Mean() / 1000,
		P50: us(q[0]), P90: us(q[1]), P95: us(q[2]), P99: us(q[3]), P999: us(q[4]), Max: us(h.Max())}
}

func newRequestRow(name string, t Totals, h *hdr.Histogram, svcP99 float64, all bool) requestRow {
	l := exact(h)
	n := t.Completed + t.Failed
	row := requestRow{Name: name, Count: count(n), RPS: rate(t.RPS), Errors: count(t.Failed), ErrorPct: "0%",
		P50: ms(l.P50), P90: ms(l.P90), P95: ms(l.P95), P99: ms(l.P99), P999: ms(l.P999), Max: ms(l.Max), Mean: ms(l.Mean),
		ServiceP99: ms(svcP99), All: all, Failing: t.Failed > 0}
	if n > 0 && t.Failed > 0 {
		row.ErrorPct = fmt.Sprintf("%.2f%%", 100*float64(t.Failed)/float64(n))
	}
	return row
}

func topErrors(r *Run) []errorRow {
	type e struct {
		class, req, sample string
		n                  int64
	}
	var es []e
	var total int64
	for _, n := range r.RequestNames() {
		q := r.Requests[n]
		for c, k := range q.Errors {
			es = append(es, e{c, n, q.ErrorSamples[c], k})
			total += k
		}
	}
	slices.SortFunc(es, func(a, b e) int {
		return cmp.Or(cmp.Compare(b.n, a.n), cmp.Compare(a.class, b.class), cmp.Compare(a.req, b.req))
	})
	var rows []errorRow
	for _, x := range es[:min(len(es), 20)] {
		rows = append(rows, errorRow{Class: x.class, Request: x.req, Count: count(x.n),
			Share: fmt.Sprintf("%.1f%%", 100*float64(x.n)/float64(max(total, 1))), Sample: x.sample})
	}
	return rows
}

func qualityNotes(r *Run) []note {
	var ns []note
	t := r.Totals
	add := func(level, format string, a ...any) { ns = append(ns, note{level, fmt.Sprintf(format, a...)}) }
	if err := r.CheckTotals(); err != nil {
		add("bad", "the totals do not add up: %v", err)
	}
	if r.Status == "aborted" {
		add("bad", "the run was aborted (%s): its figures cover only the time before the stop", strings.TrimSpace(r.AbortReason+" "+r.AbortCause))
	}
	for _, l := range r.Lost {
		add("bad", "partial result: agent %s was lost at %.1fs (%.1f%% of the load, %s planned arrivals not reported sent): %s",
			l.Agent, l.AtS, 100*l.Share, count(l.Unsent), l.Reason)
	}
	if t.Dropped > 0 {
		add("warn", "%s arrivals (%.2f%% of %s scheduled) were never sent: no VU was free (peak %d) or the backlog was full; the target was saturated or max VUs too low",
			count(t.Dropped), 100*float64(t.Dropped)/float64(max(t.Scheduled, 1)), count(t.Scheduled), r.Meta.MaxVUs)
	}
	if n := r.HostNote(); n != "" {
		add("warn", "%s", n)
	}
	if n := r.IntervalsNote(); n != "" {
		add("warn", "%s", n)
	}
	if r.FoldS > 1 {
		secs, _ := r.Seconds()
		add("ok", "the charts over time show the run's %d seconds folded into %d-second steps (percentiles exact within each step)", secs, r.FoldS)
	}
	if t.LateArrivals > 0 {
		add("warn", "the generator fell behind its schedule: %s arrivals were sent over 10 ms late, the worst by %s; latency includes the delay: give loadcap more CPU or more agents",
			count(t.LateArrivals), ms(t.MaxLagMs))
	}
	if r.DurationS > 0 && t.Scheduled > 0 {
		intended, sent := float64(t.Scheduled)/r.DurationS, float64(t.Sent)/r.DurationS
		short := 0
		for _, iv := range r.Intervals {
			if iv.Scheduled > 0 && float64(iv.Sent) < 0.95*float64(iv.Scheduled) {
				short++
			}
		}
		level := "ok"
		if sent < 0.99*intended || short > 0 {
			level = "warn"
		}
		unit := "seconds"
		if r.FoldS > 1 {
			unit = fmt.Sprintf("%d-second steps", r.FoldS)
		}
		add(level, "intended %.1f req/s, sent %.1f req/s (%.1f%%), completed or failed %.1f req/s; in %d of %d %s under 95%% of the schedule was sent",
			intended, sent, 100*sent/intended, t.RPS, short, len(r.Intervals), unit)
	}
	if t.InflightAtStop > 0 {
		add("warn", "%s requests were still in flight when the run stopped; they count as sent but have no latency", count(t.InflightAtStop))
	}
	if l, s := r.LatencyMs.P99, r.ServiceMs.P99; s > 0 && l > 1.5*s {
		add("warn", "latency p99 %s is well above service time p99 %s: requests waited to be sent (the generator's queue or the target's accept backlog); latency counts from the intended send time, so the wait is in it",
			ms(l), ms(s))
	}
	if len(r.Intervals) == 0 {
		add("warn", "the run has no per-second data: the charts over time are empty")
	}
	if len(ns) == 0 || (len(ns) == 1 && ns[0].Level == "ok") {
		add("ok", "every scheduled arrival was sent on time and every request finished: the latency figures are complete")
	}
	return ns
}

// ---- capacity find ----

type findView struct {
	Drill   bool // the steps are a drill's stages
	Cards   []card
	Notes   []string
	Clauses []string
	Steps   []stepRow
	Charts  []figure
	USL     []kv
	USLNote []string
	// Services: mean latency per scraped service and step.
	SvcNames       []string
	SvcRows        []svcRow
	FirstSaturated string
}

type stepRow struct {
	N, Phase, Offered, Achieved, Concurrency, P50, P99, P999, Errors, Dropped, Reason string
	Clauses                                                                           []clauseCell
	Passed, LittleOK, Max, Knee                                                       bool
}

type clauseCell struct {
	Value          string
	Passed, Absent bool
}

type svcRow struct {
	Step, Offered string
	Cells         []svcCell
	Saturated     bool
}

type svcCell struct {
	Latency, Rate, CPU, Err string
	First                   bool
}

func buildFind(f *capacity.FindResult, drill bool) (*findView, error) {
	v := &findView{Notes: f.Notes, Drill: drill}
	confirmed := map[bool]string{true: "confirmed by a soak", false: "not confirmed"}[f.Confirmed]
	if drill {
		confirmed = "the highest stage that passed"
	}
	v.Cards = []card{
		{Label: "max QPS", Value: rate(f.MaxQPS) + " req/s", Note: confirmed},
		{Label: "saturation", Value: rate(f.SaturationQPS) + " req/s", Note: "the most any " + map[bool]string{true: "stage", false: "step"}[drill] + " achieved"},
		{Label: "SLO", Value: f.SLO},
	}
	if k := f.Knee; k != nil {
		v.Cards = append(v.Cards, card{Label: "knee", Value: rate(k.Throughput) + " req/s", Note: fmt.Sprintf("p99 %s at step %d", ms(k.P99Ms), k.Step)})
	}
	if f.FirstSaturated != "" {
		at := fmt.Sprintf("at step %d", f.FirstSaturatedStep)
		for _, st := range f.Steps {
			if drill && st.N == f.FirstSaturatedStep {
				at = "in stage " + st.Phase
			}
		}
		v.Cards = append(v.Cards, card{Label: "saturated first", Value: f.FirstSaturated, Note: at})
	}
	for _, st := range f.Steps {
		for _, c := range st.Clauses {
			if !slices.Contains(v.Clauses, c.Clause) {
				v.Clauses = append(v.Clauses, c.Clause)
			}
		}
	}
	maxStep := -1
	for i, st := range f.Steps {
		if st.Passed && st.Offered == f.MaxQPS {
			maxStep = i
		}
	}
	for i, st := range f.Steps {
		row := stepRow{N: strconv.Itoa(st.N), Phase: st.Phase, Offered: rate(st.Offered), Achieved: rate(st.Achieved),
			Concurrency: fmt.Sprintf("%.1f", st.Concurrency), P50: ms(st.LatencyMs.P50), P99: ms(st.LatencyMs.P99), P999: ms(st.LatencyMs.P999),
			Errors: fmt.Sprintf("%.2f%%", 100*st.ErrorRate), Dropped: count(st.Dropped), Reason: st.Reason,
			Passed: st.Passed, LittleOK: st.LittleOK, Max: i == maxStep, Knee: f.Knee != nil && f.Knee.Step == st.N}
		for _, name := range v.Clauses {
			cell := clauseCell{Absent: true}
			for _, c := range st.Clauses {
				if c.Clause == name {
					cell = clauseCell{Value: clauseValue(c), Passed: c.Passed}
				}
			}
			row.Clauses = append(row.Clauses, cell)
		}
		if st.Repeated {
			row.Reason += "; not judged: " + st.Disturbed + ", so the step was repeated"
		} else if st.Disturbed != "" {
			row.Reason += " (" + st.Disturbed + ")"
		}
		v.Steps = append(v.Steps, row)
	}
	var err error
	if v.Charts, err = findFigures(f, drill); err != nil {
		return nil, err
	}
	if u := f.USL; u != nil {
		se := func(x float64) string {
			if math.IsNaN(x) {
				return ""
			}
			return " ± " + strconv.FormatFloat(x, 'g', 3, 64)
		}
		v.USL = []kv{
			{"σ (contention)", strconv.FormatFloat(u.Sigma, 'g', 4, 64) + se(u.SigmaSE)},
			{"κ (coherency)", strconv.FormatFloat(u.Kappa, 'g', 4, 64) + se(u.KappaSE)},
			{"λ (one in flight)", strconv.FormatFloat(u.Lambda, 'g', 4, 64) + se(u.LambdaSE) + " req/s"},
		}
		if u.HasPeak {
			v.USL = append(v.USL, kv{"N* (peak concurrency)", fmt.Sprintf("%.1f", u.PeakN)}, kv{"Xmax (peak throughput)", rate(u.XMax) + " req/s"})
		} else {
			v.USL = append(v.USL, kv{"N* (peak concurrency)", "none (κ = 0): throughput rises towards the Amdahl limit"})
			if !math.IsInf(u.AmdahlLimit, 0) {
				v.USL = append(v.USL, kv{"Xmax (Amdahl limit λ/σ)", rate(u.AmdahlLimit) + " req/s"})
			}
		}
		v.USL = append(v.USL, kv{"R²", fmt.Sprintf("%.4f", u.R2)}, kv{"points", strconv.Itoa(u.Points)})
		v.USLNote = u.Warnings
	} else if f.USLError != "" {
		v.USLNote = []string{"no USL fit: " + f.USLError}
	}
	v.FirstSaturated = f.FirstSaturated
	for _, st := range f.Steps {
		for _, sv := range st.Services {
			if !slices.Contains(v.SvcNames, sv.Name) {
				v.SvcNames = append(v.SvcNames, sv.Name)
			}
		}
	}
	for _, st := range f.Steps {
		if len(st.Services) == 0 {
			continue
		}
		row := svcRow{Step: strconv.Itoa(st.N), Offered: rate(st.Offered), Saturated: st.N == f.FirstSaturatedStep && f.FirstSaturated != ""}
		for _, name := range v.SvcNames {
			cell := svcCell{Latency: "-"}
			for _, sv := range st.Services {
				if sv.Name != name {
					continue
				}
				if sv.Error != "" {
					cell = svcCell{Latency: "scrape failed", Err: sv.Error}
					break
				}
				cell = svcCell{Latency: ms(sv.MeanLatencyMs), Rate: rate(sv.RequestRate), CPU: fmt.Sprintf("%.2f", sv.CPUCores),
					First: row.Saturated && sv.Name == f.FirstSaturated}
			}
			row.Cells = append(row.Cells, cell)
		}
		v.SvcRows = append(v.SvcRows, row)
	}
	return v, nil
}

func clauseValue(c capacity.ClauseResult) string {
	unit := c.Unit
	if unit == "" { // a find.json from before units were recorded
		if e, err := slo.ParseClause(c.Clause); err == nil {
			unit = e.Unit()
		}
	}
	switch unit {
	case "ratio":
		return fmt.Sprintf("%.2f%%", 100*c.Value)
	case "/s":
		return fmt.Sprintf("%.4g/s", c.Value)
	}
	return ms(c.Value)
}

// sloLimits are the latency limits (ms) of an SLO's clauses, for reference
// lines: "p(99)<200ms" → 200.
func sloLimits(text string) []limit {
	s, err := slo.Parse(text)
	if err != nil {
		return nil
	}
	var out []limit
	for _, c := range s.Clauses {
		if c.Agg.Latency() {
			out = append(out, limit{c.Text, c.Limit})
		}
	}
	return out
}

type limit struct {
	label string
	ms    float64
}

var thresholdRE = regexp.MustCompile(`^\s*(p\(\d+(?:\.\d+)?\)|avg|med|min|max)\s*<=?\s*([0-9]+(?:\.[0-9]+)?)\s*$`)

// thresholdLimits are the latency thresholds' limits (ms).
func thresholdLimits(r *Run) []limit {
	var out []limit
	for _, th := range r.Thresholds {
		if !strings.HasPrefix(th.Metric, "http_req_duration") && !strings.HasPrefix(th.Metric, "grpc_req_duration") {
			continue
		}
		m := thresholdRE.FindStringSubmatch(th.Expr)
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			continue
		}
		label := th.Expr
		if i := strings.IndexByte(th.Metric, '{'); i >= 0 {
			label = th.Metric[i:] + " " + th.Expr
		}
		out = append(out, limit{label, v})
	}
	return out
}

// ---- the plan ----

type planView struct {
	Summary     []kv
	Services    []planRow
	Totals      planRow
	Warnings    []string
	SensHeader  []string
	SensEntry   []string
	SensRows    []sensRow
	SensTotal   []string
	Bottleneck  string
	FirstToSat  string
	Headroom    string
	Redundancy  string
	MaxReplicas string
}

type planRow struct {
	Name, Capacity, Fanout, Load, Safe, Current, Replicas, Delta, Max, SatNow, SatPlanned string
	Bottleneck, First, OverBudget                                                         bool
}

type sensRow struct {
	Name  string
	Cells []string
}

func buildPlan(p *capacity.PlanResult) *planView {
	v := &planView{Warnings: p.Warnings, Bottleneck: p.Bottleneck.Service, FirstToSat: p.FirstToSaturate.Service}
	v.Summary = []kv{
		{"plan", p.Plan},
		{"peak at the entry", rate(p.EntryQPS) + " req/s"},
		{"headroom", fmt.Sprintf("%g%% (a replica carries at most %g%% of its capacity at the peak)", 100*p.Headroom, 100*(1-p.Headroom))},
		{"redundancy", p.Redundancy},
	}
	if w := p.Window; w != nil {
		v.Summary = append(v.Summary, kv{"window", w.Start.Format("2006-01-02 15:04") + " – " + w.End.Format("2006-01-02 15:04") + " " + w.Timezone})
	}
	if p.MaxReplicas > 0 {
		v.Summary = append(v.Summary, kv{"replica budget", strconv.Itoa(p.MaxReplicas)})
	}
	bn := p.Bottleneck
	v.Summary = append(v.Summary, kv{"bottleneck", fmt.Sprintf("%s: %s entry req/s per replica; its current replicas saturate at %s entry req/s",
		bn.Service, rate(bn.EntryQPSPerReplica), rate(bn.SaturatesAtCurrentQPS))})
	if f := p.FirstToSaturate; f.Service != "" {
		v.Summary = append(v.Summary, kv{"saturates first as deployed", fmt.Sprintf("%s, at %s entry req/s (%.0f%% of the peak)", f.Service, rate(f.EntryQPS), 100*f.EntryQPS/p.EntryQPS)})
	}
	for _, s := range p.Services {
		v.Services = append(v.Services, planRow{Name: s.Name, Capacity: rate(s.CapacityQPS), Fanout: strconv.FormatFloat(s.Fanout, 'g', 4, 64),
			Load: rate(s.LoadQPS), Safe: rate(s.SafeQPSPerReplica), Current: strconv.Itoa(s.Current), Replicas: strconv.Itoa(s.Replicas),
			Delta: fmt.Sprintf("%+d", s.Delta), Max: strconv.Itoa(s.MaxReplicas), SatNow: rate(s.SaturatesAtCurrentQPS), SatPlanned: rate(s.SaturatesAtPlannedQPS),
			Bottleneck: s.Name == bn.Service, First: s.Name == p.FirstToSaturate.Service, OverBudget: s.OverBudget})
	}
	v.Totals = planRow{Name: "total", Current: strconv.Itoa(p.Totals.Current), Replicas: strconv.Itoa(p.Totals.Replicas), Delta: fmt.Sprintf("%+d", p.Totals.Delta)}
	for _, row := range p.Sensitivity {
		v.SensHeader = append(v.SensHeader, fmt.Sprintf("%+d%%", row.ChangePct))
		v.SensEntry = append(v.SensEntry, rate(row.EntryQPS))
		v.SensTotal = append(v.SensTotal, strconv.Itoa(row.Total))
	}
	for _, s := range p.Services {
		r := sensRow{Name: s.Name}
		for _, row := range p.Sensitivity {
			r.Cells = append(r.Cells, strconv.Itoa(row.Replicas[s.Name]))
		}
		v.SensRows = append(v.SensRows, r)
	}
	return v
}

// ---- the comparison ----

type compareView struct {
	Regressed bool
	Resamples int
	Side      []sideRow
	Checks    []checkRow
	Charts    []figure
	Baseline  []kv
}

type sideRow struct {
	Figure, Baseline, Run, Delta string
	Worse, Better                bool
}

type checkRow struct {
	Request, Allowance, Baseline, Run, Change, CI, Noise, Verdict string
	Regressed, WithinNoise                                        bool
}

func buildCompare(in HTMLInput) (*compareView, error) {
	v := &compareView{}
	if c := in.Comparison; c != nil {
		v.Regressed, v.Resamples = c.Regressed, c.Resamples
		for _, ch := range c.Checks {
			row := checkRow{Request: ch.Request, Allowance: ch.Allowance, Baseline: checkFigure(ch, ch.Baseline), Run: checkFigure(ch, ch.Run),
				Change: ch.Change, CI: "n/a", Noise: ch.Noise, Verdict: "ok", Regressed: ch.Regressed}
			if ch.CI != nil {
				row.CI = ch.CI.String(ch.Unit)
			}
			if ch.Regressed {
				row.Verdict = "REGRESSED"
			} else if beyondPoint(ch) {
				row.Verdict, row.WithinNoise = "within noise", true
			}
			v.Checks = append(v.Checks, row)
		}
	}
	b, r := in.Baseline, in.Run
	if b == nil || r == nil {
		return v, nil
	}
	v.Baseline = []kv{{"baseline started", b.Started}, {"baseline duration", seconds(b.DurationS)}, {"baseline scenario file", b.Meta.File}, {"baseline status", b.Status}}
	_, ball, err := decodeRun(b)
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	_, rall, err := decodeRun(r)
	if err != nil {
		return nil, err
	}
	bl, rl := exact(ball), exact(rall)
	errRate := func(t Totals) float64 {
		if n := t.Completed + t.Failed; n > 0 {
			return float64(t.Failed) / float64(n)
		}
		return 0
	}
	type fig struct {
		name   string
		b, r   float64
		format func(float64) string
		good   int // +1: a rise is good (rps), −1: a rise is bad, 0: neither
	}
	figs := []fig{
		{"requests", float64(b.Totals.Completed + b.Totals.Failed), float64(r.Totals.Completed + r.Totals.Failed), func(x float64) string { return count(int64(x)) }, 0},
		{"duration", b.DurationS, r.DurationS, seconds, 0},
		{"rps", b.Totals.RPS, r.Totals.RPS, rate, 1},
		{"error rate", errRate(b.Totals), errRate(r.Totals), func(x float64) string { return fmt.Sprintf("%.3f%%", 100*x) }, -1},
		{"p50", bl.P50, rl.P50, ms, -1}, {"p90", bl.P90, rl.P90, ms, -1}, {"p95", bl.P95, rl.P95, ms, -1},
		{"p99", bl.P99, rl.P99, ms, -1}, {"p99.9", bl.P999, rl.P999, ms, -1}, {"max", bl.Max, rl.Max, ms, -1},
		{"mean", bl.Mean, rl.Mean, ms, -1},
	}
	for _, f := range figs {
		row := sideRow{Figure: f.name, Baseline: f.format(f.b), Run: f.format(f.r), Delta: "±0"}
		d := f.r - f.b
		switch {
		case d == 0:
		case f.name == "error rate":
			row.Delta = fmt.Sprintf("%+.3fpp", 100*d)
		case f.b != 0:
			row.Delta = fmt.Sprintf("%+.1f%%", 100*d/f.b)
		default:
			row.Delta = "new"
		}
		if d != 0 && f.good != 0 {
			row.Worse = (d > 0) == (f.good < 0)
			row.Better = !row.Worse
		}
		v.Side = append(v.Side, row)
	}
	if v.Charts, err = compareFigures(b, r, ball, rall); err != nil {
		return nil, err
	}
	return v, nil
}

func checkFigure(ch Check, v float64) string {
	if math.IsNaN(v) {
		return "no data"
	}
	a, _ := slo.ParseAllowance(ch.Allowance)
	switch a.Metric {
	case "rps":
		return rate(v) + "/s"
	case "error_rate":
		return fmt.Sprintf("%.3f%%", 100*v)
	}
	return ms(v)
}

// ---- formatting ----

// count groups the digits of n by thousands: 1,234,567.
func count(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// rate writes a rate in req/s with a precision that suits its size.
func rate(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1000:
		return count(int64(math.Round(v)))
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

func seconds(s float64) string {
	d := int(math.Round(s))
	switch {
	case s < 60:
		return strconv.FormatFloat(s, 'f', -1, 64) + " s"
	case d < 3600:
		return fmt.Sprintf("%dm%02ds", d/60, d%60)
	}
	return fmt.Sprintf("%dh%02dm%02ds", d/3600, d/60%60, d%60)
}

func sortedClasses(r *Run) []string {
	set := map[string]bool{}
	for _, iv := range r.Intervals {
		for c := range iv.Errors {
			set[c] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}
