package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/loadcap/loadcap/capacity"
	"github.com/loadcap/loadcap/internal/capture"
	"github.com/loadcap/loadcap/internal/guard"
	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/loadgen/cluster"
	"github.com/loadcap/loadcap/reports"
	"github.com/loadcap/loadcap/scenarios"
)

type drillConfig struct {
	dryRun  bool
	now     string
	outDir  string
	quiet   bool
	cluster clusterFlags
}

func newDrillCmd(st *state) *cobra.Command {
	var c drillConfig
	cmd := &cobra.Command{
		Use:   "drill PLAN.yaml [--dry-run] [--out-dir DIR] [--agents A,B --tls-cert C --tls-key K --ca CA]",
		Short: "Run a guarded pre-sale drill: tagged traffic in stages, measured, audited, planned",
		Long: `Run a drill plan: the isolation pre-flight, then the stages (tagged traffic at each stage's rate)
under the guard, which stops everything when a rule is breached; each stage is measured, with
every listed service's throughput and latency. At the end, or at the stop: the audit, the
capacity plan for the peak with HPA and KEDA manifests, and an HTML report.

Writes into --out-dir: run.json, stages.json (each stage as a capacity step), services.json
(each service's measured capacity and how it was measured), plan.json, hpa/, keda/, report.html. Exit codes: 0 every stage passed · 99 a stage failed its SLO · 105 the guard
or a signal stopped the drill, or a guard signal did not answer before the start · 106 the pre-flight or the audit found an isolation problem ·
2 outside the plan's window (--now overrides, for CI).

With --agents the agents (loadcap agent) generate the load, each its share of every stage, with
the same flags as run --agents; the guard watches their merged results and its stop kills
generation on every agent at once. The recording (or the scenario's data files) must lie beside
the recording (or scenario): agents get that directory's files.`,
		Example: `  loadcap drill scenarios/examples/presale-drill.yaml --dry-run --now 2026-11-01T02:00:00+08:00
  loadcap drill presale.yaml --out-dir drill-2026-11-01
  loadcap drill presale.yaml --agents 10.0.0.5:7070,10.0.0.6:7070 --tls-cert coordinator.pem --tls-key coordinator-key.pem --ca ca.pem`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			d, err := scenarios.LoadDrill(a[0])
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return withCode(exitInvalid, err)
				}
				return err
			}
			cfg := capacity.DrillConfig{Plan: d}
			var agents *agentsGen
			if len(c.cluster.agents) > 0 {
				agents = &agentsGen{st: st, d: d, flags: &c.cluster}
				cfg.Generator = agents.generator
			}
			if c.now != "" {
				if cfg.Now, err = time.Parse(time.RFC3339, c.now); err != nil {
					return usageErr("--now: want an RFC 3339 time: %v", err)
				}
			}
			if !c.quiet {
				cfg.Progress, cfg.Live = st.stderr, st.tty
			}
			if c.dryRun {
				return dryRunDrill(cmd.Context(), st, cfg)
			}
			_, code, err := runDrill(cmd.Context(), st, cfg, c.outDir, filepath.Join(c.outDir, "report.html"), agents)
			if err != nil {
				return err
			}
			switch code {
			case exitIsolation:
				return withCode(code, errors.New("isolation violated: see the audit above"))
			case exitAborted:
				return withCode(code, errors.New("the drill was stopped"))
			case exitThresholds:
				return withCode(code, errors.New("a stage failed its SLO"))
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&c.dryRun, "dry-run", false, "print the stage plan, check the pre-flight and the guard's signals; send nothing")
	fl.StringVar(&c.now, "now", "", "check the window against this time instead of the clock (RFC 3339)")
	fl.StringVar(&c.outDir, "out-dir", ".", "where the results, manifests and report go")
	fl.BoolVarP(&c.quiet, "quiet", "q", false, "no progress")
	c.cluster.add(cmd)
	return cmd
}

