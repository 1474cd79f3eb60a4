package drill

import (
	"context"
	"fmt"
	"math"

	"github.com/loadcap/loadcap/internal/dashboard"
	"github.com/loadcap/loadcap/internal/guard"
	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/scenarios"
)

// GuardFunc starts a drill's guard: it gets the drill's stop function and
// returns what to call with every closed interval, and what tells, at the
// end, what each rule saw (nil: nothing to tell).
type GuardFunc func(ctx context.Context, stop func(Breach)) (observe func(loadgen.Interval), rules func() []RuleRun, err error)

// RuleRun is what one guard rule saw during a drill.
type RuleRun struct {
	Name        string `json:"name"`
	Kind        string `json:"kind"` // traffic, promql, health
	Evaluations int    `json:"evaluations"`
	// NoData counts the evaluations that judged nothing: for a PromQL
	// rule a query that returned no series or only NaN, or that
	// Prometheus did not answer; for a traffic rule a window with too few
	// requests. LastNoData says why the last of them had no data.
	NoData     int    `json:"no_data"`
	LastNoData string `json:"last_no_data,omitempty"`
	State      string `json:"state"` // of the last evaluation: pending, ok, bad, no data, error
}

// NewGuard builds the guard of the plan (internal/guard) with the plan's
// settings, whose defaults are the scenarios package's; nil when the plan
// has no rules and no hot switch (the drill runs unguarded).
func NewGuard(d *scenarios.Drill) GuardFunc { return newGuard(d, nil) }

// newGuard is NewGuard whose guard, when dash is set, shows on the
// dashboard and takes its stop button; the drill is then guarded even
// when the plan has no rules and no hot switch.
func newGuard(d *scenarios.Drill, dash *dashboard.Server) GuardFunc {
	dg := d.Guard
	if len(dg.Rules) == 0 && dg.HotSwitchFile == "" && dg.HotSwitchListen == "" && dash == nil {
		return nil
	}
	cfg := guard.Config{Every: dg.Every, Breaches: dg.Breaches, Prometheus: dg.Prometheus,
		SignalLoss: guard.SignalLoss{Grace: dg.SignalLoss, Action: guard.ActionStop},
		Switch:     guard.Switch{File: dg.HotSwitchFile, Listen: dg.HotSwitchListen}}
	if dg.SignalLossContinue {
		cfg.SignalLoss.Action = guard.ActionContinue
	}
	for _, r := range dg.Rules {
		gr := guard.Rule{Name: r.Name, SLO: r.Drill, PromQL: r.PromQL, Health: r.Health, Breaches: r.Breaches,
			OnNoData: guard.NoData(r.OnNoData)}
		if !math.IsNaN(r.Max) {
			gr.Max = guard.Float(r.Max)
		}
		if !math.IsNaN(r.Min) {
			gr.Min = guard.Float(r.Min)
		}
		cfg.Rules = append(cfg.Rules, gr)
	}
	return func(ctx context.Context, stop func(Breach)) (func(loadgen.Interval), func() []RuleRun, error) {
		g, err := guard.New(cfg)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %s: guard: %v", ErrInvalid, d.Path, err)
		}
		if dash != nil {
			dash.Guard(g.Status, g.Stop)
		}
		go func() {
			defer g.Close()
			_ = g.Run(ctx, func(b guard.Breach) {
				stop(Breach{Rule: b.Rule, Kind: string(b.Kind), Reason: b.String(), Value: b.Value, Limit: b.Limit,
					Unit: b.Unit, Consecutive: b.Consecutive})
			})
		}()
		return g.Observe, func() []RuleRun { return ruleRuns(g.Status()) }, nil
	}
}

// ruleRuns is what each rule of a guard's status saw.
func ruleRuns(st guard.Status) []RuleRun {
	out := make([]RuleRun, 0, len(st.Rules))
	for _, r := range st.Rules {
		out = append(out, RuleRun{Name: r.Name, Kind: string(r.Kind), Evaluations: r.Evaluations, NoData: r.NoData,
			LastNoData: r.LastNoData, State: string(r.State)})
	}
	return out
}
