package capacity

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"

	"github.com/loadcap/loadcap/internal/cli"
	"github.com/loadcap/loadcap/internal/runner"
	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/loadgen/k6"
)

// K6Step runs capacity find's steps with a k6 script: each step is a
// constant-arrival-rate scenario replacing the script's own, driving its
// default function. The rate is iterations per second, so the script must
// make one request per iteration; a step that does otherwise is an error.
func K6Step(script string, args []string, drillID string, stderr io.Writer) func(context.Context, StepLoad) (*loadgen.Result, error) {
	return func(ctx context.Context, load StepLoad) (*loadgen.Result, error) {
		rate, unit := int64(math.Round(load.Rate)), "1s"
		if math.Abs(load.Rate-math.Round(load.Rate)) > 1e-9 {
			rate, unit = int64(math.Round(load.Rate*100)), "100s"
		}
		step := map[string]any{"step": map[string]any{
			"executor": "constant-arrival-rate", "rate": rate, "timeUnit": unit,
			"duration":        load.Duration.String(),
			"preAllocatedVUs": load.PreAllocatedVUs, "maxVUs": max(load.MaxVUs, load.PreAllocatedVUs),
			"gracefulStop": load.GracefulStop.String(),
		}}
		js, err := json.Marshal(step)
		if err != nil {
			return nil, err
		}
		r, err := runner.New(ctx, runner.Config{Script: script, K6Args: append(append([]string{}, args...), "--summary-mode=disabled"),
			DrillID: drillID, Metrics: load.Live, K6Options: []k6.Option{k6.WithScenarios(js), k6.WithOutput(io.Discard, stderr)}})
		if err != nil {
			return nil, err
		}
		defer r.Close()
		res, err := r.Run(ctx)
		if err != nil {
			return nil, err
		}
		out := r.K6()
		if out.ExitCode != 0 && out.ExitCode != int(cli.ExitThresholds) {
			return nil, cli.WithCode(cli.Code(out.ExitCode), fmt.Errorf("k6 exited with code %d: %s", out.ExitCode, out.Err))
		}
		var iters int64
		for _, it := range out.Iterations {
			iters += it.Count
		}
		reqs := res.Totals.Completed + res.Totals.Failed
		if iters > 0 && math.Abs(float64(reqs)/float64(iters)-1) > 0.02 {
			return nil, cli.WithCode(cli.ExitUsage, fmt.Errorf("capacity find with a k6 script: %s made %d requests in %d iterations; "+
				"the step rate is iterations per second, so the script must make one request per iteration", script, reqs, iters))
		}
		return res, nil
	}
}
