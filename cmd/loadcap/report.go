package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/loadcap/loadcap/internal/cli"
	"github.com/loadcap/loadcap/reports"
	"github.com/loadcap/loadcap/scenarios/slo"
)

type reportConfig struct {
	out, junit string
	allowed    string
}

func newReportCmd(st *state) *cobra.Command {
	var c reportConfig
	cmd := &cobra.Command{
		Use:   "report RUN.json [find.json plan.json baseline.json] -o report.html [--junit junit.xml]",
		Short: "Write a self-contained HTML report (and JUnit XML) from run, find and plan results",
		Long: `Write one HTML file that opens offline: the run's verdict, thresholds, per-request table,
latency over time, errors, the HDR distribution; with a find result the capacity search, knee and
USL curve; with a plan result the replicas per service and the bottleneck; with a second run
result (the baseline) a comparison whose verdict follows --max-regression.

Files are recognised by their content: a loadcap.run/v1 result (the first is the run, a second the
baseline), a find result (capacity find --out), a plan result (capacity plan --out).
--junit writes thresholds, SLO clauses and comparison limits as JUnit test cases for CI.`,
		Example: `  loadcap report run.json -o report.html
  loadcap report run.json find.json plan.json baseline.json -o report.html --junit junit.xml`,
		Args: args(cobra.RangeArgs(1, 4)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if c.out == "" && c.junit == "" {
				return usageErr("nothing to write: give -o report.html and/or --junit junit.xml")
			}
			if err := checkOutputs(cmd, "out", "junit"); err != nil {
				return err
			}
			in, err := reports.ReadInputs(a)
			if err != nil {
				return err
			}
			if in.Baseline != nil {
				allow, err := slo.ParseAllowances(c.allowed)
				if err != nil {
					return cli.WithCode(cli.ExitUsage, err)
				}
				if in.Run == nil {
					return cli.WithCode(cli.ExitInvalid, errors.New("a baseline needs a run to compare with"))
				}
				if in.Comparison, err = reports.Compare(in.Baseline, in.Run, allow); err != nil {
					return cli.WithCode(cli.ExitInvalid, err)
				}
			}
			in.ExitCode = in.Verdict()
			if err := (reports.Outputs{HTML: c.out, JUnit: c.junit, Notices: st.stderr, Write: cli.WriteAtomic}).WriteReports(in); err != nil {
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&c.out, "out", "o", "", "write the HTML report to this file")
	cmd.Flags().StringVar(&c.junit, "junit", "", "write JUnit XML to this file")
	cmd.Flags().StringVar(&c.allowed, "max-regression", slo.DefaultMaxRegression, "with a baseline: what each metric may lose against it")
	return cmd
}
