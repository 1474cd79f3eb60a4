package reports

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/loadcap/loadcap/capacity"
	"github.com/loadcap/loadcap/capacity/drill"
	"github.com/loadcap/loadcap/internal/audit"
	"github.com/loadcap/loadcap/reports/chart"
)

// ---- the view ----

type drillView struct {
	Meta      []kv
	Stages    []drillStageRow
	Charts    []figure
	Guard     *guardView
	Services  []drillSvcRow
	Bound     bool   // some capacity is only a lower bound
	Saturated string // the bottleneck the drill found; "" none
	PlanError string
	PreFlight *preFlightView
	Audit     *auditView
	Manifests []drill.Manifest
}

type drillStageRow struct {
	N, Name, Window, Ramp, Hold, Rate, Achieved, P99, Verdict string
	Class                                                     string // ok, bad, warn or ""
}

type guardView struct {
	Settings []kv
	Rules    []guardRuleRow
}

type guardRuleRow struct {
	Name, Kind, Expr, Limit, K string
	// NoData is the rule's evaluations without data, "N of M", with why
	// the last had none; "-" when the drill did not run.
	NoData  string
	Silent  bool // some evaluations had no data
	Stopped bool
}

type stopView struct {
	Headline, Reason string
	Details          []kv
}

type drillSvcRow struct {
	Name, Capacity, PerReplica, Fanout, Measured, Stage string
	Bottleneck                                          bool
}

type preFlightView struct {
	OK       bool
	Summary  string
	Problems []string
	Signals  []string
	Error    string
}

type auditView struct {
	OK        bool
	Summary   string
	Tables    string
	Leaks     []audit.Leak
	Counts    []kv
	Unchecked []string
	Error     string
}

// stageStep is the step that measured stage i, named name: the step of
// that phase, numbered i+1 if several have the phase; nil for none.
func stageStep(f *capacity.FindResult, i int, name string) *capacity.Step {
	if f == nil {
		return nil
	}
	var st *capacity.Step
	for j := range f.Steps {
		if f.Steps[j].Phase == name && (st == nil || f.Steps[j].N == i+1) {
			st = &f.Steps[j]
		}
	}
	return st
}

// stageVerdicts are each stage's outcome: its step in the stages' find
// result, and where the drill stopped.
func stageVerdicts(d *drill.Report, f *capacity.FindResult) (verdict, class []string) {
	stopAt := -1
	if d.Stop != nil {
		for i, s := range d.Stages {
			if s.Name == d.Stop.Stage {
				stopAt = i
				break
			}
		}
	}
	for i, s := range d.Stages {
		st := stageStep(f, i, s.Name)
		v, c := "", ""
		switch {
		case st != nil && st.Passed:
			v, c = "passed", "ok"
		case st != nil:
			v, c = "FAILED: "+st.Reason, "bad"
		case f != nil:
			v, c = "not measured (no full second of hold)", "warn"
		}
		switch {
		case i == stopAt:
			by := "STOPPED"
			if d.Stop.Kind != "" {
				by = "STOPPED by the guard"
			}
			if v != "" && c != "warn" {
				v = by + " · " + v
			} else {
				v = by
			}
			c = "bad"
		case stopAt >= 0 && i > stopAt:
			v, c = "not run", ""
		}
		verdict, class = append(verdict, v), append(class, c)
	}
	return verdict, class
}

