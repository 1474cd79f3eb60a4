package drill

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/loadcap/loadcap/capacity"
	"github.com/loadcap/loadcap/internal/guard"
)

// Files are the drill's own output files in its output directory, besides
// run.json and the HTML report, which reports writes from the Result.
const (
	StagesFile   = "stages.json"   // Result.Stages (one find step per stage), with "guard": Result.Guard and "stop": Result.Stopped
	ServicesFile = "services.json" // {"services": Result.Services}
	PlanFile     = "plan.json"     // Result.Plan
	HPADir       = "hpa"           // a HorizontalPodAutoscaler per service
	KEDADir      = "keda"          // a ScaledObject per service
)

// WriteFunc writes one output file atomically: write fills it, and the
// previous file is left as it was when write or the writing fails.
type WriteFunc func(path string, write func(io.Writer) error) error

// WriteFiles writes the drill's files into dir through write: the
// stages, the services, and with a plan the plan and its autoscaler
// manifests (listed in the result, with paths relative to reportDir, for
// the report).
func (r *Result) WriteFiles(dir, reportDir string, write WriteFunc) ([]Manifest, error) {
	js := func(name string, v any) error {
		return write(filepath.Join(dir, name), func(w io.Writer) error {
			e := json.NewEncoder(w)
			e.SetIndent("", "  ")
			return e.Encode(v)
		})
	}
	if err := js(StagesFile, stagesFile{r.Stages, r.Guard, r.Stopped}); err != nil {
		return nil, err
	}
	if err := js(ServicesFile, struct {
		Services []capacity.ServiceMeasure `json:"services"`
	}{r.Services}); err != nil {
		return nil, err
	}
	if r.Plan == nil {
		return nil, nil
	}
	if err := js(PlanFile, r.Plan); err != nil {
		return nil, err
	}
	hpa, err := capacity.WriteHPA(filepath.Join(dir, HPADir), r.Plan)
	if err != nil {
		return nil, err
	}
	keda, err := capacity.WriteKEDA(filepath.Join(dir, KEDADir), r.Plan, capacity.KEDAOptions{PrometheusAddress: r.plan.Guard.Prometheus})
	if err != nil {
		return nil, err
	}
	return append(manifestsOf("HorizontalPodAutoscaler", hpa, reportDir), manifestsOf("ScaledObject", keda, reportDir)...), nil
}

// stagesFile is stages.json: the stages as find steps, beside what each
// guard rule saw and what stopped the drill.
type stagesFile struct {
	*capacity.FindResult
	Guard []RuleRun `json:"guard,omitempty"`
	Stop  *Stop     `json:"stop,omitempty"`
}

// manifestsOf lists written manifest files, with paths relative to
// reportDir and their YAML.
func manifestsOf(kind string, files []string, reportDir string) []Manifest {
	var out []Manifest
	for _, f := range files {
		rel, err := filepath.Rel(reportDir, f)
		if err != nil {
			rel = f
		}
		m := Manifest{Kind: kind, Service: strings.TrimSuffix(filepath.Base(f), filepath.Ext(f)), Path: rel}
		if b, err := os.ReadFile(f); err == nil {
			m.YAML = string(b)
		}
		out = append(out, m)
	}
	return out
}