// agentsGen runs a drill's load on agents (drill --agents): it builds the
// coordinator when the drill starts and keeps it for the cluster report.
type agentsGen struct {
	st    *state
	d     *scenarios.Drill
	flags *clusterFlags

	gen *coordinated // once the drill started
}

// generator is a capacity.DrillConfig.Generator: the drill's stages as a
// scenario file (capacity.DrillScenario) run by a coordinator over the
// agents.
func (a *agentsGen) generator(gc capacity.GeneratorConfig) (capacity.Generator, error) {
	path, src, err := capacity.DrillScenario(a.d, gc.RecordedPeak)
	if err != nil {
		return nil, withCode(exitInvalid, err)
	}
	f, err := scenarios.Parse(path, src)
	if err != nil {
		return nil, fmt.Errorf("drill on agents: its scenario: %w", err)
	}
	if f.Replay != nil {
		if err := capture.PrepareReplay(f, capture.ReplayConfig{}); err != nil {
			return nil, err
		}
	}
	plan, err := cluster.NewPlanSource(f, src, "")
	if err != nil {
		return nil, withCode(exitInvalid, err)
	}
	c := a.flags
	cfg := c.coordinatorConfig(a.st, true)
	cfg.OnStart, cfg.OnInterval, cfg.Progress, cfg.Live = gc.Start, gc.Interval, gc.Progress, gc.Live
	co, err := cluster.NewCoordinator(f, plan, cfg)
	if err != nil {
		return nil, withCode(exitUsage, err)
	}
	a.gen = &coordinated{co: co}
	return a.gen, nil
}

// coordinated is a coordinator as a capacity.Generator.
type coordinated struct {
	co  *cluster.Coordinator
	rep *cluster.Report
}

func (g *coordinated) Run(ctx context.Context) (*loadgen.Result, error) {
	res, rep, err := g.co.Run(ctx)
	g.rep = rep
	return res, err
}

func (g *coordinated) Kill(cause, reason string) { g.co.Kill(cause, reason) }

func dryRunDrill(ctx context.Context, st *state, cfg capacity.DrillConfig) error {
	d := cfg.Plan
	cfg.Progress = nil
	f, src, peak, err := capacity.PrepareDrill(cfg)
	if err != nil {
		return drillErr(err)
	}
	if src != nil {
		src.Close()
	}
	fmt.Fprintf(st.stdout, "drill %s against %s: %d stages over %v, %d routes\n", d.DrillID, d.Target, len(d.Stages), d.Duration(), len(f.Requests))
	for _, l := range capacity.StageRates(d, peak) {
		fmt.Fprintln(st.stdout, "  "+l)
	}
	isolation, signals := 0, 0
	if rep, err := capacity.CheckIsolation(ctx, d); err != nil {
		isolation++
		fmt.Fprintln(st.stdout, "isolation pre-flight: FAILED:", err)
		if rep != nil {
			for _, p := range rep.Problems {
				fmt.Fprintln(st.stdout, "  ", p)
			}
		}
	} else if rep != nil {
		fmt.Fprintf(st.stdout, "isolation pre-flight: ok (%s)\n", strings.Join(rep.Tables, ", "))
	}
	for _, p := range capacity.CheckSignals(ctx, d) {
		signals++
		fmt.Fprintln(st.stdout, "signal unreachable:", p)
	}
	fmt.Fprintf(st.stdout, "guard: %d rules, %d consecutive breaches stop the drill; nothing was sent\n", len(d.Guard.Rules), d.Guard.Breaches)
	switch {
	case isolation > 0:
		return withCode(exitIsolation, errors.New("pre-flight: the isolation check failed"))
	case signals > 0:
		return withCode(exitAborted, fmt.Errorf("pre-flight: %d signals do not answer: the drill would not start", signals))
	}
	return nil
}

