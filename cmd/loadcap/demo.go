package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/loadcap/loadcap/capacity/drill"
	"github.com/loadcap/loadcap/internal/cli"
	"github.com/loadcap/loadcap/internal/demo"
)

func newDemoCmd(st *state) *cobra.Command {
	var (
		dir    string
		report string
		quiet  bool
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "No setup: a guarded pre-sale drill against the built-in reference shop on loopback, with its report",
		Long: `Start the reference shop on loopback (SQLite, in-process stores, one deliberately weak service),
replay a bundled recording of shop traffic tagged with a drill id through three stages up to 5x
its peak, let the guard stop the last stage when the weak service saturates, measure every
service's capacity from its /metrics (printed beside its configured capacity), audit the shop's
database for leaks, plan replicas for 10x the recorded peak, and write the HTML report.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkDirs(cmd, "out-dir"); err != nil {
				return err
			}
			if err := checkOutputs(cmd, "report"); err != nil {
				return err
			}
			return runDemo(cmd.Context(), st, dir, report, quiet)
		},
	}
	cmd.Flags().StringVar(&dir, "out-dir", "loadcap-demo", "where the drill plan, results and manifests go")
	cmd.Flags().StringVarP(&report, "report", "o", "loadcap-report.html", "the HTML report")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress")
	return cmd
}

func runDemo(ctx context.Context, st *state, dir, report string, quiet bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d, err := demo.Start(ctx, dir, st.stdout)
	if err != nil {
		return err
	}
	defer d.Close()
	cfg := drill.Config{Plan: d.Plan}
	if !quiet {
		cfg.Progress, cfg.Live = st.stderr, st.tty
	}
	res, code, err := runDrill(ctx, st, cfg, dir, report)
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