// Report is the drill's section of the report: the plan as it ran, the
// guard, the stop, the pre-flight and the audit, and the manifests
// WriteFiles wrote.
func (r *Result) Report(manifests []Manifest) *Report {
	d := r.plan
	info := &Report{ID: d.DrillID, Target: d.Target, PlanFile: d.Path, RecordedPeakQPS: r.RecordedPeak,
		Services: r.Services, PlanError: r.PlanError, Manifests: manifests, Stop: r.Stopped}
	if d.Replay != "" {
		info.Traffic = "replay of " + d.Replay
	} else {
		info.Traffic = "scenario " + d.Scenario
	}
	for _, s := range d.Stages {
		info.Stages = append(info.Stages, StagePlan{Name: s.Name, RatePerSec: d.StageRate(s, r.RecordedPeak),
			Multiplier: s.Multiplier, Ramp: s.Ramp, Hold: s.Hold})
	}
	g := d.Guard
	dg := &GuardPlan{Every: g.Every, Breaches: g.Breaches, Prometheus: g.Prometheus, SignalLoss: g.SignalLoss,
		SignalLossContinue: g.SignalLossContinue}
	switch {
	case g.HotSwitchFile != "" && g.HotSwitchListen != "":
		dg.HotSwitch = "file " + g.HotSwitchFile + ", POST http://" + g.HotSwitchListen + "/stop"
	case g.HotSwitchFile != "":
		dg.HotSwitch = "file " + g.HotSwitchFile
	case g.HotSwitchListen != "":
		dg.HotSwitch = "POST http://" + g.HotSwitchListen + "/stop"
	}
	for i, rule := range g.Rules {
		rp := RulePlan{Name: rule.Name, Breaches: rule.Breaches, Max: guard.Float(rule.Max), Min: guard.Float(rule.Min),
			OnNoData: rule.OnNoData}
		if i < len(r.Guard) && r.Guard[i].Name == rule.Name {
			run := r.Guard[i]
			rp.Evaluations, rp.NoData, rp.LastNoData = run.Evaluations, run.NoData, run.LastNoData
		}
		switch {
		case rule.Drill != "":
			rp.Kind, rp.Expr = "traffic", rule.Drill
		case rule.PromQL != "":
			rp.Kind, rp.Expr = "promql", rule.PromQL
		default:
			rp.Kind, rp.Expr = "health", rule.Health
		}
		dg.Rules = append(dg.Rules, rp)
	}
	info.Guard = dg
	if c := r.Check; c != nil {
		info.PreFlight = &PreFlight{Tables: c.Tables, Problems: c.Problems}
	}
	if a := r.Audit; a != nil || r.AuditError != "" {
		da := &Audit{Error: r.AuditError}
		if a != nil {
			da.Tables, da.Counts, da.Leaks, da.Unchecked, da.Drills = a.Tables, a.Counts, a.Leaks, a.Unchecked, a.Drills
		}
		info.Audit = da
	}
	return info
}

// String is the stop in one line, as the drill prints it.
func (s *Stop) String() string {
	last := s.LastHealthy
	if last == "" {
		last = "none"
	}
	return fmt.Sprintf("at %v in stage %s: %s (last healthy stage: %s)", s.At.Round(1e6), s.Stage, s.Reason, last)
}

// Verdict is a drill's outcome, worst first.
type Verdict int

// Verdicts.
const (
	Held        Verdict = iota // every stage held its SLO, nothing leaked
	Partial                    // a distributed drill lost an agent: its figures miss part of the load
	StageFailed                // a stage failed its SLO (the drill ran to its end)
	Stopped                    // the guard or a signal stopped the drill
	Leaked                     // the audit found a leak, or could not run
)

// String says the verdict in a few words.
func (v Verdict) String() string {
	switch v {
	case Held:
		return "every stage held"
	case Partial:
		return "partial: an agent was lost"
	case StageFailed:
		return "a stage failed its SLO"
	case Stopped:
		return "stopped"
	case Leaked:
		return "isolation violated"
	}
	return fmt.Sprintf("verdict %d", int(v))
}

// VerdictLine is the verdict in one line for people, with what stopped
// the drill.
func (r *Result) VerdictLine() string {
	v := r.Verdict()
	if v == Stopped && r.Stopped != nil && r.Stopped.Reason != "" {
		return v.String() + ": " + r.Stopped.Reason
	}
	return v.String()
}

// Verdict is the drill's outcome: a leak (or an audit that could not run)
// outweighs a stop, which outweighs a failed stage, which outweighs a lost
// agent.
func (r *Result) Verdict() Verdict {
	switch {
	case r.AuditError != "" || (r.Audit != nil && !r.Audit.OK()):
		return Leaked
	case r.Stopped != nil:
		return Stopped
	case r.Stages != nil && !r.Stages.AllPassed():
		return StageFailed
	case r.Run != nil && r.Run.Partial():
		return Partial
	}
	return Held
}

