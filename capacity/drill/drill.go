// Package drill runs a pre-sale stress drill end to end: the plan's
// window and pre-flight (isolation of every production table, every
// signal the guard and the measurements read), the stages as one tagged
// load (here or on agents), the guard that stops it the moment production
// degrades, the measurement of every stage and service, the leak audit,
// the plan of replicas for the peak, and the drill's own output files.
//
// Package capacity holds the measurement (stages as find steps, each
// service's capacity, the plan); internal/guard, internal/audit and
// internal/capture the guard, the audit and the recordings; reports renders
// a drill's Report.
package drill

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/loadcap/loadcap/capacity"
	"github.com/loadcap/loadcap/internal/audit"
	"github.com/loadcap/loadcap/internal/capture"
	"github.com/loadcap/loadcap/internal/dashboard"
	"github.com/loadcap/loadcap/internal/runner"
	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/loadgen/cluster"
	"github.com/loadcap/loadcap/loadgen/live"
	"github.com/loadcap/loadcap/scenarios"
	"github.com/loadcap/loadcap/shadow"
)

// signalClient reads the signals the pre-flight checks.
var signalClient = &http.Client{Timeout: 3 * time.Second}

// CauseGuard is the abort cause of a drill the guard stopped.
const CauseGuard = "guard"

// auditTimeout bounds the audit after a drill, which runs even when the
// drill was interrupted.
const auditTimeout = 10 * time.Minute

// ErrOutsideWindow: the drill plan's window does not hold the start time.
var ErrOutsideWindow = errors.New("outside the drill's allowed window")

// ErrSignals: a signal the guard or the measurements read does not answer
// before the drill starts, so it does not start.
var ErrSignals = errors.New("pre-flight: a guard or metrics signal does not answer")

// ErrStoppedEarly: the guard stopped the drill before its load started
// (on agents, while they prepared).
var ErrStoppedEarly = errors.New("the guard stopped the drill")

// ErrIsolation: the isolation pre-flight found a table without a proper
// shadow twin, or the audit found a leaked row.
var ErrIsolation = errors.New("isolation violated")

// ErrInvalid: the plan cannot run as written (a guard rule the guard
// rejects).
var ErrInvalid = errors.New("invalid drill plan")

// Config runs one drill plan.
type Config struct {
	Plan *scenarios.Drill
	// Now is the start time the window is checked against (--now);
	// zero: the clock.
	Now      time.Time
	Progress io.Writer // stage lines and the engine's progress; nil for none
	Live     bool
	// Guard starts the guard; nil is the plan's own (NewGuard), which is
	// nil, unguarded, for a plan without rules or hot switch.
	Guard GuardFunc
	// Agents runs the drill's load on these agents (the coordinator's
	// configuration); nil runs it in this process.
	Agents *cluster.CoordinatorConfig
	// Dashboard, when set, shows the drill live: the stages, every
	// interval, the guard's rules and the services; its stop button is
	// the guard's hot switch (with the plan's own guard, which a plan
	// without one then gets, for the button alone).
	Dashboard *dashboard.Server
	// Metrics, when set, get the load's intervals, the current stage and
	// the guard rules' states (--metrics-listen, --out prometheus-rw).
	Metrics *live.Metrics
	// OnInterval, when set, gets every closed interval as well (the
	// caller's intervals file), and KeepIntervals then keeps only about
	// the last so many of them in Result.Run (runner.Config.KeepIntervals);
	// the stages are measured as they end, so a drill of any length costs
	// flat memory.
	OnInterval    func(loadgen.Interval)
	KeepIntervals int
}

// Result is what a drill measured and concluded.
type Result struct {
	File         *scenarios.File           // the scenario the stages ran as
	Run          *loadgen.Result           // nil for a dry run
	Cluster      *cluster.Report           // the agents' report of a drill on agents; nil here
	RecordedPeak float64                   // the recording's peak second, requests/s (replays)
	Stages       *capacity.FindResult      // one step per stage (phase "stage"), with the services' figures
	Services     []capacity.ServiceMeasure // per service: the capacity the drill measured
	Plan         *capacity.PlanResult      // the replicas for the plan's peak; nil without capacity:
	PlanError    string                    `json:"plan_error,omitempty"`
	Stopped      *Stop                     // the guard (or a signal) stopped the drill
	// Guard is what each guard rule saw, evaluations without data counted;
	// nil for an unguarded drill.
	Guard      []RuleRun
	Check      *audit.CheckReport
	Audit      *audit.ScanReport
	AuditError string

	plan *scenarios.Drill
}

// Breach is the rule that stopped a drill, as the guard saw it.
type Breach struct {
	Rule        string  `json:"rule,omitempty"`
	Kind        string  `json:"kind,omitempty"` // traffic, promql, health, signal, switch
	Reason      string  `json:"reason"`
	Value       float64 `json:"-"`
	Limit       float64 `json:"-"`
	Unit        string  `json:"unit,omitempty"` // of Value and Limit, as the guard states it (guard.Breach.Unit)
	Consecutive int     `json:"consecutive,omitempty"`
}

