package capacity

import (
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/scenarios"
	"github.com/loadcap/loadcap/scenarios/slo"
)

// This file measures a drill's stages: each stage's hold as a find step,
// the services' figures between scrapes at its edges, each service's
// capacity from them, and the plan of replicas. The drill itself (the
// guard, the pre-flight, the audit, running the load) is package
// capacity/drill.

// NewStageTracker returns the tracker of d's stages, reading srcs at the
// edges of every hold; progress gets a line as each stage ends (nil: none);
// peak is the recording's peak second that multipliers scale.
func NewStageTracker(d *scenarios.Drill, srcs []MetricsSource, progress io.Writer, peak float64) *StageTracker {
	return &StageTracker{d: d, srcs: srcs, progress: progress, peak: peak}
}

// ServiceMeasure is one service's capacity as the drill saw it (see
// MeasureServices): where the drill saturated it, its rate there; else,
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

// LastHealthy is the last stage that ran to its end and passed; cut is the
// stage the drill stopped in.
func LastHealthy(steps *FindResult, cut string) string {
	name := ""
	for _, st := range steps.Steps {
		if !st.Passed || st.Phase == cut {
			break
		}
		name = st.Phase
	}
	return name
}

// StageTracker scrapes the services at the edges of every stage's hold,
// prints a line as each stage ends, and measures each stage's hold from
// the seconds it is given (Interval) as soon as the stage is over,
// keeping only the seconds a stage not yet measured needs: a drill of any
// length measures its stages in flat memory, whatever its result keeps.
type StageTracker struct {
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
	held     []loadgen.Interval // the seconds a stage not yet measured needs
	fed      bool               // Interval was called
	measured []*stageMeasure    // per stage, once its hold is over
}

// stageMeasure is a stage's hold, measured.
type stageMeasure struct {
	st *Step
	w  *loadgen.Window
}

// holdSeconds is stage i's hold as the seconds measure reads: from its
// first second to the one after its last; ok is false for a hold too
// short to measure.
func (t *StageTracker) holdSeconds(i int) (holdFrom time.Duration, from, to int, ok bool) {
	var at time.Duration
	for _, s := range t.d.Stages[:i] {
		at += s.Ramp + s.Hold
	}
	s := t.d.Stages[i]
	holdFrom = at + s.Ramp
	return holdFrom, int(holdFrom / time.Second), int((holdFrom + s.Hold) / time.Second), s.Hold >= time.Second
}

// Start schedules the scrapes; t0 is the load's time zero, now or soon
// (agents start together a moment after the call).
func (t *StageTracker) Start(t0 time.Time) {
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

// Cut measures the stage in progress up to now (the guard is stopping the
// drill): the services that saturated it show it.
func (t *StageTracker) Cut() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cutLocked()
}

func (t *StageTracker) cutLocked() {
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

// Latest is the last stage whose hold has been measured, and each
// service's figures over it; "" and nil before the first. Safe to call
// while the drill runs.
func (t *StageTracker) Latest() (string, []ServiceStats) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := len(t.services) - 1; i >= 0; i-- {
		if t.services[i] != nil {
			return t.d.Stages[i].Name, append([]ServiceStats(nil), t.services[i]...)
		}
	}
	return "", nil
}

// Interval takes the run's next closed second: it measures every stage
// whose hold is over (a later second has come, so none of its seconds is
// the run's closing one) and prints the stages that have ended.
func (t *StageTracker) Interval(iv loadgen.Interval) {
	t.mu.Lock()
	t.fed = true
	t.held = append(t.held, iv)
	if t.measured == nil {
		t.measured = make([]*stageMeasure, len(t.d.Stages))
	}
	need := iv.T + 1 // the earliest second a stage not yet measured reads
	for i, s := range t.d.Stages {
		if t.measured[i] != nil {
			continue
		}
		holdFrom, from, to, ok := t.holdSeconds(i)
		if ok && iv.T > to {
			st, w := measure(&loadgen.Result{Intervals: t.held}, holdFrom, s.Hold, t.d.StageRate(s, t.peak))
			t.measured[i] = &stageMeasure{st, w}
			continue
		}
		if ok {
			need = min(need, from-1) // the second before the hold: the in-flight integral's start
		}
	}
	drop := 0
	for drop < len(t.held) && t.held[drop].T < need {
		drop++
	}
	if drop > 0 {
		t.held = append(t.held[:0], t.held[drop:]...)
	}
	t.mu.Unlock()
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

// Finish measures every stage that ran: its hold window, as a find step.
// A stage Interval measured keeps that measure; the others are measured
// from the seconds Interval kept (r's own when Interval was never called),
// up to r's end.
func (t *StageTracker) Finish(r *loadgen.Result) *FindResult {
	for _, tm := range t.timers {
		tm.Stop()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cutLocked()
	if t.services == nil { // the load never started
		t.services = make([][]ServiceStats, len(t.d.Stages))
	}
	res := &FindResult{SLO: DrillSLO(t.d)}
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
		var st *Step
		var h *loadgen.Window
		switch {
		case i < len(t.measured) && t.measured[i] != nil:
			st, h = t.measured[i].st, t.measured[i].w
		case t.fed:
			st, h = measure(&loadgen.Result{Intervals: t.held}, holdFrom, hold, t.d.StageRate(s, t.peak))
		default:
			st, h = measure(r, holdFrom, hold, t.d.StageRate(s, t.peak))
		}
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

// DrillSLO joins the drill rules of the guard into one SLO, the
// pass/fail of each stage.
func DrillSLO(d *scenarios.Drill) string {
	var clauses []string
	for _, r := range d.Guard.Rules {
		if r.Drill != "" {
			clauses = append(clauses, r.Drill)
		}
	}
	return strings.Join(clauses, ",")
}

// MeasureServices takes each service's capacity from the stages.
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
func MeasureServices(d *scenarios.Drill, stages *FindResult) []ServiceMeasure {
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
			if !ok || s.GoodRate <= 0 {
				continue
			}
			// Goodput: the requests it failed are no capacity.
			if s.GoodRate > m.CapacityQPS || (i == at && svc.Name == bottleneck) {
				m.CapacityQPS, m.Fanout, m.Stage = s.GoodRate, s.FanOut, st.Phase
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

// DrillPlan turns the measured capacities into the plan for the peak.
func DrillPlan(d *scenarios.Drill, services []ServiceMeasure) (*PlanResult, error) {
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