// WriteSummary writes what the drill measured, for a terminal: the stages
// as find steps, each service's capacity and how it was read, and the plan
// of replicas (or why there is none).
func (r *Result) WriteSummary(w io.Writer) error {
	if r.Stages != nil {
		r.Stages.WriteSummary(w)
	}
	for _, s := range r.Services {
		bound := "at least"
		switch s.Method {
		case "saturated":
			bound = "saturated at"
		case "utilization":
			bound = "utilization law:"
		}
		stage := "stage"
		if strings.Contains(s.Stage, ", ") {
			stage = "stages"
		}
		fmt.Fprintf(w, "service %-10s %s %.1f req/s (%.1f per replica, fan-out %.2f, %s %s)\n", s.Name, bound, s.CapacityQPS, s.PerReplicaQPS, s.Fanout, stage, s.Stage)
	}
	if r.Plan != nil {
		return r.Plan.WriteTable(w)
	}
	if r.PlanError != "" {
		_, err := fmt.Fprintln(w, "capacity plan: not computed:", r.PlanError)
		return err
	}
	return nil
}

// WriteOutcome writes the audit's findings, the guard rules that had
// evaluations without data, and the stop, for a terminal.
func (r *Result) WriteOutcome(w io.Writer) {
	switch {
	case r.AuditError != "":
		fmt.Fprintln(w, "audit: FAILED to run:", r.AuditError)
	case r.Audit != nil:
		_ = r.Audit.WriteText(w)
	}
	for _, g := range r.Guard {
		if g.NoData > 0 {
			fmt.Fprintf(w, "guard rule %s: %d of %d evaluations without data (last: %s)\n", g.Name, g.NoData, g.Evaluations, g.LastNoData)
		}
	}
	if r.Stopped != nil {
		fmt.Fprintln(w, "STOPPED", r.Stopped)
	}
}

// DryRun checks a drill without sending anything and says what it saw on
// w: the stages and their rates, the isolation pre-flight, every signal
// the guard and the measurements read, the guard. The error wraps
// ErrIsolation when the pre-flight failed, ErrSignals when a signal did
// not answer, or what Prepare returned.
func DryRun(ctx context.Context, cfg Config, w io.Writer) error {
	d := cfg.Plan
	cfg.Progress = nil
	f, src, peak, err := Prepare(cfg)
	if err != nil {
		return err
	}
	if src != nil {
		src.Close()
	}
	fmt.Fprintf(w, "drill %s against %s: %d stages over %v, %d routes\n", d.DrillID, d.Target, len(d.Stages), d.Duration(), len(f.Requests))
	for _, l := range capacity.StageRates(d, peak) {
		fmt.Fprintln(w, "  "+l)
	}
	isolation := false
	if rep, err := CheckIsolation(ctx, d); err != nil {
		isolation = true
		fmt.Fprintln(w, "isolation pre-flight: FAILED:", err)
		if rep != nil {
			for _, p := range rep.Problems {
				fmt.Fprintln(w, "  ", p)
			}
		}
	} else if rep != nil {
		fmt.Fprintf(w, "isolation pre-flight: ok (%s)\n", strings.Join(rep.Tables, ", "))
	}
	signals := CheckSignals(ctx, d)
	for _, p := range signals {
		fmt.Fprintln(w, "signal unreachable:", p)
	}
	fmt.Fprintf(w, "guard: %d rules, %d consecutive breaches stop the drill; nothing was sent\n", len(d.Guard.Rules), d.Guard.Breaches)
	switch {
	case isolation:
		return fmt.Errorf("%w: the pre-flight check failed", ErrIsolation)
	case len(signals) > 0:
		return fmt.Errorf("%w (%d of them): the drill would not start", ErrSignals, len(signals))
	}
	return nil
}
