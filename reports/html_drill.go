package reports

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/loadcap/loadcap/capacity"
	"github.com/loadcap/loadcap/reports/chart"
)

// DrillInfo is what a pre-sale drill adds to a report: the plan it ran,
// the guard and why it stopped the drill, the capacity it measured per
// service, the isolation pre-flight and audit, and the autoscaler
// manifests it wrote. The stages' measurements are HTMLInput.Find (one
// step per stage that held, Phase = the stage's name). The fields are
// plain values, so that reports depends on neither internal/guard nor
// internal/audit; the caller copies them over.
type DrillInfo struct {
	ID       string `json:"id"`                  // the drill id, the shadow tag value
	Target   string `json:"target"`              // base URL of the entry service
	PlanFile string `json:"plan_file,omitempty"` // the drill plan's path
	// Traffic says what was sent: "replay of FILE" or "scenario FILE".
	Traffic string `json:"traffic,omitempty"`
	// RecordedPeakQPS is the recording's busiest second, req/s, that the
	// stages' multipliers scale; 0 for a scenario.
	RecordedPeakQPS float64      `json:"recorded_peak_qps,omitempty"`
	Stages          []DrillStage `json:"stages"`
	Guard           *DrillGuard  `json:"guard,omitempty"` // nil: the drill ran unguarded
	Stop            *DrillStop   `json:"stop,omitempty"`  // nil: the drill was not stopped early
	// Services is each listed service's capacity as the drill measured it;
	// the one with Saturated set is the bottleneck.
	Services []capacity.ServiceMeasure `json:"services,omitempty"`
	// PlanError says why no capacity plan was computed ("" when one was,
	// or none was asked for).
	PlanError string          `json:"plan_error,omitempty"`
	PreFlight *DrillPreFlight `json:"preflight,omitempty"` // nil: the plan has no isolation pre-flight
	Audit     *DrillAudit     `json:"audit,omitempty"`     // nil: the plan asks for no audit
	Manifests []DrillManifest `json:"manifests,omitempty"`
}

// DrillStage is one stage of the drill plan: a linear ramp from the
// previous stage's rate to RatePerSec, then a hold at it.
type DrillStage struct {
	Name       string        `json:"name"`
	RatePerSec float64       `json:"rate_per_sec"`         // the planned rate, req/s
	Multiplier float64       `json:"multiplier,omitempty"` // of the recorded peak; 0: an absolute rate
	Ramp       time.Duration `json:"ramp_ns"`
	Hold       time.Duration `json:"hold_ns"`
}

// DrillGuard is the guard of a drill: what it evaluates and what stops it.
type DrillGuard struct {
	Every      time.Duration `json:"every_ns"`             // evaluation period
	Breaches   int           `json:"breaches"`             // K of the rules that give none: consecutive bad evaluations that stop the drill
	Prometheus string        `json:"prometheus,omitempty"` // base URL of the Prometheus HTTP API the PromQL rules query
	// SignalLoss is how long Prometheus may not answer before that stops
	// the drill; SignalLossContinue: it does not stop it.
	SignalLoss         time.Duration `json:"signal_loss_ns,omitempty"`
	SignalLossContinue bool          `json:"signal_loss_continue,omitempty"`
	// HotSwitch says how an operator stops the drill at once, e.g. "file
	// /run/stop-drill" or "POST http://127.0.0.1:7070/stop"; "" for none.
	HotSwitch string      `json:"hot_switch,omitempty"`
	Rules     []DrillRule `json:"rules"`
}

// DrillRule is one guard rule.
type DrillRule struct {
	Name string `json:"name"`
	// Kind is "traffic" (an SLO on the drill's own traffic), "promql" or
	// "health", as in internal/guard.
	Kind string `json:"kind"`
	Expr string `json:"expr"` // the SLO, the PromQL query or the health URL
	// Max and Min bound a PromQL rule's value (at most Max, at least Min);
	// nil: no bound.
	Max      *float64 `json:"max,omitempty"`
	Min      *float64 `json:"min,omitempty"`
	Breaches int      `json:"breaches,omitempty"` // K of this rule; 0: DrillGuard.Breaches
}

// DrillStop says what stopped a drill early.
type DrillStop struct {
	// Rule is the guard rule that stopped the drill ("hot switch" for the
	// switch); Kind is the guard's kind of breach: "traffic", "promql",
	// "health", "signal" (Prometheus lost) or "switch". Both "" when the
	// guard did not stop it (an interrupt).
	Rule   string `json:"rule,omitempty"`
	Kind   string `json:"kind,omitempty"`
	Reason string `json:"reason"` // one sentence for people
	// Value is the last value the rule saw and Limit what it was held
	// against, in Unit: "ms", "ratio" (0.02 = 2%), "s" (signal loss),
	// "status" (an HTTP status, 0 = no answer) or "" (a plain number).
	// They may be infinite (a PromQL histogram_quantile), which the
	// embedded JSON writes as a string.
	Value       float64       `json:"value"`
	Limit       float64       `json:"limit"`
	Unit        string        `json:"unit,omitempty"`
	Consecutive int           `json:"consecutive,omitempty"` // bad evaluations in a row
	At          time.Duration `json:"at_ns"`                 // since the drill started
	Stage       string        `json:"stage"`                 // the stage running when it stopped
	LastHealthy string        `json:"last_healthy"`          // the last stage that completed and passed; "" none
}