func buildDrill(in HTMLInput) (*drillView, error) {
	d := in.Drill
	v := &drillView{PlanError: d.PlanError, Manifests: d.Manifests}
	add := func(k, val string) {
		if val != "" {
			v.Meta = append(v.Meta, kv{k, val})
		}
	}
	add("drill id", d.ID)
	add("target", d.Target)
	add("drill plan", d.PlanFile)
	add("traffic", d.Traffic)
	if d.RecordedPeakQPS > 0 {
		add("recorded peak", rate(d.RecordedPeakQPS)+" req/s")
	}
	var total time.Duration
	for _, s := range d.Stages {
		total += s.Ramp + s.Hold
	}
	add("planned duration", fmt.Sprintf("%v in %d stages", total, len(d.Stages)))
	if r := in.Run; r != nil {
		add("started", r.Started)
		add("ran for", seconds(r.DurationS))
	}

	verdicts, classes := stageVerdicts(d, in.Find)
	var at time.Duration
	for i, s := range d.Stages {
		row := drillStageRow{N: strconv.Itoa(i + 1), Name: s.Name, Window: fmt.Sprintf("%v – %v", at, at+s.Ramp+s.Hold),
			Ramp: s.Ramp.String(), Hold: s.Hold.String(), Rate: rate(s.RatePerSec) + " req/s", Achieved: "-", P99: "-",
			Verdict: verdicts[i], Class: classes[i]}
		if s.Multiplier > 0 {
			row.Rate += fmt.Sprintf(" (%g× the recorded peak)", s.Multiplier)
		}
		if st := stageStep(in.Find, i, s.Name); st != nil {
			row.Achieved, row.P99 = rate(st.Achieved)+" req/s", ms(st.LatencyMs.P99)
		}
		at += s.Ramp + s.Hold
		v.Stages = append(v.Stages, row)
	}
	if len(d.Stages) > 0 {
		fig, err := drillTimeline(d, in.Run)
		if err != nil {
			return nil, err
		}
		v.Charts = append(v.Charts, fig)
	}

	if g := d.Guard; g != nil {
		v.Guard = buildGuard(g, d.Stop)
	}

	for _, s := range d.Services {
		row := drillSvcRow{Name: s.Name, Capacity: rate(s.CapacityQPS) + " req/s", PerReplica: rate(s.PerReplicaQPS) + " req/s",
			Fanout: strconv.FormatFloat(s.Fanout, 'g', 4, 64), Measured: "saturated: its capacity", Stage: s.Stage, Bottleneck: s.Saturated}
		switch {
		case s.Saturated:
			if v.Saturated == "" {
				v.Saturated = s.Name
			}
		case s.Method == "utilization":
			row.Measured = "utilization law: its rate / the share of its workers busy"
		default:
			row.Capacity, row.PerReplica = "≥ "+row.Capacity, "≥ "+row.PerReplica
			row.Measured = "≥ lower bound: it did not saturate"
			v.Bound = true
		}
		if s.Stage == "" {
			row.Stage = "-"
		}
		v.Services = append(v.Services, row)
	}

	if p := d.PreFlight; p != nil {
		pv := &preFlightView{OK: len(p.Problems) == 0 && len(p.Signals) == 0 && p.Error == "", Signals: p.Signals, Error: p.Error}
		for _, pr := range p.Problems {
			pv.Problems = append(pv.Problems, pr.String())
		}
		switch {
		case p.Error != "":
			pv.Summary = "the pre-flight check could not run"
		case pv.OK:
			pv.Summary = fmt.Sprintf("OK: %d tables have a proper shadow twin (%s)", len(p.Tables), strings.Join(p.Tables, ", "))
		default:
			pv.Summary = fmt.Sprintf("FAILED: %d problems in %d tables checked, %d signals unreachable", len(p.Problems), len(p.Tables), len(p.Signals))
		}
		v.PreFlight = pv
	}
	if a := d.Audit; a != nil {
		v.Audit = buildAudit(a)
	}
	return v, nil
}

func buildGuard(g *drill.GuardPlan, stop *drill.Stop) *guardView {
	v := &guardView{}
	k := g.Breaches
	if g.Every > 0 {
		v.Settings = append(v.Settings, kv{"evaluated every", g.Every.String()})
	}
	v.Settings = append(v.Settings, kv{"stops after", fmt.Sprintf("%d consecutive bad evaluations of a rule (K, unless the rule sets its own)", k)})
	if g.Prometheus != "" {
		v.Settings = append(v.Settings, kv{"Prometheus", g.Prometheus})
		loss := "stops the drill (fail safe)"
		if g.SignalLossContinue {
			loss = "does not stop the drill (the plan says continue)"
		}
		grace := "at once"
		if g.SignalLoss > 0 {
			grace = "for over " + g.SignalLoss.String()
		}
		v.Settings = append(v.Settings, kv{"signal loss", "a PromQL rule without data (Prometheus not answering, no series, only NaN) " +
			grace + " " + loss})
	}
	hot := "none"
	if g.HotSwitch != "" {
		hot = g.HotSwitch
	}
	v.Settings = append(v.Settings, kv{"hot switch", hot})
	for _, r := range g.Rules {
		row := guardRuleRow{Name: r.Name, Kind: r.Kind, Expr: r.Expr, Limit: "-", K: strconv.Itoa(k)}
		if r.Breaches > 0 {
			row.K = strconv.Itoa(r.Breaches)
		}
		var lim []string
		if r.Max != nil {
			lim = append(lim, "≤ "+strconv.FormatFloat(*r.Max, 'g', -1, 64))
		}
		if r.Min != nil {
			lim = append(lim, "≥ "+strconv.FormatFloat(*r.Min, 'g', -1, 64))
		}
		switch {
		case len(lim) > 0:
			row.Limit = strings.Join(lim, " and ")
		case r.Kind == "traffic":
			row.Limit = "in the expression"
		case r.Kind == "health":
			row.Limit = "HTTP 2xx"
		}
		var nd []string
		if r.Evaluations > 0 {
			n := fmt.Sprintf("%d of %d", r.NoData, r.Evaluations)
			if r.NoData > 0 && r.LastNoData != "" {
				n += " (last: " + r.LastNoData + ")"
			}
			nd = append(nd, n)
			row.Silent = r.NoData > 0
		}
		if r.OnNoData == "ignore" {
			nd = append(nd, "ignored by the rule (on_no_data: ignore)")
		}
		row.NoData = strings.Join(nd, "; ")
		if row.NoData == "" {
			row.NoData = "-"
		}
		row.Stopped = stop != nil && stop.Kind != "" && stop.Rule == r.Name
		v.Rules = append(v.Rules, row)
	}
	return v
}