// Prepare checks the window and builds the drill's scenario: the
// recording (tagged, at the stages' rates) or the scenario file's mix.
// The returned source is nil for a scenario; close it when done.
func Prepare(cfg Config) (*scenarios.File, *capture.ReplaySource, float64, error) {
	d := cfg.Plan
	now := cfg.Now
	if now.IsZero() {
		now = time.Now()
	}
	if w := d.Window; w != nil && (now.Before(w.Start) || !now.Before(w.End)) {
		return nil, nil, 0, fmt.Errorf("%w: %s is not within %s .. %s (--now overrides for tests)",
			ErrOutsideWindow, now.Format(time.RFC3339), w.Start.Format(time.RFC3339), w.End.Format(time.RFC3339))
	}
	if d.Scenario != "" {
		f, err := scenarios.Load(d.Scenario, scenarios.WithTarget(d.Target))
		if err != nil {
			return nil, nil, 0, err
		}
		f.Tag(d.DrillID)
		f.Thresholds = nil
		f.Scenarios = []scenarios.Scenario{f.NewScenario("drill", d.Workload(0), nil)}
		return f, nil, 0, nil
	}
	rd, err := capture.Open(d.Replay, "")
	if err != nil {
		return nil, nil, 0, err
	}
	stats, err := capture.Inspect(rd)
	rd.Close()
	if err != nil {
		return nil, nil, 0, err
	}
	peak := float64(stats.Peak().N)
	f := &scenarios.File{Path: d.Path, Target: d.Target, Timeout: scenarios.DefaultTimeout, Seed: scenarios.DefaultSeed,
		Replay: &scenarios.Replay{File: d.Replay, Mode: scenarios.ReplayRate, Speed: 1, Amplify: 1,
			Rewrite: d.Rewrite, MaxVUs: d.MaxVUs, PreAllocatedVUs: min(d.MaxVUs, 100), GracefulStop: 30 * time.Second}}
	f.Tag(d.DrillID)
	f.Scenarios = []scenarios.Scenario{f.NewScenario("drill", d.Workload(peak), []int{})}
	src, err := capture.NewReplaySource(f, capture.ReplayConfig{Progress: cfg.Progress})
	if err != nil {
		return nil, nil, 0, err
	}
	return f, src, peak, nil
}

// CheckIsolation runs the plan's isolation pre-flight.
func CheckIsolation(ctx context.Context, d *scenarios.Drill) (*audit.CheckReport, error) {
	if d.Isolation == nil {
		return nil, nil
	}
	db, err := audit.Open(ctx, d.Isolation.DSN)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rep, err := audit.Check(ctx, db, d.Isolation.Tables, shadow.DefaultTableNaming)
	if err != nil {
		return nil, err
	}
	if !rep.OK() {
		return rep, fmt.Errorf("%w: the pre-flight check found %d problems", ErrIsolation, len(rep.Problems))
	}
	return rep, nil
}

// CheckSignals verifies that what the guard and the measurements read
// answers: Prometheus, the health URLs and the services' metrics.
func CheckSignals(ctx context.Context, d *scenarios.Drill) []string {
	var urls []string
	if d.Guard.Prometheus != "" {
		urls = append(urls, strings.TrimSuffix(d.Guard.Prometheus, "/")+"/api/v1/query?query=1")
	}
	for _, r := range d.Guard.Rules {
		if r.Health != "" {
			urls = append(urls, r.Health)
		}
	}
	for _, s := range d.Services {
		urls = append(urls, s.Metrics)
	}
	var problems []string
	for _, u := range urls {
		if err := get(ctx, u); err != nil {
			problems = append(problems, err.Error())
		}
	}
	return problems
}

func get(ctx context.Context, u string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := signalClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return nil
}

