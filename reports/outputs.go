package reports

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/loadcap/loadcap/internal/cli"
	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/loadgen/cluster"
)

// WriteFunc writes one output file atomically: write fills it, and the
// previous file is left as it was when write or the writing fails
// (internal/cli's WriteAtomic).
type WriteFunc func(path string, write func(io.Writer) error) error

// Outputs are what a run writes besides its exit code. Empty paths are
// not written.
type Outputs struct {
	JSON  string // run.json
	HTML  string // the HTML report
	JUnit string // the thresholds (or steps, or checks) as JUnit XML
	// Summary gets the summary table; nil: none.
	Summary io.Writer
	// Notices gets where each report went and the agents' problems; nil:
	// none.
	Notices io.Writer
	Write   WriteFunc
}

func (o Outputs) notices() io.Writer {
	if o.Notices == nil {
		return io.Discard
	}
	return o.Notices
}

// WriteRun attaches the agents' report to run (when distributed) and
// writes run.json, the summary, the HTML report and JUnit. run.json is
// written before the summary, and a failure to write it is returned after
// the summary is shown. exitCode, when not 0, is the exit code the reports
// show instead of the run's own verdict (k6's, e.g. 107).
func (o Outputs) WriteRun(run *Run, rep *cluster.Report, exitCode int) error {
	if rep != nil {
		var err error
		if run.Cluster, err = json.Marshal(rep); err != nil {
			return err
		}
		for _, p := range rep.Problems() {
			fmt.Fprintln(o.notices(), "cluster:", p)
		}
	}
	var werr error
	if o.JSON != "" {
		werr = o.Write(o.JSON, run.WriteJSON)
	}
	if o.Summary != nil {
		if err := WriteSummary(o.Summary, run); err != nil {
			return err
		}
	}
	if werr != nil {
		return werr
	}
	if o.HTML == "" && o.JUnit == "" {
		return nil
	}
	in := HTMLInput{Run: run}
	in.ExitCode = in.Verdict()
	if exitCode != 0 {
		in.ExitCode = exitCode
	}
	return o.WriteReports(in)
}

// WriteReports writes the HTML report and the JUnit file asked for, and
// says where they went.
func (o Outputs) WriteReports(in HTMLInput) error {
	if o.HTML != "" {
		if err := o.Write(o.HTML, func(w io.Writer) error { return WriteHTML(w, in) }); err != nil {
			return err
		}
		fmt.Fprintf(o.notices(), "report: %s\n", o.HTML)
	}
	if o.JUnit != "" {
		ji := JUnitInput{Run: in.Run, Find: in.Find, Comparison: in.Comparison}
		if err := o.Write(o.JUnit, func(w io.Writer) error { return WriteJUnit(w, ji) }); err != nil {
			return err
		}
		fmt.Fprintf(o.notices(), "junit: %s\n", o.JUnit)
	}
	return nil
}

// Verdict is the exit code the inputs stand for: what loadcap run,
// capacity find and compare would have returned for them.
func (in HTMLInput) Verdict() int {
	switch {
	case in.Run != nil && in.Run.Status == "aborted" && in.Run.AbortCause != loadgen.CauseThreshold:
		return int(cli.ExitAborted)
	case in.Run != nil && in.Run.ThresholdFailed():
		return int(cli.ExitThresholds)
	case in.Run != nil && in.Run.Partial:
		return int(cli.ExitPartial)
	case in.Find != nil && in.Find.MaxQPS == 0:
		return int(cli.ExitThresholds)
	case in.Comparison != nil && in.Comparison.Regressed:
		return int(cli.ExitRegression)
	}
	return int(cli.ExitOK)
}

// ThresholdFailed reports whether any threshold of the run failed.
func (r *Run) ThresholdFailed() bool {
	for _, t := range r.Thresholds {
		if !t.Passed {
			return true
		}
	}
	return false
}
