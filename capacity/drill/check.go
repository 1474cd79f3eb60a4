package drill

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/loadcap/loadcap/capacity"
	"github.com/loadcap/loadcap/scenarios"
)

// StageAt returns d with a single stage, name at rate requests/s at the
// entry (the recording's multiplier scaled to that rate): ramp, then hold,
// which is measured. The drill's traffic, tag, guard, services and
// isolation stay; it plans no capacity of its own.
func StageAt(d *scenarios.Drill, name string, rate float64, ramp, hold time.Duration) *scenarios.Drill {
	c := *d
	c.Stages = []scenarios.DrillStage{{Name: name, Rate: rate, Ramp: ramp, Hold: hold}}
	c.Capacity = scenarios.DrillCapacity{}
	return &c
}

// Fits reports whether d can drive the checks of plan (read from
// planPath): every service the plan scales must be one of the drill's
// services, whose metrics give the check its figures. Its error names d's
// file, line and field (a scenarios.Error: exit 104).
func Fits(d *scenarios.Drill, plan *capacity.PlanResult, planPath string) error {
	have := map[string]bool{}
	var names []string
	pos := scenarios.Pos{}
	for _, s := range d.Services {
		have[s.Name] = true
		names = append(names, s.Name)
		if pos.Line == 0 {
			pos = s.Pos
		}
	}
	var errs scenarios.Errors
	for _, s := range plan.Services {
		if have[s.Name] {
			continue
		}
		msg := fmt.Sprintf("has no service %q, which %s plans: add %s: {metrics: URL} (the drill measures %s)",
			s.Name, planPath, s.Name, strings.Join(names, ", "))
		if len(names) == 0 {
			msg = fmt.Sprintf("is empty: %s plans %q; list it with its metrics URL", planPath, s.Name)
		}
		errs = append(errs, &scenarios.Error{File: d.Path, Pos: pos, Path: "services", Msg: msg})
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// Drive returns a verify.Config's Drive: each check runs cfg's drill as
// StageAt the check's entry rate and returns the stage's step, with every
// service's figures. A stage the guard stopped does not pass.
func Drive(cfg Config, ramp, hold time.Duration) func(ctx context.Context, check string, entryQPS float64) (*capacity.Step, error) {
	return func(ctx context.Context, check string, entryQPS float64) (*capacity.Step, error) {
		c := cfg
		c.Plan = StageAt(cfg.Plan, check, entryQPS, ramp, hold)
		r, err := Run(ctx, c)
		if err != nil {
			return nil, err
		}
		if r.Stages == nil || len(r.Stages.Steps) == 0 {
			if r.Stopped == nil || !r.Stopped.ByGuard() {
				return nil, fmt.Errorf("the %s stage measured nothing", check)
			}
			// The guard stopped it on the ramp: the check did not hold,
			// and there is no hold to measure the services over.
			st := &capacity.Step{Phase: check, Offered: entryQPS, Reason: "stopped before its hold: " + r.Stopped.Reason}
			for _, s := range c.Plan.Services {
				st.Services = append(st.Services, capacity.ServiceStats{Name: s.Name, Error: "not measured: the guard stopped the stage on its ramp"})
			}
			return st, nil
		}
		step := r.Stages.Steps[len(r.Stages.Steps)-1]
		if r.Stopped != nil {
			step.Passed, step.Reason = false, "stopped: "+r.Stopped.Reason
		}
		return &step, nil
	}
}