func drillErr(err error) error {
	switch {
	case errors.Is(err, capacity.ErrOutsideWindow):
		return withCode(exitUsage, err)
	case errors.Is(err, capacity.ErrIsolation):
		return withCode(exitIsolation, err)
	case errors.Is(err, capacity.ErrSignals), errors.Is(err, capacity.ErrStoppedEarly):
		return withCode(exitAborted, err)
	case errors.Is(err, fs.ErrNotExist):
		return withCode(exitInvalid, err)
	}
	return err
}

// runDrill runs a drill, writes its files into outDir and the report to
// report, and returns the exit code the outcome stands for.
func runDrill(ctx context.Context, st *state, cfg capacity.DrillConfig, outDir, report string, agents *agentsGen) (*capacity.DrillResult, int, error) {
	d := cfg.Plan
	cfg.Guard = drillGuard(d)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-st.signals:
			cancel() // the engine stops at once; the audit and the report still run
		case <-ctx.Done():
		}
	}()
	res, err := capacity.RunDrill(ctx, cfg)
	if err != nil {
		if res != nil && res.Check != nil {
			for _, p := range res.Check.Problems {
				fmt.Fprintln(st.stdout, "isolation:", p)
			}
		}
		return res, 0, drillErr(err)
	}
	leaked := res.AuditError != "" || (res.Audit != nil && !res.Audit.OK())
	code := exitOK
	switch {
	case leaked:
		code = exitIsolation
	case res.Stopped != nil:
		code = exitAborted
	case !allPassed(res.Stages):
		code = exitThresholds
	}
	// The audit and the stop are said even when writing the files fails.
	said := false
	sayOutcome := func() {
		if said {
			return
		}
		said = true
		switch {
		case res.AuditError != "":
			fmt.Fprintln(st.stdout, "audit: FAILED to run:", res.AuditError)
		case res.Audit != nil:
			reportAudit(st, res.Audit, false)
		}
		if res.Stopped != nil {
			fmt.Fprintf(st.stdout, "STOPPED at %v in stage %s: %s (last healthy stage: %s)\n", res.Stopped.At.Round(time.Millisecond), res.Stopped.Stage, res.Stopped.Reason, orNone(res.Stopped.LastHealthy))
		}
	}
	fail := func(err error) (*capacity.DrillResult, int, error) {
		sayOutcome()
		if code != exitOK {
			return res, 0, withCode(code, fmt.Errorf("%w (and the drill's outcome, above, is exit %d)", err, code))
		}
		return res, 0, err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return fail(err)
	}
	var manifests []reports.DrillManifest
	run := reports.NewRun(res.Run, meta(res.File))
	if agents != nil && agents.gen != nil && agents.gen.rep != nil {
		b, err := json.Marshal(agents.gen.rep)
		if err != nil {
			return fail(err)
		}
		run.Cluster = b
		for _, p := range agents.gen.rep.Problems() {
			fmt.Fprintln(st.stderr, "cluster:", p)
		}
	}
	if err := run.WriteFile(filepath.Join(outDir, "run.json")); err != nil {
		return fail(err)
	}
	if err := writeJSON(filepath.Join(outDir, "stages.json"), res.Stages); err != nil {
		return fail(err)
	}
	if err := writeJSON(filepath.Join(outDir, "services.json"), drillServices{Services: res.Services}); err != nil {
		return fail(err)
	}
	fmt.Fprintln(st.stdout)
	writeFindSummary(st, res.Stages)
	for _, s := range res.Services {
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
		fmt.Fprintf(st.stdout, "service %-10s %s %.1f req/s (%.1f per replica, fan-out %.2f, %s %s)\n", s.Name, bound, s.CapacityQPS, s.PerReplicaQPS, s.Fanout, stage, s.Stage)
	}
	if res.Plan != nil {
		if err := res.Plan.WriteTable(st.stdout); err != nil {
			return fail(err)
		}
		if err := writeJSON(filepath.Join(outDir, "plan.json"), res.Plan); err != nil {
			return fail(err)
		}
		hpa, err := capacity.WriteHPA(filepath.Join(outDir, "hpa"), res.Plan)
		if err != nil {
			return fail(err)
		}
		keda, err := capacity.WriteKEDA(filepath.Join(outDir, "keda"), res.Plan, capacity.KEDAOptions{PrometheusAddress: d.Guard.Prometheus})
		if err != nil {
			return fail(err)
		}
		manifests = append(manifestsOf("HorizontalPodAutoscaler", hpa, report), manifestsOf("ScaledObject", keda, report)...)
	} else if res.PlanError != "" {
		fmt.Fprintln(st.stdout, "capacity plan: not computed:", res.PlanError)
	}
	sayOutcome()
	in := reports.HTMLInput{Run: run, Find: res.Stages, Plan: res.Plan, ExitCode: code, Drill: drillInfo(d, res, manifests)}
	if err := writeReports(st, in, report, ""); err != nil {
		return fail(err)
	}
	return res, code, nil
}