func buildAudit(a *drill.Audit) *auditView {
	v := &auditView{Leaks: a.Leaks, Error: a.Error, Tables: strings.Join(a.Tables, ", ")}
	counts := a.Counts
	if counts == nil {
		counts = map[string]int{}
		for _, l := range a.Leaks {
			counts[l.Table]++
		}
	}
	total := 0
	tables := make([]string, 0, len(counts))
	for t, n := range counts {
		if n > 0 {
			tables = append(tables, t)
			total += n
		}
	}
	slices.Sort(tables)
	for _, t := range tables {
		listed := 0
		for _, l := range a.Leaks {
			if l.Table == t {
				listed++
			}
		}
		s := fmt.Sprintf("%s leaking rows", count(int64(counts[t])))
		if listed < counts[t] {
			s += fmt.Sprintf(", %s listed", count(int64(listed)))
		}
		v.Counts = append(v.Counts, kv{t, s})
	}
	for _, u := range a.Unchecked {
		v.Unchecked = append(v.Unchecked, u.String())
	}
	v.OK = a.Error == "" && total == 0 && len(a.Leaks) == 0
	switch {
	case a.Error != "":
		v.Summary = "the audit could not run: isolation is unknown"
	case v.OK && len(a.Unchecked) > 0:
		v.Summary = fmt.Sprintf("no leak in %d tables scanned; %d could not be checked", len(a.Tables), len(a.Unchecked))
	case v.OK:
		v.Summary = fmt.Sprintf("clean: no leaked row in the %d tables scanned", len(a.Tables))
	default:
		v.Summary = fmt.Sprintf("LEAKED: %s rows in %d of the %d tables scanned", count(int64(max(total, len(a.Leaks)))), len(tables), len(a.Tables))
	}
	return v
}

// stopHeadline is the verdict header's line about the stop.
func stopHeadline(d *drill.Report) *stopView {
	s := d.Stop
	if s == nil {
		return nil
	}
	v := &stopView{Headline: "STOPPED", Reason: s.Reason}
	if s.Kind != "" {
		v.Headline += " by the guard"
	}
	if s.Stage != "" {
		v.Headline += " in stage " + s.Stage
	}
	v.Headline += ":"
	if s.Rule != "" {
		r := s.Rule
		if s.Kind != "" {
			r += " (" + s.Kind + ")"
		}
		v.Details = append(v.Details, kv{"rule", r})
	}
	if s.Kind != "" && s.Kind != "switch" {
		v.Details = append(v.Details, kv{"value", stopFigure(s.Value, s.Unit)})
		if s.Limit != 0 || s.Kind == "traffic" || s.Kind == "promql" {
			v.Details = append(v.Details, kv{"limit", stopFigure(s.Limit, s.Unit)})
		}
	}
	if s.Consecutive > 1 {
		what := "breached"
		if s.Kind == "signal" {
			what = "without data"
		}
		v.Details = append(v.Details, kv{what, fmt.Sprintf("%d evaluations in a row", s.Consecutive)})
	}
	v.Details = append(v.Details, kv{"at", s.At.Round(time.Millisecond).String() + " since the start"})
	last := s.LastHealthy
	if last == "" {
		last = "none"
	}
	v.Details = append(v.Details, kv{"last healthy stage", last})
	return v
}

