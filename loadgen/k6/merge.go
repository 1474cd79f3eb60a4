package k6

import (
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"time"

	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/scenarios"
)

// MergeConfig configures a Merge.
type MergeConfig struct {
	Path       string                 // the script, for the result
	Parts      int                    // children (agents), one execution segment each
	Start      time.Time              // the run's agreed start
	Thresholds []scenarios.Threshold  // loadcap's own, evaluated on the merged data
	Progress   io.Writer              // progress lines of the merged run; nil for none
	Live       bool                   // rewrite one progress line in place
	Hook       func(loadgen.Interval) // called after every merged interval
	// KeepIntervals, when positive, keeps only about the last so many
	// merged intervals in the result (loadgen.WithIntervalRetention), for
	// a caller whose Hook streams them to disk.
	KeepIntervals int
	// Stop is called once when one of Thresholds with abortOnFail fails on
	// the merged data; the caller stops every part. It is called without
	// Merge's lock held.
	Stop func(cause, reason string)
}

// Merge merges the streams of several k6 children, each running one
// execution segment of the same test (the agents of a distributed run),
// into one Outcome, as a Runner does for its one child. Feed it every
// frame of every part (Frame: the lines a Runner hands to WithFrames),
// then End or Lose each part, then call Outcome once.
//
// Thresholds: k6's own verdicts are per segment. Outcome evaluates each of
// the script's thresholds that loadcap measures (ParseThreshold's metrics,
// and checks' rate) on the merged data; the others keep the agents' k6
// verdicts (failed when one agent's failed) with a Note saying so.
//
// Its methods are safe for concurrent use.
type Merge struct {
	cfg MergeConfig

	mu      sync.Mutex
	c       *collector
	exits   []int
	errs    []string
	stopped bool
	pending string // an abort to pass to cfg.Stop once unlocked
}

// NewMerge returns a Merge for cfg.Parts parts.
func NewMerge(cfg MergeConfig) (*Merge, error) {
	if cfg.Parts < 1 {
		return nil, fmt.Errorf("k6: merge %d parts", cfg.Parts)
	}
	m := &Merge{cfg: cfg, exits: make([]int, cfg.Parts), errs: make([]string, cfg.Parts)}
	c := &collector{
		path: cfg.Path, thresholds: cfg.Thresholds, live: cfg.Live, hook: cfg.Hook, keep: cfg.KeepIntervals,
		iters: map[string]*Iterations{}, checks: map[checkKey]*Check{},
		start: cfg.Start, startAt: !cfg.Start.IsZero(),
	}
	if cfg.Progress != nil {
		c.progress = &muteWriter{w: cfg.Progress}
	}
	c.stop = func(_, reason string) {
		if !m.stopped {
			m.stopped, m.pending = true, reason
		}
	}
	c.part(cfg.Parts - 1)
	m.c = c
	return m, nil
}

// Start sets the run's start (the agreed instant), when it was not known
// at NewMerge.
func (m *Merge) Start(t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.c.start, m.c.startAt = t, true
}

// Frame takes part's next frame: one line of its child's stream. An error
// means the part's stream is corrupt (count the part lost).
func (m *Merge) Frame(part int, line []byte) error {
	m.mu.Lock()
	var err error
	if part < 0 || part >= m.cfg.Parts {
		err = fmt.Errorf("k6: merge: no part %d", part)
	} else {
		err = m.c.line(part, line)
	}
	stop := m.pending
	m.pending = ""
	m.mu.Unlock()
	if stop != "" && m.cfg.Stop != nil {
		m.cfg.Stop(loadgen.CauseThreshold, stop)
	}
	return err
}

// End records that part's child exited with k6's exit code and error
// message (Outcome.ExitCode and Err of its Runner).
func (m *Merge) End(part, exit int, k6err string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.c.part(part)
	if p.ended != nil || p.lost != nil {
		return
	}
	m.exits[part], m.errs[part] = exit, k6err
	fin := partFinal(p)
	if cause, reason := k6Cause(p.final, exit); cause != "" {
		fin.Status, fin.AbortCause, fin.AbortReason = loadgen.StatusAborted, cause, reason
	}
	p.ended = &fin
	if m.c.m != nil {
		_ = m.c.m.Finish(part, fin)
	}
}

// Lose records that part ended early without its child's end: what it sent
// stays in the result, which is marked partial.
func (m *Merge) Lose(part int, l loadgen.Lost) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.c.part(part)
	if p.ended != nil || p.lost != nil {
		return
	}
	l.Uncounted = "k6 schedules a script's iterations itself"
	p.lost = &l
	if m.c.m != nil {
		m.c.m.Lose(part, l)
	}
}

