// Package capacity turns measurements into capacity: the highest arrival
// rate one node sustains under an SLO (Find), the Universal Scalability Law
// fitted to throughput against concurrency (FitUSL), and the replicas and
// autoscaler configuration a target peak needs (Compute, WriteHPA,
// WriteKEDA).
package capacity

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"time"

	"github.com/loadcap/loadcap/internal/runner"
	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/loadgen/live"
	"github.com/loadcap/loadcap/scenarios"
	"github.com/loadcap/loadcap/scenarios/slo"
)

// Defaults of the search.
const (
	DefaultStartRate = 10.0 // req/s
	DefaultFactor    = 2.0  // geometric ramp
	DefaultTolerance = 0.03 // bisect until the bracket is within 3%
	DefaultWarmup    = 5 * time.Second
	DefaultWindow    = 10 * time.Second
	DefaultSoak      = 30 * time.Second
	DefaultMaxSteps  = 20
	DefaultMaxVUs    = 2000

	// minAchieved is the share of the offered rate a step must achieve.
	minAchieved = 0.95
	// littleTolerance flags a step whose mean concurrency is off the
	// Little's law figure X·R by more than this: it was not in steady state.
	littleTolerance = 0.10
	// maxRepeats is how often a failed step is run again because its
	// generator was stalled.
	maxRepeats = 2
)

// FindConfig configures Find. Base supplies the request mix, target and
// HTTP options; its scenarios and thresholds are replaced by the search's
// constant-arrival-rate steps and the SLO.
type FindConfig struct {
	Base      *scenarios.File
	SLO       slo.SLO
	StartRate float64       // first step, req/s
	Factor    float64       // ramp multiplier, 1.5–2 is sensible
	Tolerance float64       // relative width of the final bracket
	Warmup    time.Duration // per step, excluded from the measurement (whole seconds)
	Window    time.Duration // per step, measured (whole seconds)
	Soak      time.Duration // the confirming step at the answer
	MaxSteps  int
	MaxRate   float64 // never offer more than this (0 = no limit)
	MaxVUs    int     // in-flight cap of each step
	Metrics   []MetricsSource
	Progress  io.Writer // one line per step as it ends; nil = silent
	// RunStep, when set, generates each step's load instead of loadcap's
	// engine (a k6 script: see StepLoad); Base is then not used.
	RunStep func(ctx context.Context, load StepLoad) (*loadgen.Result, error)
	// Live, when set, gets every step's closed intervals: the live metrics
	// of --metrics-listen and --out prometheus-rw.
	Live *live.Metrics
}

// StepLoad is one step's constant-arrival-rate workload.
type StepLoad struct {
	Rate            float64       // arrivals per second
	Duration        time.Duration // warm-up + window (+ soak)
	PreAllocatedVUs int
	MaxVUs          int
	GracefulStop    time.Duration
	// Live gets the step's closed intervals (FindConfig.Live); nil for none.
	Live *live.Metrics
}

func (c *FindConfig) defaults() {
	if c.StartRate <= 0 {
		c.StartRate = DefaultStartRate
	}
	if c.Factor <= 1 {
		c.Factor = DefaultFactor
	}
	if c.Tolerance <= 0 {
		c.Tolerance = DefaultTolerance
	}
	if c.Warmup < 0 {
		c.Warmup = 0
	}
	c.Warmup = c.Warmup.Round(time.Second)
	if c.Window < time.Second {
		c.Window = DefaultWindow
	}
	c.Window = c.Window.Round(time.Second)
	if c.Soak <= 0 {
		c.Soak = DefaultSoak
	}
	c.Soak = c.Soak.Round(time.Second)
	if c.MaxSteps <= 0 {
		c.MaxSteps = DefaultMaxSteps
	}
	if c.MaxVUs <= 0 {
		c.MaxVUs = DefaultMaxVUs
	}
}

// ClauseResult is one SLO clause evaluated on one step.
type ClauseResult struct {
	Clause string  `json:"clause"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit,omitempty"` // of Value: "ms", "ratio" or "/s" (slo.Expr.Unit)
	Passed bool    `json:"passed"`
}