// stopFigure writes a breach's value in its unit.
func stopFigure(v float64, unit string) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	switch unit {
	case "ms":
		if v == 0 {
			return "0ms"
		}
		return ms(v)
	case "ratio":
		return fmt.Sprintf("%.2f%%", 100*v)
	case "s":
		return strconv.FormatFloat(v, 'f', -1, 64) + " s"
	case "status":
		if v == 0 {
			return "no answer"
		}
		return fmt.Sprintf("HTTP %.0f", v)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// drillCards are the verdict header's cards of a drill.
func drillCards(in HTMLInput, v *drillView) []card {
	d := in.Drill
	var cs []card
	if f := in.Find; f != nil && len(d.Stages) > 0 {
		passed := 0
		for _, st := range f.Steps {
			if st.Passed {
				passed++
			}
		}
		c := card{Label: "stages", Value: fmt.Sprintf("%d of %d passed", passed, len(d.Stages)), Class: "ok"}
		if passed < len(d.Stages) {
			c.Class = "bad"
		}
		if s := d.Stop; s != nil {
			c.Note = "stopped in " + s.Stage
		}
		cs = append(cs, c)
	}
	if v.Saturated != "" {
		for _, s := range d.Services {
			if s.Name == v.Saturated {
				cs = append(cs, card{Label: "bottleneck", Value: s.Name, Class: "warn",
					Note: fmt.Sprintf("saturated at %s req/s (%s per replica) in %s", rate(s.CapacityQPS), rate(s.PerReplicaQPS), s.Stage)})
				break
			}
		}
	} else if len(d.Services) > 0 {
		cs = append(cs, card{Label: "bottleneck", Value: "none found", Note: "no service saturated: every capacity is a lower bound"})
	}
	if a := v.Audit; a != nil {
		c := card{Label: "isolation audit", Value: "clean", Class: "ok", Note: a.Summary}
		switch {
		case a.Error != "":
			c.Value, c.Class = "not run", "bad"
		case !a.OK:
			c.Value, c.Class = "LEAKED", "bad"
		case len(a.Unchecked) > 0:
			c.Class = "warn"
		}
		cs = append(cs, c)
	}
	return cs
}

// drillTimeline draws the planned rate of the stages against the rate the
// run achieved, with the stages' starts and the stop marked.
func drillTimeline(d *drill.Report, r *Run) (figure, error) {
	var total time.Duration
	for _, s := range d.Stages {
		total += s.Ramp + s.Hold
	}
	label, scale := "seconds since start", 1.0
	if total.Seconds() > 900 || (r != nil && r.DurationS > 900) {
		label, scale = "minutes since start", 60
	}
	planned := chart.Series{Name: "planned rate", Dashed: true, Color: grey, X: []float64{0}, Y: []float64{0}}
	c := &chart.Chart{
		Title: "Drill stages: planned and achieved rate",
		X:     chart.Axis{Label: label, Zero: true},
		Y:     chart.Axis{Label: "req/s", Zero: true},
	}
	var at time.Duration
	for _, s := range d.Stages {
		c.VLines = append(c.VLines, chart.Ref{At: at.Seconds() / scale, Label: s.Name})
		if s.Ramp == 0 {
			planned.X, planned.Y = append(planned.X, at.Seconds()/scale), append(planned.Y, s.RatePerSec)
		}
		at += s.Ramp
		planned.X, planned.Y = append(planned.X, at.Seconds()/scale), append(planned.Y, s.RatePerSec)
		at += s.Hold
		planned.X, planned.Y = append(planned.X, at.Seconds()/scale), append(planned.Y, s.RatePerSec)
	}
	c.Series = append(c.Series, planned)
	if r != nil && len(r.Intervals) > 0 {
		sent := chart.Series{Name: "sent", Color: chart.Palette[0]}
		done := chart.Series{Name: "completed", Color: green}
		failed := chart.Series{Name: "failed", Color: red}
		last := 0.0
		for _, iv := range r.Intervals {
			dur := iv.EndS - last
			if dur <= 0 {
				dur = 1
			}
			last = iv.EndS
			x := float64(iv.T) / scale
			sent.X, sent.Y = append(sent.X, x), append(sent.Y, float64(iv.Sent)/dur)
			done.X, done.Y = append(done.X, x), append(done.Y, float64(iv.Completed)/dur)
			failed.X, failed.Y = append(failed.X, x), append(failed.Y, float64(iv.Failed)/dur)
		}
		c.Series = append(c.Series, sent, done)
		if r.Totals.Failed > 0 {
			c.Series = append(c.Series, failed)
		}
	}
	caption := "The rate each stage plans (dashed: the ramp, then the hold) and the requests sent and answered per second; dotted lines mark where each stage begins."
	if s := d.Stop; s != nil {
		c.VLines = append(c.VLines, chart.Ref{At: s.At.Seconds() / scale, Label: "stopped", Color: red})
		caption += " The red line is where the drill was stopped."
	}
	return render("drill-timeline", c, caption)
}