// drillServices is services.json: each listed service's capacity as the
// drill measured it.
type drillServices struct {
	Services []capacity.ServiceMeasure `json:"services"`
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func allPassed(f *capacity.FindResult) bool {
	for _, s := range f.Steps {
		if !s.Passed {
			return false
		}
	}
	return true
}

// drillGuard builds the guard of the plan (internal/guard); nil when the
// plan has no rules and no hot switch.
func drillGuard(d *scenarios.Drill) func(ctx context.Context, stop func(capacity.GuardBreach)) (func(loadgen.Interval), error) {
	dg := d.Guard
	if len(dg.Rules) == 0 && dg.HotSwitchFile == "" && dg.HotSwitchListen == "" {
		return nil
	}
	cfg := guard.Config{Every: dg.Every, Breaches: dg.Breaches, Prometheus: dg.Prometheus,
		SignalLoss: guard.SignalLoss{Grace: dg.SignalLoss, Action: guard.ActionStop},
		Switch:     guard.Switch{File: dg.HotSwitchFile, Listen: dg.HotSwitchListen}}
	if dg.SignalLossContinue {
		cfg.SignalLoss.Action = guard.ActionContinue
	}
	for _, r := range dg.Rules {
		gr := guard.Rule{Name: r.Name, SLO: r.Drill, PromQL: r.PromQL, Health: r.Health, Breaches: r.Breaches}
		if !math.IsNaN(r.Max) {
			gr.Max = guard.Float(r.Max)
		}
		if !math.IsNaN(r.Min) {
			gr.Min = guard.Float(r.Min)
		}
		cfg.Rules = append(cfg.Rules, gr)
	}
	return func(ctx context.Context, stop func(capacity.GuardBreach)) (func(loadgen.Interval), error) {
		g, err := guard.New(cfg)
		if err != nil {
			return nil, withCode(exitInvalid, fmt.Errorf("%s: guard: %w", d.Path, err))
		}
		go func() {
			defer g.Close()
			g.Run(ctx, func(b guard.Breach) {
				stop(capacity.GuardBreach{Rule: b.Rule, Kind: string(b.Kind), Reason: b.String(), Value: b.Value, Limit: b.Limit, Consecutive: b.Consecutive})
			})
		}()
		return g.Observe, nil
	}
}

// manifestsOf lists written manifest files, with paths relative to the
// report and their YAML.
func manifestsOf(kind string, files []string, report string) []reports.DrillManifest {
	var out []reports.DrillManifest
	for _, f := range files {
		rel, err := filepath.Rel(filepath.Dir(report), f)
		if err != nil {
			rel = f
		}
		m := reports.DrillManifest{Kind: kind, Service: strings.TrimSuffix(filepath.Base(f), filepath.Ext(f)), Path: rel}
		if b, err := os.ReadFile(f); err == nil {
			m.YAML = string(b)
		}
		out = append(out, m)
	}
	return out
}

// drillInfo is the drill section of the report.
func drillInfo(d *scenarios.Drill, res *capacity.DrillResult, manifests []reports.DrillManifest) *reports.DrillInfo {
	info := &reports.DrillInfo{ID: d.DrillID, Target: d.Target, PlanFile: d.Path, RecordedPeakQPS: res.RecordedPeak,
		Services: res.Services, PlanError: res.PlanError, Manifests: manifests}
	if d.Replay != "" {
		info.Traffic = "replay of " + d.Replay
	} else {
		info.Traffic = "scenario " + d.Scenario
	}
	for _, s := range d.Stages {
		info.Stages = append(info.Stages, reports.DrillStage{Name: s.Name, RatePerSec: d.StageRate(s, res.RecordedPeak),
			Multiplier: s.Multiplier, Ramp: s.Ramp, Hold: s.Hold})
	}
	g := d.Guard
	dg := &reports.DrillGuard{Every: g.Every, Breaches: g.Breaches, Prometheus: g.Prometheus, SignalLoss: g.SignalLoss,
		SignalLossContinue: g.SignalLossContinue}
	switch {
	case g.HotSwitchFile != "" && g.HotSwitchListen != "":
		dg.HotSwitch = "file " + g.HotSwitchFile + ", POST http://" + g.HotSwitchListen + "/stop"
	case g.HotSwitchFile != "":
		dg.HotSwitch = "file " + g.HotSwitchFile
	case g.HotSwitchListen != "":
		dg.HotSwitch = "POST http://" + g.HotSwitchListen + "/stop"
	}
	for _, r := range g.Rules {
		rule := reports.DrillRule{Name: r.Name, Breaches: r.Breaches, Max: guard.Float(r.Max), Min: guard.Float(r.Min)}
		switch {
		case r.Drill != "":
			rule.Kind, rule.Expr = "traffic", r.Drill
		case r.PromQL != "":
			rule.Kind, rule.Expr = "promql", r.PromQL
		default:
			rule.Kind, rule.Expr = "health", r.Health
		}
		dg.Rules = append(dg.Rules, rule)
	}
	info.Guard = dg
	if st := res.Stopped; st != nil {
		stop := &reports.DrillStop{Reason: st.Reason, At: st.At, Stage: st.Stage, LastHealthy: st.LastHealthy}
		if b := st.Breach; b != nil {
			stop.Rule, stop.Kind, stop.Reason, stop.Value, stop.Limit, stop.Consecutive = b.Rule, b.Kind, b.Reason, b.Value, b.Limit, b.Consecutive
			switch b.Kind {
			case "signal":
				stop.Unit = "s"
			case "health":
				stop.Unit = "status"
			case "traffic":
				stop.Unit = "ms"
				if strings.Contains(b.Reason, "error") {
					stop.Unit = "ratio"
				}
			}
		}
		info.Stop = stop
	}
	if c := res.Check; c != nil {
		pf := &reports.DrillPreFlight{Tables: c.Tables}
		for _, p := range c.Problems {
			pf.Problems = append(pf.Problems, reports.DrillProblem{Table: p.Table, Column: p.Column, What: p.What})
		}
		info.PreFlight = pf
	}
	if a := res.Audit; a != nil || res.AuditError != "" {
		da := &reports.DrillAudit{Error: res.AuditError}
		if a != nil {
			da.Tables, da.Counts = a.Tables, a.Counts
			for _, l := range a.Leaks {
				da.Leaks = append(da.Leaks, reports.DrillLeak{Table: l.Table, Key: l.Key, Why: l.Why})
			}
			for _, p := range a.Unchecked {
				da.Unchecked = append(da.Unchecked, reports.DrillProblem{Table: p.Table, Column: p.Column, What: p.What})
			}
		}
		info.Audit = da
	}
	return info
}