// StepLatency is a step's latency from the intended send time, in ms.
type StepLatency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Mean float64 `json:"mean"`
	Max  float64 `json:"max"`
}

// Step is one constant-arrival-rate run of the search, measured over its
// window.
type Step struct {
	N           int            `json:"n"`
	Phase       string         `json:"phase"` // ramp, search or soak
	Offered     float64        `json:"offered"`
	Achieved    float64        `json:"achieved"`     // goodput: successful responses per second in the window
	FailedRate  float64        `json:"failed_per_s"` // failed responses (errors, timeouts) per second, never in Achieved
	Concurrency float64        `json:"concurrency"`  // mean requests in flight over the window (exact time average)
	LittleN     float64        `json:"little_n"`     // X·R: finished (good and failed) per second × mean service time
	LittleOK    bool           `json:"little_ok"`    // concurrency within 10% of X·R: the window was in steady state
	LatencyMs   StepLatency    `json:"latency_ms"`
	ServiceMs   float64        `json:"service_mean_ms"`
	ErrorRate   float64        `json:"error_rate"`
	Dropped     int64          `json:"dropped"`
	Clauses     []ClauseResult `json:"clauses"`
	Passed      bool           `json:"passed"`
	Reason      string         `json:"reason,omitempty"` // why it failed
	// Disturbed says the generator was kept from running long enough in
	// the window to set some of its latency (its host was starved of CPU):
	// the longest stall and the host's steal share. A failed disturbed
	// step is Repeated (at most maxRepeats times) and left out of the
	// search and the fits.
	Disturbed string         `json:"disturbed,omitempty"`
	StallMs   float64        `json:"generator_stall_ms,omitempty"`
	Repeated  bool           `json:"repeated,omitempty"`
	Services  []ServiceStats `json:"services,omitempty"`
	// ErrorsBreakSLO says the step failed the SLO's error clause: its
	// goodput is no capacity, and it stays out of the USL fit.
	ErrorsBreakSLO bool `json:"errors_break_slo,omitempty"`
}

// maxFitErrorRate keeps a step out of the USL fit when the SLO has no
// error clause: a server shedding this share of its load is past capacity.
const maxFitErrorRate = 0.05

// feedsFit reports whether a step's goodput is a point of the USL fit.
func (st *Step) feedsFit() bool {
	return !st.Repeated && !st.ErrorsBreakSLO && st.ErrorRate <= maxFitErrorRate && st.Concurrency > 0 && st.Achieved > 0
}

// Knee is where latency turns up against throughput (Kneedle).
type Knee struct {
	Throughput float64 `json:"throughput"`
	P99Ms      float64 `json:"p99_ms"`
	Step       int     `json:"step"`
}

// FindResult is the outcome of Find (find.json).
type FindResult struct {
	MaxQPS        float64 `json:"max_qps"`        // highest passing rate (confirmed when Confirmed)
	Confirmed     bool    `json:"confirmed"`      // the soak at MaxQPS passed
	SaturationQPS float64 `json:"saturation_qps"` // highest goodput achieved at any step
	SLO           string  `json:"slo"`
	Knee          *Knee   `json:"knee"`
	Steps         []Step  `json:"steps"`
	USL           *USL    `json:"usl"`
	USLError      string  `json:"usl_error,omitempty"`
	// FirstSaturated names the scraped service whose mean latency first
	// rose past twice its lowest-step value, with the step it happened at.
	FirstSaturated     string   `json:"first_saturated,omitempty"`
	FirstSaturatedStep int      `json:"first_saturated_step,omitempty"`
	Notes              []string `json:"notes,omitempty"`
	// Partial is set on an interrupted search (MarkPartial): Steps are the
	// steps done, MaxQPS is 0 (not found), and a note says why and gives
	// the highest rate that passed so far.
	Partial bool `json:"partial,omitempty"`
}

