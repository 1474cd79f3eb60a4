package cluster

import (
	"context"

	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/loadgen/k6"
)

// Runner is a Coordinator as a loadgen.Runner. A run that lost agents
// returns its partial Result (Result.Lost) and no error; Report says what
// each agent did, once Run returned.
type Runner struct {
	*Coordinator
	Report *Report
	// Outcome is k6's ending, for a k6 plan (NewCoordinator with a k6
	// archive); nil for a scenario file.
	Outcome *k6.Outcome
}

var _ loadgen.Runner = (*Runner)(nil)

// Run runs the plan on the agents: a scenario file with Coordinator.Run, a
// k6 archive with Coordinator.RunK6.
func (r *Runner) Run(ctx context.Context) (*loadgen.Result, error) {
	if r.k6plan != nil {
		o, rep, err := r.Coordinator.RunK6(ctx)
		r.Report, r.Outcome = rep, o
		if err != nil || o == nil {
			return nil, err
		}
		return o.Result, nil
	}
	res, rep, err := r.Coordinator.Run(ctx)
	r.Report = rep
	return res, err
}
