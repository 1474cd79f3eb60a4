package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/loadcap/loadcap/internal/cli"
	"github.com/loadcap/loadcap/loadgen"
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
			in.ExitCode = verdictCode(in)
			if err := writeReports(st, in, c.out, c.junit); err != nil {
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

// verdictCode is the exit code the inputs stand for: what loadcap run,
// capacity find and compare would have returned for them.
func verdictCode(in reports.HTMLInput) int { return int(verdict(in)) }

// verdict is verdictCode as a cli.Code.
func verdict(in reports.HTMLInput) cli.Code {
	switch {
	case in.Run != nil && in.Run.Status == "aborted" && in.Run.AbortCause != loadgen.CauseThreshold:
		return cli.ExitAborted
	case in.Run != nil && thresholdFailed(in.Run):
		return cli.ExitThresholds
	case in.Find != nil && in.Find.MaxQPS == 0:
		return cli.ExitThresholds
	case in.Comparison != nil && in.Comparison.Regressed:
		return cli.ExitRegression
	}
	return cli.ExitOK
}

// writeReports writes the HTML report and the JUnit file that are asked
// for, each atomically, and says where they are.
func writeReports(st *state, in reports.HTMLInput, html, junit string) error {
	if html != "" {
		if err := cli.WriteAtomic(html, func(w io.Writer) error { return reports.WriteHTML(w, in) }); err != nil {
			return err
		}
		fmt.Fprintf(st.stderr, "report: %s\n", html)
	}
	if junit != "" {
		ji := reports.JUnitInput{Run: in.Run, Find: in.Find, Comparison: in.Comparison}
		if err := cli.WriteAtomic(junit, func(w io.Writer) error { return reports.WriteJUnit(w, ji) }); err != nil {
			return err
		}
		fmt.Fprintf(st.stderr, "junit: %s\n", junit)
	}
	return nil
}
