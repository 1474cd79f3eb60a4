package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/loadcap/loadcap/loadgen/k6"
	"github.com/loadcap/loadcap/scenarios"
)

// K6Plan is a k6 test to run over agents: each runs the archive in its k6
// child with its execution segment, so that together they run the test
// exactly once.
type K6Plan struct {
	Name    string   // the script, for messages and the result
	Archive []byte   // what k6.Archive wrote: script, imports, open()ed files, options
	Args    []string // "k6 run" flags for every agent (CheckK6Args)
	DrillID string   // the shadow tag, as __ENV.LOADCAP_DRILL_ID and k6/x/loadcap
	// Thresholds are loadcap's own, evaluated on the merged data like a
	// scenario file's (abortOnFail stops every agent).
	Thresholds []scenarios.Threshold
}

// NewK6Coordinator checks cfg and plan and prepares a distributed run of a
// k6 test; run it with RunK6.
func NewK6Coordinator(plan *K6Plan, cfg CoordinatorConfig) (*Coordinator, error) {
	if plan == nil || len(plan.Archive) == 0 {
		return nil, errors.New("cluster: no k6 archive")
	}
	if len(plan.Archive) > MaxPlanSize {
		return nil, fmt.Errorf("cluster: the k6 archive is %d bytes, more than %d", len(plan.Archive), MaxPlanSize)
	}
	if err := CheckK6Args(plan.Args); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	if plan.DrillID != "" && !scenarios.ValidDrillID(plan.DrillID) {
		return nil, fmt.Errorf("cluster: invalid drill id %q", plan.DrillID)
	}
	c, err := newCoordinator(cfg)
	if err != nil {
		return nil, err
	}
	c.k6plan = plan
	c.k6m, err = k6.NewMerge(k6.MergeConfig{
		Path: plan.Name, Parts: len(cfg.Agents), Thresholds: plan.Thresholds,
		Progress: cfg.Progress, Live: cfg.Live,
		Stop: c.Stop, Hook: c.metrics.Hook(cfg.OnInterval), KeepIntervals: cfg.KeepIntervals,
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// RunK6 runs the k6 test over the agents, as Run does a scenario file, and
// returns the merged Outcome (see k6.Merge for its exit code and
// thresholds). The error is for a run that could not start.
func (c *Coordinator) RunK6(ctx context.Context) (*k6.Outcome, *Report, error) {
	if c.k6plan == nil {
		return nil, c.rep, errors.New("cluster: a scenario file runs with Run")
	}
	if err := c.run(ctx); err != nil {
		return nil, c.rep, err
	}
	o := c.k6m.Outcome()
	if o != nil {
		c.noteLost(o.Result)
	}
	return o, c.rep, nil
}