// Abort marks the run aborted (the caller stopped it), unless it already is.
func (m *Merge) Abort(cause, reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.c.abortCause == "" {
		m.c.abortCause, m.c.abortWhy = cause, reason
	}
	if m.c.m != nil {
		m.c.m.Abort(cause, reason)
	}
}

// Outcome ends the merge and returns the merged run. ExitCode is the
// first part's k6 exit code that is neither 0 nor 99 (a segment's
// thresholds), 0 when there is none; Result is nil when no part started
// its test.
func (m *Merge) Outcome() *Outcome {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.c
	defer c.log.close()
	out := &Outcome{}
	for i, e := range m.exits {
		if e != 0 && e != exitThresholds {
			out.ExitCode, out.Err = e, m.errs[i]
			break
		}
	}
	c.fillCounts(out)
	started := false
	for _, p := range c.parts {
		started = started || p.hello != nil || p.n > 0
	}
	if !started {
		if out.ExitCode == 0 {
			out.ExitCode, out.Err = 1, "no agent started the test"
		}
		return out
	}
	ours, theirs := m.scriptThresholds()
	// Rebuild once more with the script's thresholds that loadcap can
	// evaluate: the merger evaluates them on the merged data at its end.
	c.thresholds = append(append([]scenarios.Threshold{}, m.cfg.Thresholds...), ours...)
	c.stop = nil
	if err := c.rebuild(); err != nil {
		out.Err = err.Error()
		return out
	}
	res := c.m.Result()
	for _, t := range theirs {
		res.Thresholds = append(res.Thresholds, t)
		if !t.Passed && res.Status == loadgen.StatusPassed {
			res.Status = loadgen.StatusFailed
		}
	}
	out.Result = res
	return out
}

// exitThresholds is k6's exit code for failed thresholds.
const exitThresholds = 99

// scriptThresholds sorts the script's thresholds, as the parts' final
// frames list them, into those loadcap evaluates on the merged data and
// the verdicts it cannot reach itself.
func (m *Merge) scriptThresholds() (ours []scenarios.Threshold, theirs []loadgen.ThresholdResult) {
	type key struct{ metric, expr string }
	type verdict struct {
		n, passed int
		abort     bool
	}
	var order []key
	seen := map[key]*verdict{}
	for _, p := range m.c.parts {
		if p.final == nil {
			continue
		}
		for _, t := range p.final.Thresholds {
			k := key{t.Metric, t.Expr}
			v := seen[k]
			if v == nil {
				v = &verdict{}
				seen[k] = v
				order = append(order, k)
			}
			v.n++
			if !t.Failed {
				v.passed++
			}
			v.abort = v.abort || t.Abort
		}
	}
	for _, k := range order {
		v := seen[k]
		th, err := scenarios.ParseThreshold(k.metric, k.expr)
		if err == nil && th.Metric == "grpc_req_duration" {
			// k6's gRPC and HTTP samples share their series here.
			err = errors.New("loadcap does not keep grpc_req_duration apart for k6 scripts")
		}
		if err == nil {
			th.AbortOnFail = false // evaluated after the run: it stopped nothing
			ours = append(ours, th)
			continue
		} else if r, ok := m.checksRate(k.metric, k.expr); ok {
			theirs = append(theirs, r)
			continue
		} else {
			theirs = append(theirs, loadgen.ThresholdResult{
				Metric: k.metric, Expr: k.expr, Passed: v.passed == v.n, Value: math.NaN(), Abort: v.abort && v.passed < v.n,
				Note: fmt.Sprintf("not evaluated on the merged data (%v): k6's verdicts per agent segment, %d of %d passed", err, v.passed, v.n),
			})
		}
	}
	return ours, theirs
}

// checksRate evaluates a threshold on k6's checks metric ("rate>0.9") on
// the merged checks.
func (m *Merge) checksRate(metric, expr string) (loadgen.ThresholdResult, bool) {
	if metric != "checks" {
		return loadgen.ThresholdResult{}, false
	}
	th, err := scenarios.ParseThreshold("http_req_failed", expr) // a rate, as checks is
	if err != nil {
		return loadgen.ThresholdResult{}, false
	}
	var pass, fail int64
	for _, ch := range m.c.checks {
		pass += ch.Passes
		fail += ch.Fails
	}
	v := math.NaN()
	if pass+fail > 0 {
		v = float64(pass) / float64(pass+fail)
	}
	return loadgen.ThresholdResult{Metric: metric, Expr: expr, Value: v, Passed: !math.IsNaN(v) && th.Compare(v),
		Note: "on the merged checks of every agent"}, true
}
