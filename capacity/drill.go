package capacity

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/loadcap/loadcap/internal/audit"
	"github.com/loadcap/loadcap/internal/capture"
	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/scenarios"
	"github.com/loadcap/loadcap/scenarios/slo"
	"github.com/loadcap/loadcap/shadow"
)

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

// DrillConfig runs one drill plan.
type DrillConfig struct {
	Plan *scenarios.Drill
	// Now is the start time the window is checked against (--now);
	// zero: the clock.
	Now      time.Time
	Progress io.Writer // stage lines and the engine's progress; nil for none
	Live     bool
	// Guard starts the guard: it gets the drill's stop function and returns
	// what to call with every closed interval. Nil runs unguarded.
	Guard func(ctx context.Context, stop func(GuardBreach)) (observe func(loadgen.Interval), err error)
	// Generator builds what generates the load; nil is LocalGenerator (this
	// process). A coordinator over agents runs a drill on them.
	Generator func(GeneratorConfig) (Generator, error)
}

// DrillResult is what a drill measured and concluded.
type DrillResult struct {
	File         *scenarios.File  // the scenario the stages ran as
	Run          *loadgen.Result  // nil for a dry run
	RecordedPeak float64          // the recording's peak second, requests/s (replays)
	Stages       *FindResult      // one step per stage (phase "stage"), with the services' figures
	Services     []ServiceMeasure // per service: the capacity the drill measured
	Plan         *PlanResult      // the replicas for the plan's peak; nil without capacity:
	PlanError    string           `json:"plan_error,omitempty"`
	Stopped      *DrillStop       // the guard (or a signal) stopped the drill
	Check        *audit.CheckReport
	Audit        *audit.ScanReport
	AuditError   string
}

// GuardBreach is the rule that stopped a drill, as the guard saw it.
type GuardBreach struct {
	Rule        string  `json:"rule,omitempty"`
	Kind        string  `json:"kind,omitempty"` // traffic, promql, health, signal, switch
	Reason      string  `json:"reason"`
	Value       float64 `json:"-"`
	Limit       float64 `json:"-"`
	Consecutive int     `json:"consecutive,omitempty"`
}

// DrillStop says why and when a drill stopped early.
type DrillStop struct {
	Breach      *GuardBreach  `json:"breach,omitempty"` // nil: not the guard (a signal)
	Reason      string        `json:"reason"`
	At          time.Duration `json:"at_ns"`
	Stage       string        `json:"stage"`        // the stage running when it stopped
	LastHealthy string        `json:"last_healthy"` // the last stage that completed and passed
}

// ServiceMeasure is one service's capacity as the drill saw it (see
// measureServices): where the drill saturated it, its rate there; else,
// when it exports its busy time, the utilization law over the stages
// before the first saturation; else the highest rate it served, a lower
// bound. Fanout is its requests per request of the first listed service.
type ServiceMeasure struct {
	Name          string  `json:"name"`
	CapacityQPS   float64 `json:"capacity_qps"` // all replicas together, requests/s
	PerReplicaQPS float64 `json:"per_replica_qps"`
	Fanout        float64 `json:"fanout"`
	Saturated     bool    `json:"saturated"`
	// Stage is the stage the figure comes from; for the utilization law,
	// the stages it was pooled over, joined by ", ".
	Stage string `json:"stage"`
	// Method says where CapacityQPS comes from: "saturated" (its rate
	// where the drill saturated it, over its utilization there when
	// exported), "utilization" (requests over the worker-seconds they took,
	// the utilization law, from its busy-time counter and at least
	// MinLawRequests requests) or "lower bound" (the highest rate it served:
	// it never saturated, and its busy time is not exported or too few of
	// its requests were seen).
	Method string `json:"method"`
	// Requests is how many of the service's requests the figure rests on
	// (those of the stages it was read from); 0 for a lower bound.
	Requests float64 `json:"requests,omitempty"`
}

