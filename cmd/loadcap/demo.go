package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"time"

	"github.com/spf13/cobra"

	"github.com/loadcap/loadcap/capacity"
	"github.com/loadcap/loadcap/capacity/autoscale"
	"github.com/loadcap/loadcap/capacity/drill"
	"github.com/loadcap/loadcap/capacity/verify"
	"github.com/loadcap/loadcap/internal/cli"
	"github.com/loadcap/loadcap/internal/demo"
	"github.com/loadcap/loadcap/internal/demo/shop"
	"github.com/loadcap/loadcap/reports"
)

func newDemoCmd(st *state) *cobra.Command {
	var (
		dir    string
		report string
		quiet  bool
		nginx  string
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "No setup: a guarded pre-sale drill against the built-in reference shop on loopback, with its report",
		Long: `Start the reference shop on loopback (SQLite, in-process stores, one deliberately weak service),
replay a bundled recording of shop traffic tagged with a drill id through three stages up to 5x
its peak, let the guard stop the last stage when the weak service saturates, measure every
service's capacity from its /metrics (printed beside its configured capacity), audit the shop's
database for leaks, plan replicas for 10x the recorded peak, and write the HTML report.
The gateway's replicas run behind nginx when it is installed (--nginx auto), else in process.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkDirs(cmd, "out-dir"); err != nil {
				return err
			}
			if err := checkOutputs(cmd, "report"); err != nil {
				return err
			}
			bin, err := demoNginx(nginx)
			if err != nil {
				return err
			}
			return runDemo(cmd.Context(), st, dir, report, bin, quiet)
		},
	}
	cmd.Flags().StringVar(&dir, "out-dir", "loadcap-demo", "where the drill plan, results and manifests go")
	cmd.Flags().StringVarP(&report, "report", "o", "loadcap-report.html", "the HTML report")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress")
	cmd.Flags().StringVar(&nginx, "nginx", "auto", "front the gateway's replicas with nginx: auto (when installed), off (in-process replicas), or the nginx binary's path")
	return cmd
}

// demoNginx resolves --nginx to a binary, "" for in-process replicas.
func demoNginx(v string) (string, error) {
	switch v {
	case "off":
		return "", nil
	case "auto":
		return shop.LookNginx(), nil
	}
	if _, err := exec.LookPath(v); err != nil {
		return "", usageErr("--nginx %s: %v (want auto, off or an nginx binary)", v, err)
	}
	return v, nil
}

func runDemo(ctx context.Context, st *state, dir, report, nginx string, quiet bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d, err := demo.Start(ctx, dir, st.stdout, nginx)
	if err != nil {
		return err
	}
	defer d.Close()
	cfg := drill.Config{Plan: d.Plan}
	if !quiet {
		cfg.Progress, cfg.Live = st.stderr, st.tty
	}
	res, code, err := runDrill(ctx, st, cfg, dir, report, func(ctx context.Context, res *drill.Result, in *reports.HTMLInput) {
		closeLoop(ctx, st, d, res, in, quiet)
	})
	if err != nil {
		return err
	}
	if err := d.Check(); err != nil {
		return err
	}
	perReplica := map[string]float64{}
	method := map[string]string{}
	for _, m := range res.Services {
		perReplica[m.Name], method[m.Name] = m.PerReplicaQPS, m.Method
	}
	d.WriteComparison(st.stdout, perReplica, method)
	fmt.Fprintf(st.stdout, "\ndemo: report %s; results, plan and HPA/KEDA manifests in %s/\n", report, dir)
	switch {
	case code == cli.ExitIsolation:
		return cli.WithCode(code, errors.New("demo: isolation violated"))
	case res.Stopped != nil && !res.Stopped.ByGuard():
		return cli.WithCode(cli.ExitAborted, errors.New("demo: interrupted"))
	case res.Stopped != nil:
		fmt.Fprintf(st.stdout, "demo: the guard stopped stage %s as designed: %s\n", res.Stopped.Stage, res.Stopped.Reason)
	case code == cli.ExitThresholds:
		fmt.Fprintln(st.stdout, "demo: a stage failed its SLO but the guard did not stop the drill (see the stage table)")
	default:
		fmt.Fprintln(st.stdout, "demo: every stage ran to its end (the weak service held; a loaded machine can hide the saturation)")
	}
	return nil
}

// closeLoop checks the demo's plan: the shop scaled to it, the planned
// peak replayed as a drill stage and measured per service (verify), and
// the plan's HPA replayed over a sale's jump with and without the cron
// pre-scale (simulate). Both go to the terminal and the report; a failure
// is said, not fatal: the drill's own outcome is the demo's exit code.
func closeLoop(ctx context.Context, st *state, d *demo.Demo, res *drill.Result, in *reports.HTMLInput, quiet bool) {
	plan := res.Plan
	if plan == nil || res.RecordedPeak <= 0 {
		return
	}
	var progress io.Writer
	if !quiet {
		progress = st.stderr
	}
	fmt.Fprintf(st.stdout, "\ndemo: verifying the plan: the shop scaled to %d replicas, %.0f req/s replayed at the entry\n", plan.Totals.Replicas, plan.EntryQPS)
	vr, err := verify.Run(ctx, verify.Config{
		Plan: plan, Scaler: &verify.HTTPScaler{URLs: d.ScaleURLs()}, Progress: progress, ReadyTimeout: 30 * time.Second, Redundancy: true,
		Drive: drill.Drive(drill.Config{Plan: d.Plan}, 3*time.Second, 10*time.Second),
	})
	if err != nil {
		fmt.Fprintf(st.stdout, "demo: the plan could not be verified: %v\n", err)
	} else {
		in.Verify = vr
		vr.WriteTable(st.stdout)
		fmt.Fprintln(st.stdout, "demo: "+verifyLine(vr, plan))
	}
	// A sale's jump: the recording's peak for 20 minutes, then the planned
	// peak for 10, the window (and its cron pre-scale) at the jump.
	jump := time.Now().UTC().Truncate(24 * time.Hour).Add(44 * time.Hour) // tomorrow, 20:00
	tr := autoscale.Traffic{Start: jump.Add(-20 * time.Minute)}
	for i := 0; i < 30*60; i++ {
		r := res.RecordedPeak
		if i >= 20*60 {
			r = plan.EntryQPS
		}
		tr.RPS = append(tr.RPS, r)
	}
	sale := *plan
	sale.Window = &capacity.PlanWindow{Start: jump, End: jump.Add(time.Hour), Timezone: "UTC"}
	sim, err := autoscale.SimulatePlan(&sale, tr, autoscale.Options{})
	if err != nil {
		fmt.Fprintf(st.stdout, "demo: simulate: %v\n", err)
		return
	}
	in.Simulate = sim
	fmt.Fprintf(st.stdout, "\ndemo: the plan's HPA simulated over a sale that jumps from %.0f to %.0f req/s at %s:\n", res.RecordedPeak, plan.EntryQPS, jump.Format("15:04:05"))
	sim.WriteText(st.stdout, time.UTC)
}

// verifyLine is the demo's one-line verdict on its plan.
func verifyLine(r *verify.Result, plan *capacity.PlanResult) string {
	if len(r.Checks) == 0 {
		return "plan not verified: no check ran"
	}
	c := r.Checks[0]
	var b *verify.ServiceCheck
	for _, s := range c.Services {
		if b == nil || s.Utilization > b.Utilization {
			b = s
		}
	}
	word := "plan verified"
	if !r.Held {
		word = "plan NOT verified (" + c.Reason + ")"
	}
	return fmt.Sprintf("%s: p(99) %.0f ms at %.0f req/s with %d replicas; %s at %.0f%% of capacity, planned ≤ %.0f%%",
		word, c.Step.LatencyMs.P99, c.Step.Achieved, plan.Totals.Replicas, b.Name, 100*b.Utilization, 100*b.Ceiling)
}
