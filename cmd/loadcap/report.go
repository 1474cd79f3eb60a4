package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/loadcap/loadcap/capacity"
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
		RunE: func(_ *cobra.Command, a []string) error {
			if c.out == "" && c.junit == "" {
				return usageErr("nothing to write: give -o report.html and/or --junit junit.xml")
			}
			in, err := readReportInputs(a)
			if err != nil {
				return err
			}
			if in.Baseline != nil {
				allow, err := slo.ParseAllowances(c.allowed)
				if err != nil {
					return withCode(exitUsage, err)
				}
				if in.Run == nil {
					return withCode(exitInvalid, errors.New("a baseline needs a run to compare with"))
				}
				if in.Comparison, err = reports.Compare(in.Baseline, in.Run, allow); err != nil {
					return withCode(exitInvalid, err)
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
func verdictCode(in reports.HTMLInput) int {
	switch {
	case in.Run != nil && in.Run.Status == "aborted" && in.Run.AbortCause != loadgen.CauseThreshold:
		return exitAborted
	case in.Run != nil && thresholdFailed(in.Run):
		return exitThresholds
	case in.Find != nil && in.Find.MaxQPS == 0:
		return exitThresholds
	case in.Comparison != nil && in.Comparison.Regressed:
		return exitRegression
	}
	return exitOK
}

// writeReports writes the HTML report and the JUnit file that are asked
// for, each atomically, and says where they are.
func writeReports(st *state, in reports.HTMLInput, html, junit string) error {
	if html != "" {
		if err := writeAtomic(html, func(w io.Writer) error { return reports.WriteHTML(w, in) }); err != nil {
			return err
		}
		fmt.Fprintf(st.stderr, "report: %s\n", html)
	}
	if junit != "" {
		ji := reports.JUnitInput{Run: in.Run, Find: in.Find, Comparison: in.Comparison}
		if err := writeAtomic(junit, func(w io.Writer) error { return reports.WriteJUnit(w, ji) }); err != nil {
			return err
		}
		fmt.Fprintf(st.stderr, "junit: %s\n", junit)
	}
	return nil
}

// writeAtomic writes through a temporary file renamed into place, so a
// reader never sees half a file.
func writeAtomic(path string, write func(io.Writer) error) error {
	var buf bytes.Buffer
	if err := write(&buf); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	// CreateTemp makes the file private; a report is for others to read,
	// like run.json beside it.
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// readReportInputs sorts result files by what they hold.
func readReportInputs(paths []string) (reports.HTMLInput, error) {
	var in reports.HTMLInput
	for _, p := range paths {
		data, err := readLimited(p)
		if err != nil {
			return in, withCode(exitInvalid, err)
		}
		var probe struct {
			Schema string          `json:"schema"`
			MaxQPS json.RawMessage `json:"max_qps"`
			Steps  json.RawMessage `json:"steps"`
		}
		if err := json.Unmarshal(data, &probe); err != nil {
			return in, withCode(exitInvalid, fmt.Errorf("%s: not a JSON result: %v", p, err))
		}
		switch {
		case probe.Schema == reports.Schema:
			r, err := reports.ReadFile(p)
			if err != nil {
				return in, withCode(exitInvalid, err)
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
				return in, withCode(exitInvalid, fmt.Errorf("%s: %v", p, err))
			}
			in.Plan = &pr
		case probe.MaxQPS != nil && probe.Steps != nil:
			if in.Find != nil {
				return in, usageErr("%s: a second find result", p)
			}
			var fr capacity.FindResult
			if err := strictJSON(data, &fr); err != nil {
				return in, withCode(exitInvalid, fmt.Errorf("%s: %v", p, err))
			}
			in.Find = &fr
		default:
			return in, withCode(exitInvalid, fmt.Errorf("%s: neither a run result (%s), a find result (max_qps, steps) nor a plan result (%s)", p, reports.Schema, capacity.PlanSchema))
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
