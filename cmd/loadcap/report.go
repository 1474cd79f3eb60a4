package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/loadcap/loadcap/capacity"
	"github.com/loadcap/loadcap/internal/cli"
	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/reports"
	"github.com/loadcap/loadcap/scenarios/slo"
)

// maxResultFile bounds a JSON result a report reads.
const maxResultFile = 512 << 20

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
			in, err := readReportInputs(a)
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

// readReportInputs sorts result files by what they hold.
func readReportInputs(paths []string) (reports.HTMLInput, error) {
	var in reports.HTMLInput
	for _, p := range paths {
		data, err := readLimited(p)
		if err != nil {
			return in, cli.WithCode(cli.ExitInvalid, err)
		}
		var probe struct {
			Schema string          `json:"schema"`
			MaxQPS json.RawMessage `json:"max_qps"`
			Steps  json.RawMessage `json:"steps"`
		}
		if err := json.Unmarshal(data, &probe); err != nil {
			return in, cli.WithCode(cli.ExitInvalid, fmt.Errorf("%s: not a JSON result: %v", p, err))
		}
		switch {
		case probe.Schema == reports.Schema:
			r, err := reports.ReadFile(p)
			if err != nil {
				return in, cli.WithCode(cli.ExitInvalid, err)
			}
			switch {
			case in.Run == nil:
				in.Run = r
			case in.Baseline == nil:
				in.Baseline = r
			default:
				return in, usageErr("%s: a third run result; give the run and at most one baseline", p)
			}
		case probe.Schema == capacity.PlanSchema:
			if in.Plan != nil {
				return in, usageErr("%s: a second plan result", p)
			}
			var pr capacity.PlanResult
			if err := strictJSON(data, &pr); err != nil {
				return in, cli.WithCode(cli.ExitInvalid, fmt.Errorf("%s: %v", p, err))
			}
			in.Plan = &pr
		case probe.MaxQPS != nil && probe.Steps != nil:
			if in.Find != nil {
				return in, usageErr("%s: a second find result", p)
			}
			var fr capacity.FindResult
			if err := strictJSON(data, &fr); err != nil {
				return in, cli.WithCode(cli.ExitInvalid, fmt.Errorf("%s: %v", p, err))
			}
			in.Find = &fr
		default:
			return in, cli.WithCode(cli.ExitInvalid, fmt.Errorf("%s: neither a run result (%s), a find result (max_qps, steps) nor a plan result (%s)", p, reports.Schema, capacity.PlanSchema))
		}
	}
	return in, nil
}

func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	return dec.Decode(v)
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxResultFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if len(data) > maxResultFile {
		return nil, fmt.Errorf("%s: larger than %d MiB", path, maxResultFile>>20)
	}
	return data, nil
}