// Run runs the stages under the guard, measures each stage and every
// listed service, and at the end (also after a stop) audits the database
// and computes the capacity plan. The error is for failures to run; a stop
// by the guard is in the result.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	d := cfg.Plan
	res := &Result{plan: d}
	if rep, err := CheckIsolation(ctx, d); err != nil {
		res.Check = rep
		return res, err
	} else {
		res.Check = rep
	}
	if problems := CheckSignals(ctx, d); len(problems) > 0 {
		return res, fmt.Errorf("%w: %s", ErrSignals, strings.Join(problems, "; "))
	}
	f, src, peak, err := Prepare(cfg)
	if err != nil {
		return res, err
	}
	if src != nil {
		defer src.Close()
	}
	res.File, res.RecordedPeak = f, peak
	if cfg.Progress != nil {
		fmt.Fprintf(cfg.Progress, "drill %s: %d stages over %v against %s\n", d.DrillID, len(d.Stages), d.Duration(), d.Target)
		for _, l := range capacity.StageRates(d, peak) {
			fmt.Fprintln(cfg.Progress, "  "+l)
		}
	}

	var srcs []capacity.MetricsSource
	for _, s := range d.Services {
		srcs = append(srcs, capacity.MetricsSource{Name: s.Name, URL: s.Metrics})
	}
	tr := capacity.NewStageTracker(d, srcs, cfg.Progress, peak)
	if cfg.Dashboard != nil {
		showDrill(cfg.Dashboard, d, peak, tr)
	}
	var observe func(loadgen.Interval)
	var guardRules func() []RuleRun
	var gen loadgen.Runner
	var stopMu sync.Mutex
	var breach *Breach
	var breachAt time.Duration
	var t0 time.Time
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	startGuard := cfg.Guard
	if startGuard == nil {
		startGuard = newGuard(d, cfg.Dashboard)
	}
	if startGuard != nil {
		observe, guardRules, err = startGuard(ctx, func(b Breach) {
			stopMu.Lock()
			defer stopMu.Unlock()
			if breach != nil {
				return
			}
			breach = &b
			if gen == nil {
				return // before the start: the load is killed as soon as it exists
			}
			if !t0.IsZero() {
				breachAt = time.Since(t0)
			}
			// Production suffers: requests in flight are abandoned at once
			// rather than given their graceful stop. The services are read
			// first (a few ms): the abandoned requests would count in their
			// rates.
			tr.Cut()
			gen.Kill(CauseGuard, "guard: "+b.Reason)
		})
		if err != nil {
			return res, err
		}
	}
	rc := runner.Config{File: f, Progress: cfg.Progress, Live: cfg.Live, Stderr: cfg.Progress,
		OnInterval: func(iv loadgen.Interval) {
			if observe != nil {
				observe(iv)
			}
			tr.Interval(iv)
			if cfg.Dashboard != nil {
				cfg.Dashboard.Observe(iv)
			}
			feedLive(cfg.Metrics, d, peak, iv, guardRules)
			if cfg.OnInterval != nil {
				cfg.OnInterval(iv)
			}
		},
		KeepIntervals: cfg.KeepIntervals,
		Metrics:       cfg.Metrics,
		OnStart: func(at time.Time) {
			stopMu.Lock()
			t0 = at
			stopMu.Unlock()
			tr.Start(at)
		}}
	if cfg.Agents != nil && len(cfg.Agents.Agents) > 0 {
		// The agents get the stages as a scenario file that parses to the
		// scenario run here (Scenario), with the recording beside it.
		path, source, err := Scenario(d, peak)
		if err != nil {
			return res, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		if rc.File, err = scenarios.Parse(path, source); err != nil {
			return res, fmt.Errorf("drill on agents: its scenario: %w", err)
		}
		rc.Source, rc.Agents = source, cfg.Agents
	} else if src != nil {
		rc.Replay = src
	}
	stopMu.Lock()
	run, err := runner.New(ctx, rc)
	if err == nil {
		gen = run
		if breach != nil {
			gen.Kill(CauseGuard, "guard: "+breach.Reason)
		}
	}
	stopMu.Unlock()
	if err != nil {
		return res, err
	}
	defer run.Close()
	r, err := gen.Run(ctx)
	res.Cluster = run.Cluster()
	if guardRules != nil {
		res.Guard = guardRules()
	}
	if err != nil {
		stopMu.Lock()
		b := breach
		stopMu.Unlock()
		if b != nil {
			return res, fmt.Errorf("%w before the load started: %s (%v)", ErrStoppedEarly, b.Reason, err)
		}
		return res, err
	}
	res.Run = r
	res.Stages = tr.Finish(r)
	if r.Status == loadgen.StatusAborted {
		stopMu.Lock()
		at := r.Duration
		if breach != nil {
			at = breachAt // when the guard decided, not when the run wound down
		}
		st := min(d.StageAt(at), len(d.Stages)-1)
		stop := &Stop{Reason: r.AbortReason, At: at, Stage: d.Stages[st].Name, LastHealthy: capacity.LastHealthy(res.Stages, d.Stages[st].Name)}
		if b := breach; b != nil {
			stop.Rule, stop.Kind, stop.Reason, stop.Value, stop.Limit, stop.Unit, stop.Consecutive = b.Rule, b.Kind, b.Reason, b.Value, b.Limit, b.Unit, b.Consecutive
		}
		res.Stopped = stop
		stopMu.Unlock()
	}
	res.Services = capacity.MeasureServices(d, res.Stages)
	if d.Capacity.PeakQPS > 0 {
		if p, err := capacity.DrillPlan(d, res.Services); err != nil {
			res.PlanError = err.Error()
		} else {
			res.Plan = p
		}
	}
	if iso := d.Isolation; iso != nil && iso.Audit {
		actx, acancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
		res.Audit, err = drillAudit(actx, d)
		acancel()
		if err != nil {
			res.AuditError = err.Error()
		}
	}
	return res, nil
}

func drillAudit(ctx context.Context, d *scenarios.Drill) (*audit.ScanReport, error) {
	db, err := audit.Open(ctx, d.Isolation.DSN)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return audit.Scan(ctx, db, d.DrillID, audit.Markers{Tables: d.Isolation.Tables, IDOffset: d.Isolation.IDOffset})
}
