package main

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/loadcap/loadcap/capacity"
	"github.com/loadcap/loadcap/capacity/autoscale"
	"github.com/loadcap/loadcap/internal/cli"
	"github.com/loadcap/loadcap/reports"
	"github.com/loadcap/loadcap/scenarios"
)

func newSimulateCmd(st *state) *cobra.Command {
	var (
		traffic, out, at string
		multiplier       float64
		o                autoscale.Options
	)
	cmd := &cobra.Command{
		Use:   "simulate PLAN.json|PLAN.yaml --traffic RECORDING|FORECAST.csv",
		Short: "Replay the plan's autoscaler (HPA, KEDA cron) over a traffic curve: does it keep up?",
		Long: `Replay the Kubernetes HPA (autoscaling/v2: the sync period, the 10% tolerance, the scale-up
and scale-down policies and stabilization windows, min and max) that capacity plan writes, second by
second, over a traffic curve, with each service's capacity per replica from the plan and the time a
new pod takes to become ready. Three cases: "reactive" (the HPA from the current replicas), "pre-
scaled" (the same with KEDA's cron trigger holding the plan's replicas from --prescale-lead before
the plan's window; only for a plan with a window) and "unscaled". Prints, per case and service, the
seconds the load exceeds the ready replicas' capacity (a predicted SLO breach); --out writes the
timelines as JSON. Exit 99 when the plan's own way to scale (pre-scaled with a window, else
reactive) does not hold.

The traffic is a forecast (CSV lines TIME,RPS: RFC 3339 instants, local times in the plan's zone,
or seconds) or a recording in any format shadow import reads, counted per second and multiplied by
--multiplier, its first second placed at --at.`,
		Example: `  loadcap capacity simulate plan.json --traffic forecast.csv
  loadcap capacity simulate plan.json --traffic shop-traffic.jsonl --multiplier 8 --at 2026-11-11T00:00:00 --out sim.json`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := checkOutputs(cmd, "out"); err != nil {
				return err
			}
			if traffic == "" {
				return cli.WithCode(cli.ExitUsage, errors.New("--traffic: give a forecast CSV or a recording"))
			}
			plan, err := loadPlanResult(a[0])
			if err != nil {
				return err
			}
			loc := time.UTC
			if plan.Window != nil {
				if l, err := time.LoadLocation(plan.Window.Timezone); err == nil {
					loc = l
				}
			}
			var tr autoscale.Traffic
			if strings.EqualFold(filepath.Ext(traffic), ".csv") {
				tr, err = autoscale.ReadForecast(traffic, loc)
			} else {
				var start time.Time
				if at != "" {
					if start, err = time.ParseInLocation("2006-01-02T15:04:05", at, loc); err != nil {
						if start, err = time.Parse(time.RFC3339, at); err != nil {
							return cli.WithCode(cli.ExitUsage, fmt.Errorf("--at %q: want 2006-01-02T15:04:05 (the plan's zone) or RFC 3339", at))
						}
					}
				} else if plan.Window != nil {
					start = plan.Window.Start
				}
				tr, err = autoscale.ReadRecording(traffic, multiplier, start)
			}
			if err != nil {
				return cli.WithCode(cli.ExitInvalid, err)
			}
			res, err := autoscale.SimulatePlan(plan, tr, o)
			if err != nil {
				return cli.WithCode(cli.ExitInvalid, fmt.Errorf("%s: %w", a[0], err))
			}
			if err := res.WriteText(st.stdout, loc); err != nil {
				return err
			}
			if out != "" {
				if err := writeJSON(out, res); err != nil {
					return err
				}
			}
			own := res.Cases[0] // reactive
			if len(res.Cases) == 3 {
				own = res.Cases[1] // pre-scaled: what the plan's KEDA manifests do
			}
			if !own.Held() {
				fmt.Fprintf(st.stderr, "the plan's %s case does not hold the traffic\n", own.Name)
				return cli.WithCode(cli.ExitThresholds, cli.ErrSilent)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&traffic, "traffic", "", "the traffic curve: a forecast CSV (TIME,RPS) or a recording")
	fl.Float64Var(&multiplier, "multiplier", 1, "a recording: multiply its per-second rate by this")
	fl.StringVar(&at, "at", "", "a recording: the clock time of its first second (default: the plan's window start)")
	fl.DurationVar(&o.Startup, "startup", 30*time.Second, "how long a new pod takes to become ready")
	fl.DurationVar(&o.MetricWindow, "metric-window", time.Minute, "the rate window behind the per-pod metric (PromQL rate[1m])")
	fl.DurationVar(&o.MetricDelay, "metric-delay", 0, "how old the metric's newest second is when the autoscaler reads it (Prometheus's scrape interval)")
	fl.DurationVar(&o.Sync, "sync", autoscale.DefaultSync, "the HPA controller's sync period")
	fl.DurationVar(&o.PrescaleLead, "prescale-lead", capacity.DefaultPrescaleLead, "the cron trigger raises the replicas this long before the window")
	fl.StringVarP(&out, "out", "o", "", "write the timelines as JSON (loadcap.simulate/v1) here")
	return cmd
}

// loadPlanResult reads plan.json (capacity plan --out), or computes the
// plan from its PLAN.yaml.
func loadPlanResult(path string) (*capacity.PlanResult, error) {
	if ext := strings.ToLower(filepath.Ext(path)); ext == ".yaml" || ext == ".yml" {
		return computePlan(path)
	}
	in, err := reports.ReadInputs([]string{path})
	if err != nil {
		return nil, err
	}
	if in.Plan == nil {
		return nil, cli.WithCode(cli.ExitInvalid, fmt.Errorf("%s: not a plan result (%s)", path, capacity.PlanSchema))
	}
	return in.Plan, nil
}

// computePlan reads PLAN.yaml and computes its replicas; its errors carry
// exit codes (104 for a plan that is missing or wrong).
func computePlan(path string) (*capacity.PlanResult, error) {
	p, err := scenarios.LoadPlan(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, cli.WithCode(cli.ExitInvalid, err)
		}
		return nil, err
	}
	r, err := capacity.Compute(p)
	if err != nil {
		return nil, cli.WithCode(cli.ExitInvalid, err)
	}
	return r, nil
}