// MarshalJSON writes a non-finite Value or Limit as a string ("+Inf",
// "-Inf", "NaN"), which JSON numbers cannot hold.
func (s DrillStop) MarshalJSON() ([]byte, error) {
	type plain DrillStop
	return json.Marshal(struct {
		plain
		Value any `json:"value"`
		Limit any `json:"limit"`
	}{plain(s), finiteOrString(s.Value), finiteOrString(s.Limit)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *DrillStop) UnmarshalJSON(b []byte) error {
	type plain DrillStop
	var v struct {
		plain
		Value json.RawMessage `json:"value"`
		Limit json.RawMessage `json:"limit"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = DrillStop(v.plain)
	var err error
	if s.Value, err = parseNumber(v.Value); err != nil {
		return fmt.Errorf("drill stop value: %w", err)
	}
	if s.Limit, err = parseNumber(v.Limit); err != nil {
		return fmt.Errorf("drill stop limit: %w", err)
	}
	return nil
}

func finiteOrString(v float64) any {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	return v
}

func parseNumber(raw json.RawMessage) (float64, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err == nil {
		return f, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, err
	}
	return strconv.ParseFloat(s, 64)
}

// DrillPreFlight is the isolation check run before the drill.
type DrillPreFlight struct {
	Tables   []string       `json:"tables"`             // the production tables checked
	Problems []DrillProblem `json:"problems,omitempty"` // every problem found; none: OK
	// Signals are the guard's and the measurements' signals that did not
	// answer before the start.
	Signals []string `json:"signals,omitempty"`
	Error   string   `json:"error,omitempty"` // the check could not run
}

// DrillProblem is one thing wrong with a table, or a table that could not
// be checked.
type DrillProblem struct {
	Table  string `json:"table"`
	Column string `json:"column,omitempty"` // "" when it is about the whole table
	What   string `json:"what"`
}

// DrillAudit is the isolation audit after the drill: rows that leaked.
type DrillAudit struct {
	Tables []string    `json:"tables"`          // tables scanned, production and shadow
	Leaks  []DrillLeak `json:"leaks,omitempty"` // the leaking rows listed (a bounded number per table)
	// Counts is the leaking rows per table, including those not listed;
	// nil: len(Leaks) per table.
	Counts    map[string]int `json:"counts,omitempty"`
	Unchecked []DrillProblem `json:"unchecked,omitempty"` // tables, or their markers, that could not be checked
	Error     string         `json:"error,omitempty"`     // the audit failed to run
}

// DrillLeak is one row where it must not be.
type DrillLeak struct {
	Table string `json:"table"`
	Key   string `json:"key,omitempty"` // the row's ID; "" when the table has none
	Why   string `json:"why"`
}

// DrillManifest is one autoscaler manifest the drill wrote.
type DrillManifest struct {
	Kind    string `json:"kind"` // e.g. "HorizontalPodAutoscaler", "ScaledObject"
	Service string `json:"service,omitempty"`
	Path    string `json:"path"`           // relative to the report
	YAML    string `json:"yaml,omitempty"` // its text, shown folded in the page; "" shows the path only
}

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
	Manifests []DrillManifest
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
	Stopped                    bool
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
	Leaks     []DrillLeak
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
func stageVerdicts(d *DrillInfo, f *capacity.FindResult) (verdict, class []string) {
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

func (p DrillProblem) String() string {
	if p.Column == "" {
		return p.Table + ": " + p.What
	}
	return p.Table + "." + p.Column + ": " + p.What
}

func buildGuard(g *DrillGuard, stop *DrillStop) *guardView {
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
		v.Settings = append(v.Settings, kv{"signal loss", "Prometheus not answering " + grace + " " + loss})
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
		row.Stopped = stop != nil && stop.Kind != "" && stop.Rule == r.Name
		v.Rules = append(v.Rules, row)
	}
	return v
}

func buildAudit(a *DrillAudit) *auditView {
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
func stopHeadline(d *DrillInfo) *stopView {
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
		v.Details = append(v.Details, kv{"breached", fmt.Sprintf("%d evaluations in a row", s.Consecutive)})
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
func drillTimeline(d *DrillInfo, r *Run) (figure, error) {
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