// Find searches for the highest constant arrival rate the target sustains
// under the SLO: a geometric ramp until a step fails, a bisection between
// the last pass and the first failure (narrowed by the throughput the
// failing step achieved, which bounds capacity from above) to within the
// tolerance, and a soak at the answer. A failed soak steps down by the
// tolerance and soaks again, at most twice.
//
// When ctx is cancelled (a signal), the step in progress ends and counts
// for nothing, no other starts, and Find returns the steps done (with
// their saturation, knee and USL fit) and the cancellation's cause.
func Find(ctx context.Context, cfg FindConfig) (_ *FindResult, err error) {
	cfg.defaults()
	if cfg.RunStep == nil && (cfg.Base == nil || len(cfg.Base.Requests) == 0) {
		return nil, errors.New("capacity find: no requests to send")
	}
	res := &FindResult{SLO: cfg.SLO.Text}
	s := &search{cfg: cfg, res: res}
	defer func() {
		if err != nil {
			s.summarize() // what the steps done say
		}
	}()

	var lastPass, firstFail, failAchieved float64
	rate := cfg.StartRate
	for {
		if cfg.MaxRate > 0 && rate > cfg.MaxRate {
			rate = cfg.MaxRate
		}
		st, err := s.step(ctx, "ramp", rate, cfg.Warmup+cfg.Window)
		if err != nil {
			return res, err
		}
		if !st.Passed {
			firstFail, failAchieved = rate, st.Achieved
			break
		}
		lastPass = rate
		if cfg.MaxRate > 0 && rate >= cfg.MaxRate {
			res.Notes = append(res.Notes, fmt.Sprintf("reached --max-rate %.4g req/s without failing the SLO: capacity is at least that", cfg.MaxRate))
			break
		}
		if s.judged() >= cfg.MaxSteps {
			res.Notes = append(res.Notes, "step budget spent while ramping")
			break
		}
		rate *= cfg.Factor
	}
	if firstFail > 0 {
		hi := firstFail
		// A saturated target achieves about its capacity: no rate above
		// what the failing step achieved (plus the tolerance) can pass.
		// When even that is no more than the last passing rate (the
		// target collapsed under the overload, or the pass was right at
		// capacity), capacity is about the last pass: probe just above it
		// instead of bisecting down from the overload.
		if cap := failAchieved * (1 + cfg.Tolerance); failAchieved > 0 && cap < hi {
			hi = max(cap, min(hi, lastPass*(1+2*cfg.Tolerance)))
		}
		lo := lastPass
		// The failing step's goodput is where a saturated target tops
		// out: probe it first. If it passes, the bracket is already
		// within the tolerance; if not, the bisection goes on below it
		// and the probe cost one step.
		probe := 0.0
		if failAchieved > 0 && hi < firstFail {
			probe = hi / (1 + cfg.Tolerance)
		}
		for lo == 0 || (hi-lo)/lo > cfg.Tolerance {
			if s.judged() >= cfg.MaxSteps {
				res.Notes = append(res.Notes, "step budget spent while bisecting")
				break
			}
			mid := (lo + hi) / 2
			if lo == 0 {
				mid = hi / cfg.Factor
			}
			if probe > lo && probe < hi {
				mid = probe
			}
			probe = 0
			st, err := s.step(ctx, "search", mid, cfg.Warmup+cfg.Window)
			if err != nil {
				return res, err
			}
			if st.Passed {
				lo = mid
			} else {
				hi = mid
			}
			if lo == 0 && mid < 0.01 {
				break
			}
		}
		lastPass = lo
	}
	if lastPass > 0 {
		for try := 0; try < 3; try++ {
			st, err := s.step(ctx, "soak", lastPass, cfg.Warmup+cfg.Soak)
			if err != nil {
				return res, err
			}
			if st.Passed {
				res.Confirmed = true
				break
			}
			lastPass *= 1 - cfg.Tolerance
		}
		if !res.Confirmed {
			res.Notes = append(res.Notes, "the soak failed three times: the target does not hold a steady rate; max_qps is not confirmed")
		}
	}
	res.MaxQPS = lastPass
	if lastPass == 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("even the lowest rate failed the SLO (%s)", cfg.SLO.Text))
	}
	s.summarize()
	return res, nil
}

type search struct {
	cfg FindConfig
	res *FindResult
}

// judged counts the steps that were not repeated.
func (s *search) judged() int {
	n := 0
	for _, st := range s.res.Steps {
		if !st.Repeated {
			n++
		}
	}
	return n
}