// StageRates lists each stage's name and rate, for the plan printout.
func StageRates(d *scenarios.Drill, peak float64) []string {
	var out []string
	var at time.Duration
	for _, s := range d.Stages {
		r := d.StageRate(s, peak)
		how := fmt.Sprintf("%.1f req/s", r)
		if s.Multiplier > 0 {
			how = fmt.Sprintf("%.1f req/s (%gx the recorded peak of %.1f/s)", r, s.Multiplier, peak)
		}
		out = append(out, fmt.Sprintf("%-12s %8v..%-8v ramp %-6v hold %-6v %s", s.Name, at, at+s.Ramp+s.Hold, s.Ramp, s.Hold, how))
		at += s.Ramp + s.Hold
	}
	return out
}

// PrepareDrill checks the window and builds the drill's scenario: the
// recording (tagged, at the stages' rates) or the scenario file's mix.
// The returned source is nil for a scenario; close it when done.
func PrepareDrill(cfg DrillConfig) (*scenarios.File, *capture.ReplaySource, float64, error) {
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
	resp, err := scrapeClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return nil
}

// RunDrill runs the stages under the guard, measures each stage and every
// listed service, and at the end (also after a stop) audits the database
// and computes the capacity plan. The error is for failures to run; a stop
// by the guard is in the result.
func RunDrill(ctx context.Context, cfg DrillConfig) (*DrillResult, error) {
	d := cfg.Plan
	res := &DrillResult{}
	if rep, err := CheckIsolation(ctx, d); err != nil {
		res.Check = rep
		return res, err
	} else {
		res.Check = rep
	}
	if problems := CheckSignals(ctx, d); len(problems) > 0 {
		return res, fmt.Errorf("%w: %s", ErrSignals, strings.Join(problems, "; "))
	}
	f, src, peak, err := PrepareDrill(cfg)
	if err != nil {
		return res, err
	}
	if src != nil {
		defer src.Close()
	}
	res.File, res.RecordedPeak = f, peak
	if cfg.Progress != nil {
		fmt.Fprintf(cfg.Progress, "drill %s: %d stages over %v against %s\n", d.DrillID, len(d.Stages), d.Duration(), d.Target)
		for _, l := range StageRates(d, peak) {
			fmt.Fprintln(cfg.Progress, "  "+l)
		}
	}

	var srcs []MetricsSource
	for _, s := range d.Services {
		srcs = append(srcs, MetricsSource{Name: s.Name, URL: s.Metrics})
	}
	tr := &stageTracker{d: d, srcs: srcs, progress: cfg.Progress, peak: peak}
	var observe func(loadgen.Interval)
	var gen Generator
	var stopMu sync.Mutex
	var breach *GuardBreach
	var breachAt time.Duration
	var t0 time.Time
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if cfg.Guard != nil {
		observe, err = cfg.Guard(ctx, func(b GuardBreach) {
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
			tr.cut()
			gen.Kill(CauseGuard, "guard: "+b.Reason)
		})
		if err != nil {
			return res, err
		}
	}
	gc := GeneratorConfig{File: f, RecordedPeak: peak, Progress: cfg.Progress, Live: cfg.Live,
		Interval: func(iv loadgen.Interval) {
			if observe != nil {
				observe(iv)
			}
			tr.interval(iv)
		},
		Start: func(at time.Time) {
			stopMu.Lock()
			t0 = at
			stopMu.Unlock()
			tr.start(at)
		}}
	if src != nil {
		gc.Replay = src
	}
	newGen := cfg.Generator
	if newGen == nil {
		newGen = LocalGenerator
	}
	stopMu.Lock()
	gen, err = newGen(gc)
	if err == nil && breach != nil {
		gen.Kill(CauseGuard, "guard: "+breach.Reason)
	}
	stopMu.Unlock()
	if err != nil {
		return res, err
	}
	r, err := gen.Run(ctx)
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
	res.Stages = tr.finish(r)
	if r.Status == loadgen.StatusAborted {
		stopMu.Lock()
		at := r.Duration
		if breach != nil {
			at = breachAt // when the guard decided, not when the run wound down
		}
		st := min(d.StageAt(at), len(d.Stages)-1)
		res.Stopped = &DrillStop{Breach: breach, Reason: r.AbortReason, At: at, Stage: d.Stages[st].Name, LastHealthy: lastHealthy(res.Stages, d.Stages[st].Name)}
		stopMu.Unlock()
	}
	res.Services = measureServices(d, res.Stages)
	if d.Capacity.PeakQPS > 0 {
		if p, err := drillPlan(d, res.Services); err != nil {
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

// lastHealthy is the last stage that ran to its end and passed; cut is the
// stage the drill stopped in.
func lastHealthy(steps *FindResult, cut string) string {
	name := ""
	for _, st := range steps.Steps {
		if !st.Passed || st.Phase == cut {
			break
		}
		name = st.Phase
	}
	return name
}

func drillAudit(ctx context.Context, d *scenarios.Drill) (*audit.ScanReport, error) {
	db, err := audit.Open(ctx, d.Isolation.DSN)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return audit.Scan(ctx, db, d.DrillID, audit.Markers{Tables: d.Isolation.Tables, IDOffset: d.Isolation.IDOffset})
}

// stageTracker scrapes the services at the edges of every stage's hold
// and prints a line as each stage ends.
type stageTracker struct {
	d        *scenarios.Drill
	srcs     []MetricsSource
	progress io.Writer
	peak     float64

	mu       sync.Mutex
	t0       time.Time
	timers   []*time.Timer
	scrapes  [][2][]scrape // per stage: at the hold's start and end
	services [][]ServiceStats
	printed  int
}

// start schedules the scrapes; t0 is the load's time zero, now or soon
// (agents start together a moment after the call).
func (t *stageTracker) start(t0 time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.t0 = t0
	t.scrapes = make([][2][]scrape, len(t.d.Stages))
	t.services = make([][]ServiceStats, len(t.d.Stages))
	if len(t.srcs) == 0 {
		return
	}
	var at time.Duration
	for i, s := range t.d.Stages {
		holdFrom, holdTo := at+s.Ramp, at+s.Ramp+s.Hold
		at = holdTo
		for edge, when := range []time.Duration{holdFrom, holdTo} {
			t.timers = append(t.timers, time.AfterFunc(time.Until(t0.Add(when)), func() {
				sc := make([]scrape, len(t.srcs))
				(&scraper{srcs: t.srcs}).scrapeAll(sc)
				t.mu.Lock()
				t.scrapes[i][edge] = sc
				if edge == 1 && t.scrapes[i][0] != nil {
					t.services[i] = serviceDelta(t.srcs, t.scrapes[i][0], sc, s.Hold.Seconds())
				}
				t.mu.Unlock()
			}))
		}
	}
}

// cut measures the stage in progress up to now (the guard is stopping the
// drill): the services that saturated it show it.
func (t *stageTracker) cut() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cutLocked()
}

func (t *stageTracker) cutLocked() {
	var from time.Duration
	for i, s := range t.d.Stages {
		holdFrom := from + s.Ramp
		from += s.Ramp + s.Hold
		if t.scrapes != nil && t.scrapes[i][0] != nil && t.scrapes[i][1] == nil {
			if secs := time.Since(t.t0) - holdFrom; secs >= time.Second {
				sc := make([]scrape, len(t.srcs))
				(&scraper{srcs: t.srcs}).scrapeAll(sc)
				t.scrapes[i][1] = sc
				t.services[i] = serviceDelta(t.srcs, t.scrapes[i][0], sc, secs.Seconds())
			}
		}
	}
}

// interval prints the stages that have ended.
func (t *stageTracker) interval(iv loadgen.Interval) {
	if t.progress == nil {
		return
	}
	var end time.Duration
	for i, s := range t.d.Stages {
		end += s.Ramp + s.Hold
		if i == t.printed && iv.End >= end {
			fmt.Fprintf(t.progress, "\nstage %d %s ended (%.1f req/s planned)\n", i+1, s.Name, t.d.StageRate(s, t.peak))
			t.printed++
		}
	}
}

// finish measures every stage that ran: its hold window, as a find step.
func (t *stageTracker) finish(r *loadgen.Result) *FindResult {
	for _, tm := range t.timers {
		tm.Stop()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cutLocked()
	if t.services == nil { // the load never started
		t.services = make([][]ServiceStats, len(t.d.Stages))
	}
	res := &FindResult{SLO: drillSLOText(t.d)}
	sl, sloErr := slo.Parse(res.SLO)
	var at time.Duration
	for i, s := range t.d.Stages {
		holdFrom := at + s.Ramp
		at += s.Ramp + s.Hold
		if holdFrom >= r.Duration || s.Hold < time.Second {
			continue
		}
		hold := min(at, r.Duration.Truncate(time.Second)) - holdFrom
		if hold < time.Second {
			continue
		}
		st, h := measure(r, holdFrom, hold, t.d.StageRate(s, t.peak))
		st.N, st.Phase = i+1, s.Name
		if sloErr == nil {
			st.judge(sl, h)
		} else {
			st.Passed = st.Achieved >= minAchieved*st.Offered && st.Dropped == 0
		}
		st.Services = t.services[i]
		res.Steps = append(res.Steps, *st)
	}
	for _, st := range res.Steps {
		if st.Passed && st.Achieved > res.MaxQPS {
			res.MaxQPS = st.Achieved
		}
	}
	(&search{res: res}).summarize()
	return res
}

// drillSLOText joins the drill rules of the guard into one SLO, the
// pass/fail of each stage.
func drillSLOText(d *scenarios.Drill) string {
	var clauses []string
	for _, r := range d.Guard.Rules {
		if r.Drill != "" {
			clauses = append(clauses, r.Drill)
		}
	}
	return strings.Join(clauses, ",")
}

// measureServices takes each service's capacity from the stages.
//
// The bottleneck is found in the first stage where some service's mean
// latency doubled from its first stage's: of the services there, the
// busiest when one exports its utilization and is at least
// saturatedUtilization busy, else the one whose latency grew the most. A
// saturated server serves its capacity, so its rate there is its capacity
// (over its utilization there when it exports busy time: the two agree
// when it truly saturated, and the law stays right when it did not).
//
// Every other service's capacity comes from the utilization law, X = U·c/S,
// so c/S = X/U = Workers·Requests/BusySeconds, pooled over the stages
// before the bottleneck's (past it, requests waiting on the bottleneck
// hold busy time across the window's edges), when those stages hold at
// least MinLawRequests of its requests. It does not need the service to be
// busy: it needs its busy time measured, and enough requests that the few
// in flight at the window's edges do not count. Without that, the highest
// rate it served is a lower bound.
func measureServices(d *scenarios.Drill, stages *FindResult) []ServiceMeasure {
	bottleneck, at := saturation(stages.Steps)
	if bottleneck != "" {
		stages.FirstSaturated, stages.FirstSaturatedStep = bottleneck, stages.Steps[at].N
	}
	var out []ServiceMeasure
	for _, svc := range d.Services {
		m := ServiceMeasure{Name: svc.Name, Method: "lower bound"}
		for i, st := range stages.Steps {
			if at >= 0 && i > at {
				break
			}
			s, ok := serviceIn(st, svc.Name)
			if !ok || s.RequestRate <= 0 {
				continue
			}
			if s.RequestRate > m.CapacityQPS || (i == at && svc.Name == bottleneck) {
				m.CapacityQPS, m.Fanout, m.Stage = s.RequestRate, s.FanOut, st.Phase
			}
		}
		if svc.Name == bottleneck {
			m.Saturated, m.Method = true, "saturated"
			s, _ := serviceIn(stages.Steps[at], svc.Name)
			m.Requests = s.Requests
			if s.Requests >= MinLawRequests {
				if c := lawCapacity(s.Requests, s.BusySeconds/s.Workers); c > 0 {
					m.CapacityQPS = c
				}
			}
		} else if law := pooledLaw(stages.Steps, at, svc.Name); law.capacity > 0 {
			m.CapacityQPS, m.Fanout, m.Stage, m.Method = law.capacity, law.fanout, strings.Join(law.stages, ", "), "utilization"
			m.Requests = law.requests
		}
		replicas := max(svc.Current, 1)
		m.PerReplicaQPS = m.CapacityQPS / float64(replicas)
		if m.Fanout == 0 {
			m.Fanout = 1
		}
		out = append(out, m)
	}
	return out
}

// MinLawRequests is the fewest requests of a service the utilization law
// is read from. The law is exact over any window when busy time is
// measured exactly, except for the requests in flight at the window's
// edges (their busy time counted, the requests not yet): a handful, so at
// 100 they move the figure by a few percent at most. Random service times
// need more: their mean converges as 1/√n.
const MinLawRequests = 100

// saturatedUtilization is the utilization at which a service counts as
// saturated when the bottleneck is chosen.
const saturatedUtilization = 0.9

// saturation finds the bottleneck and the index of the stage where it
// saturated; "", -1 when no service's latency doubled.
func saturation(steps []Step) (string, int) {
	base := map[string]float64{}
	for i, st := range steps {
		worst, bottleneck := 0.0, ""
		for _, s := range st.Services {
			if s.Error != "" || s.RequestRate <= 0 || s.MeanLatencyMs <= 0 {
				continue
			}
			b, ok := base[s.Name]
			if !ok {
				base[s.Name] = s.MeanLatencyMs
				continue
			}
			if r := s.MeanLatencyMs / b; r >= 2 && r > worst {
				worst, bottleneck = r, s.Name
			}
		}
		if bottleneck == "" {
			continue
		}
		// A service that waits on the bottleneck slows down with it; its
		// utilization does not rise, the bottleneck's does.
		busiest := 0.0
		for _, s := range st.Services {
			if s.Error == "" && s.Utilization >= saturatedUtilization && s.Utilization > busiest {
				busiest, bottleneck = s.Utilization, s.Name
			}
		}
		return bottleneck, i
	}
	return "", -1
}

func serviceIn(st Step, name string) (ServiceStats, bool) {
	for _, s := range st.Services {
		if s.Name == name && s.Error == "" {
			return s, true
		}
	}
	return ServiceStats{}, false
}

// lawCapacity is the utilization law's capacity, requests per second:
// requests over the worker-seconds (busy seconds per worker) they took.
func lawCapacity(requests, workerSeconds float64) float64 {
	if requests <= 0 || workerSeconds <= 0 || math.IsNaN(workerSeconds) || math.IsInf(workerSeconds, 0) {
		return 0
	}
	return requests / workerSeconds
}

type law struct {
	capacity, fanout, requests float64
	stages                     []string
}

// pooledLaw reads the utilization law for service name over the stages
// before index upto (every stage when upto < 0): 0 without busy time or
// with fewer than MinLawRequests requests. The fan-out is pooled the same
// way: its requests over the first service's.
func pooledLaw(steps []Step, upto int, name string) law {
	var l law
	var requests, workerSecs, entry float64
	for i, st := range steps {
		if upto >= 0 && i >= upto {
			break
		}
		s, ok := serviceIn(st, name)
		if !ok || s.Workers <= 0 || s.BusySeconds <= 0 || s.Requests <= 0 {
			continue
		}
		requests += s.Requests
		workerSecs += s.BusySeconds / s.Workers
		if len(st.Services) > 0 && st.Services[0].Error == "" {
			entry += st.Services[0].Requests
		}
		l.stages = append(l.stages, st.Phase)
	}
	if requests < MinLawRequests {
		return law{}
	}
	l.capacity, l.requests = lawCapacity(requests, workerSecs), requests
	if entry > 0 {
		l.fanout = requests / entry
	}
	return l
}

// drillPlan turns the measured capacities into the plan for the peak.
func drillPlan(d *scenarios.Drill, services []ServiceMeasure) (*PlanResult, error) {
	p := &scenarios.Plan{Path: d.Path, Peak: scenarios.Peak{EntryQPS: d.Capacity.PeakQPS}, Headroom: d.Capacity.Headroom,
		Redundancy: d.Capacity.Redundancy, MaxReplicas: d.Capacity.MaxReplicas}
	for i, s := range services {
		if s.PerReplicaQPS <= 0 || math.IsNaN(s.PerReplicaQPS) {
			return nil, fmt.Errorf("service %s: no request rate measured from %s", s.Name, d.Services[i].Metrics)
		}
		p.Services = append(p.Services, scenarios.PlanService{Name: s.Name, CapacityQPS: s.PerReplicaQPS, Fanout: s.Fanout,
			Current: d.Services[i].Current, Zones: max(d.Services[i].Zones, 1), LowerBound: s.Method == "lower bound"})
	}
	return Compute(p)
}