// step runs one constant-arrival-rate step and measures its window. A step
// that fails while its generator was kept from running (a starved host:
// the latency then describes the generator, not the target) is run again,
// at most maxRepeats times; the last run counts.
func (s *search) step(ctx context.Context, phase string, rate float64, total time.Duration) (*Step, error) {
	for try := 0; ; try++ {
		// A cancelled search starts no step: the steps done are its result.
		if ctx.Err() != nil {
			return nil, fmt.Errorf("capacity find: %w", context.Cause(ctx))
		}
		st, err := s.stepOnce(ctx, phase, rate, total, try < maxRepeats)
		if err != nil || !st.Repeated {
			return st, err
		}
	}
}

func (s *search) stepOnce(ctx context.Context, phase string, rate float64, total time.Duration, mayRepeat bool) (*Step, error) {
	cfg := &s.cfg
	load := StepLoad{
		Rate:            rate,
		Duration:        total,
		PreAllocatedVUs: int(math.Min(float64(cfg.MaxVUs), math.Ceil(rate/20)+10)),
		MaxVUs:          cfg.MaxVUs,
		GracefulStop:    min(cfg.Window/2, 5*time.Second),
		Live:            cfg.Live,
	}
	run := cfg.RunStep
	if run == nil {
		run = s.engineStep
	}
	measured := total - cfg.Warmup
	var scr *scraper
	if len(cfg.Metrics) > 0 {
		scr = newScraper(cfg.Metrics, cfg.Warmup, measured)
	}
	r, err := run(ctx, load)
	if err != nil {
		return nil, err
	}
	if ctx.Err() != nil { // the step ended early: a part of a step is no step
		return nil, fmt.Errorf("capacity find: the step at %.4g req/s: %w", rate, context.Cause(ctx))
	}
	if r.Status == loadgen.StatusAborted {
		return nil, fmt.Errorf("capacity find: step at %.4g req/s aborted: %s", rate, r.AbortReason)
	}
	st, h := measure(r, cfg.Warmup, measured, rate)
	st.N, st.Phase = len(s.res.Steps)+1, phase
	st.judge(cfg.SLO, h)
	st.Repeated = !st.Passed && st.Disturbed != "" && mayRepeat
	if scr != nil {
		st.Services = scr.wait()
	}
	s.res.Steps = append(s.res.Steps, *st)
	if cfg.Progress != nil {
		verdict := "pass"
		if !st.Passed {
			verdict = "FAIL: " + st.Reason
		}
		if st.Repeated {
			verdict += "; not judged, " + st.Disturbed + ": repeating"
		} else if st.Disturbed != "" {
			verdict += " (" + st.Disturbed + ")"
		}
		fmt.Fprintf(cfg.Progress, "step %2d %-6s offered %8.1f/s  achieved %8.1f/s  N %6.1f  p99 %8.2fms  errors %5.2f%%  %s\n",
			st.N, phase, st.Offered, st.Achieved, st.Concurrency, st.LatencyMs.P99, 100*st.ErrorRate, verdict)
	}
	return st, nil
}

// engineStep runs one step's load on loadcap's engine with Base's
// requests.
func (s *search) engineStep(ctx context.Context, load StepLoad) (*loadgen.Result, error) {
	f := *s.cfg.Base
	f.Thresholds = nil
	f.Scenarios = []scenarios.Scenario{s.cfg.Base.NewScenario("step", scenarios.Workload{
		Model:           scenarios.Open,
		StartRatePerSec: load.Rate,
		RateStages:      []scenarios.RateStage{{TargetPerSec: load.Rate, Duration: load.Duration}},
		PreAllocatedVUs: load.PreAllocatedVUs,
		MaxVUs:          load.MaxVUs,
		GracefulStop:    load.GracefulStop,
	}, nil)}
	r, err := runner.New(ctx, runner.Config{File: &f, Metrics: load.Live})
	if err != nil {
		return nil, fmt.Errorf("capacity find: %w", err)
	}
	defer r.Close()
	return r.Run(ctx)
}

// measure reduces a step's run to the window after the warm-up; it also
// returns the window's latency histogram (µs).
func measure(r *loadgen.Result, warmup, window time.Duration, offered float64) (*Step, *loadgen.Window) {
	st := &Step{Offered: offered}
	from, to := int(warmup/time.Second), int((warmup+window)/time.Second)
	var busy0, busy1, t0, t1 time.Duration // the in-flight integral at the window's edges
	lo, hi := -1, -1                       // the window's intervals: r.Intervals[lo:hi]
	last := len(r.Intervals) - 1
	for i, iv := range r.Intervals {
		// Drops count in the window and, when the window reaches the
		// run's end, in the closing interval (arrivals cut off by the
		// end); a drill's stages share one run and count only their own.
		if iv.T >= from && (iv.T < to || i == last && iv.T <= to) {
			st.Dropped += iv.Dropped
		}
		if iv.T == from-1 {
			busy0, t0 = iv.Busy, iv.End
		}
		if iv.T < from || iv.T >= to {
			continue
		}
		if lo < 0 {
			lo = i
		}
		hi = i + 1
		busy1, t1 = iv.Busy, iv.End
	}
	var w loadgen.Window
	if lo >= 0 {
		w = loadgen.MergeWindow(r.Intervals[lo:hi])
	}
	// The SLO's rps is per second of the configured window, as Achieved.
	w.Elapsed = window
	st.StallMs = float64(w.Stall.Microseconds()) / 1000
	if loadgen.HostStalled(w.Stall, w.Steal) {
		st.Disturbed = fmt.Sprintf("the generator was stalled up to %.0f ms", st.StallMs)
		if w.Steal > loadgen.StealAfter {
			st.Disturbed += fmt.Sprintf(", host steal %.0f%%", 100*w.Steal)
		}
	}
	done, svc := w.Finished(), w.ServiceSum
	secs := window.Seconds()
	// Goodput: a fast failure is no capacity. The failures are shown
	// beside it; Little's law below counts every finished request, as
	// every one of them occupied the server.
	st.Achieved = float64(done-w.Failed) / secs
	st.FailedRate = float64(w.Failed) / secs
	st.LittleN = svc.Seconds() / secs
	if t1 > t0 {
		st.Concurrency = (busy1 - busy0).Seconds() / (t1 - t0).Seconds()
	}
	if done > 0 {
		st.ErrorRate = float64(w.Failed) / float64(done)
		st.ServiceMs = float64(svc.Microseconds()) / 1000 / float64(done)
	}
	// Little's law: the time-averaged in-flight count against X·R. They
	// part when the window is not in steady state (a queue still growing
	// holds requests that have not completed yet); the small absolute slack
	// covers the requests that straddle the window's edges.
	st.LittleOK = math.Abs(st.Concurrency-st.LittleN) <= littleTolerance*math.Max(st.Concurrency, st.LittleN)+0.05
	ms := func(us int64) float64 { return float64(us) / 1000 }
	if h := w.Hist; h != nil && h.TotalCount() > 0 {
		st.LatencyMs = StepLatency{
			P50: ms(h.ValueAtPercentile(50)), P90: ms(h.ValueAtPercentile(90)),
			P99: ms(h.ValueAtPercentile(99)), P999: ms(h.ValueAtPercentile(99.9)),
			Mean: h.Mean() / 1000, Max: ms(h.Max()),
		}
	}
	return st, &w
}

// judge applies the SLO and find's own conditions over the step's window.
func (st *Step) judge(o slo.SLO, w *loadgen.Window) {
	st.Passed = true
	fail := func(why string) {
		if st.Passed {
			st.Reason = why
		}
		st.Passed = false
	}
	for _, c := range o.Eval(w).Clauses {
		v := c.Value
		if math.IsNaN(v) {
			v = 0 // nothing finished: the step fails on achieved below
		}
		st.Clauses = append(st.Clauses, ClauseResult{Clause: c.Expr.Text, Value: v, Unit: c.Expr.Unit(), Passed: c.Passed})
		if !c.Passed && c.Expr.Agg == slo.Error {
			st.ErrorsBreakSLO = true
		}
		if !c.Passed {
			fail(fmt.Sprintf("%s (was %.4g)", c.Expr.Text, v))
		}
	}
	if st.Achieved < minAchieved*st.Offered {
		fail(fmt.Sprintf("achieved %.4g/s < 95%% of offered", st.Achieved))
	}
	if st.Dropped > 0 {
		fail(fmt.Sprintf("%d requests dropped", st.Dropped))
	}
}

// summarize fills the figures derived from all steps: saturation, knee, USL.
func (s *search) summarize() {
	res := s.res
	var pts []Point
	for _, st := range res.Steps {
		if st.Repeated {
			continue
		}
		res.SaturationQPS = math.Max(res.SaturationQPS, st.Achieved)
		if st.feedsFit() {
			pts = append(pts, Point{N: st.Concurrency, X: st.Achieved})
		}
	}
	res.Knee = kneedle(res.Steps)
	res.FirstSaturated, res.FirstSaturatedStep = firstSaturated(res.Steps)
	sort.Slice(pts, func(i, j int) bool { return pts[i].N < pts[j].N })
	if u, err := FitUSL(pts); err == nil {
		res.USL = u
	} else {
		res.USLError = err.Error()
	}
}

// kneedle finds the knee of p99 latency against achieved throughput (Satopää
// et al., "Finding a Kneedle in a Haystack"): normalise both to [0, 1]; for
// a convex increasing curve the knee is where x − y is largest.
func kneedle(steps []Step) *Knee {
	type pt struct {
		x, y float64
		n    int
	}
	var ps []pt
	for _, st := range steps {
		if st.Phase != "soak" && !st.Repeated && st.Achieved > 0 {
			ps = append(ps, pt{st.Achieved, st.LatencyMs.P99, st.N})
		}
	}
	if len(ps) < 3 {
		return nil
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].x < ps[j].x })
	x0, x1, y0, y1 := ps[0].x, ps[len(ps)-1].x, ps[0].y, ps[0].y
	for _, p := range ps {
		y0, y1 = math.Min(y0, p.y), math.Max(y1, p.y)
	}
	if x1 == x0 || y1 == y0 {
		return nil
	}
	best, bi := math.Inf(-1), -1
	for i, p := range ps {
		d := (p.x-x0)/(x1-x0) - (p.y-y0)/(y1-y0)
		if d > best {
			best, bi = d, i
		}
	}
	if bi <= 0 || bi == len(ps)-1 {
		return nil
	}
	return &Knee{Throughput: ps[bi].x, P99Ms: ps[bi].y, Step: ps[bi].n}
}

// firstSaturated looks at the steps in order of offered rate and returns
// the first service whose mean latency reached twice its value at the
// lowest rate: in a chain of services, the one that ran out first.
func firstSaturated(steps []Step) (string, int) {
	ordered := make([]Step, 0, len(steps))
	for _, st := range steps {
		if st.Phase != "soak" && !st.Repeated && len(st.Services) > 0 {
			ordered = append(ordered, st)
		}
	}
	sort.SliceStable(ordered, func(i, j int) bool { return ordered[i].Offered < ordered[j].Offered })
	if len(ordered) < 2 {
		return "", 0
	}
	base := map[string]float64{}
	for _, sv := range ordered[0].Services {
		if sv.Error == "" && sv.MeanLatencyMs > 0 {
			base[sv.Name] = sv.MeanLatencyMs
		}
	}
	for _, st := range ordered[1:] {
		for _, sv := range st.Services {
			if b, ok := base[sv.Name]; ok && sv.Error == "" && sv.MeanLatencyMs >= 2*b {
				return sv.Name, st.N
			}
		}
	}
	return "", 0
}

// Probe runs one step at rate, measured and judged as find's steps are
// (cfg's warm-up, window, SLO and metrics sources; a step its generator
// was kept from running in is repeated), and returns it. capacity verify
// drives the planned peak with it.
func Probe(ctx context.Context, cfg FindConfig, phase string, rate float64) (*Step, error) {
	cfg.defaults()
	if cfg.RunStep == nil && (cfg.Base == nil || len(cfg.Base.Requests) == 0) {
		return nil, errors.New("no requests to send")
	}
	s := &search{cfg: cfg, res: &FindResult{SLO: cfg.SLO.Text}}
	st, err := s.step(ctx, phase, rate, cfg.Warmup+cfg.Window)
	if err != nil {
		return nil, err
	}
	st.N = len(s.res.Steps)
	return st, nil
}
