package reports

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"

	"github.com/loadcap/loadcap/capacity"
	"github.com/loadcap/loadcap/capacity/autoscale"
	"github.com/loadcap/loadcap/capacity/drill"
	"github.com/loadcap/loadcap/capacity/verify"
)

// HTMLInput is what one HTML report shows. Every part is optional, but at
// least one of Run, Find, Plan and Drill must be given.
type HTMLInput struct {
	Run  *Run
	Find *capacity.FindResult // adds the capacity section (with Drill: the stages, one step per stage)
	Plan *capacity.PlanResult // adds the plan section
	// Drill adds the drill's sections: its stages, the guard and its stop
	// (also in the verdict header), the capacity measured per service, the
	// isolation pre-flight and audit, and the manifests written.
	Drill *drill.Report
	// Baseline and Comparison add the comparison section: Comparison's
	// checks and verdict, and with Baseline the figures side by side.
	Baseline   *Run
	Comparison *Comparison
	// Verify adds the plan's verification (capacity verify, or the demo's
	// own); Simulate the autoscaler replayed over a traffic curve.
	Verify   *verify.Result
	Simulate *autoscale.Result
	// ExitCode is the exit code of the command that made the report; the
	// verdict at the top is PASS when it is 0.
	ExitCode int
	// Title heads the page; "" names it after the scenario file.
	Title string
}

// ReportSchema names the JSON document a report embeds.
const ReportSchema = "loadcap.report/v1"

// HTMLData is the JSON a report embeds in <script type="application/json"
// id="loadcap-data">, read back by ReadHTMLData. Runs are loadcap.run/v1
// documents; a long run's per-interval histograms may be left out to keep
// the page small, which Omitted then says.
type HTMLData struct {
	Schema     string               `json:"schema"`
	ExitCode   int                  `json:"exit_code"`
	Run        *Run                 `json:"run,omitempty"`
	Find       *capacity.FindResult `json:"find,omitempty"`
	Plan       *capacity.PlanResult `json:"plan,omitempty"`
	Baseline   *Run                 `json:"baseline,omitempty"`
	Comparison *Comparison          `json:"comparison,omitempty"`
	Drill      *drill.Report        `json:"drill,omitempty"`
	Verify     *verify.Result       `json:"verify,omitempty"`
	Omitted    []string             `json:"omitted,omitempty"`
}

// MaxEmbeddedIntervalHistograms bounds the bytes of per-interval histograms
// a report embeds, over the run and the baseline. Beyond it (about ten
// minutes of a few request names at a few hundred requests per second) the
// embedded runs keep their overall histograms, per-second counters and
// per-second latency summaries, but not the per-second histograms; the page
// itself is drawn from all of them either way.
const MaxEmbeddedIntervalHistograms = 768 << 10

// dataID is the id of the embedded JSON's script element.
const dataID = "loadcap-data"

// WriteHTML writes a self-contained HTML report: inline CSS and SVG
// charts, no reference to anything outside the page, readable without
// JavaScript and in print, with the inputs embedded as JSON (HTMLData).
// The same input always gives the same bytes. Every percentile in a table
// comes from the histograms, exactly; charts over time may be
// downsampled. Strings from the inputs (request names, error messages,
// file names) are escaped.
func WriteHTML(w io.Writer, in HTMLInput) error {
	if in.Run == nil && in.Find == nil && in.Plan == nil && in.Drill == nil {
		return errors.New("html report: no run, find, plan or drill result to show")
	}
	p, err := buildPage(in)
	if err != nil {
		return fmt.Errorf("html report: %w", err)
	}
	var b bytes.Buffer
	b.Grow(1 << 20)
	if err := pageTemplate.Execute(&b, p); err != nil {
		return fmt.Errorf("html report: %w", err)
	}
	_, err = w.Write(b.Bytes())
	return err
}

// embed is the JSON the page carries.
func embed(in HTMLInput) (template.JS, error) {
	d := HTMLData{Schema: ReportSchema, ExitCode: in.ExitCode, Run: in.Run, Find: in.Find, Plan: in.Plan,
		Baseline: in.Baseline, Comparison: in.Comparison, Drill: in.Drill, Verify: in.Verify}
	size := 0
	for _, r := range []*Run{in.Run, in.Baseline} {
		if r == nil {
			continue
		}
		for _, iv := range r.Intervals {
			for _, h := range iv.Histograms {
				size += len(h)
			}
		}
	}
	if size > MaxEmbeddedIntervalHistograms {
		d.Run, d.Baseline = withoutIntervalHistograms(in.Run), withoutIntervalHistograms(in.Baseline)
		d.Omitted = append(d.Omitted, fmt.Sprintf("intervals[].histograms of the runs: %d bytes, over the %d the page embeds", size, MaxEmbeddedIntervalHistograms))
	}
	// encoding/json escapes <, > and & (and U+2028/9), so the text
	// cannot end the script element.
	b, err := json.Marshal(d)
	if err != nil {
		return "", fmt.Errorf("embed data: %w", err)
	}
	return template.JS(b), nil
}

func withoutIntervalHistograms(r *Run) *Run {
	if r == nil {
		return nil
	}
	c := *r
	c.Intervals = make([]Interval, len(r.Intervals))
	for i, iv := range r.Intervals {
		iv.Histograms = nil
		c.Intervals[i] = iv
	}
	return &c
}

// ReadHTMLData reads back the data a report written by WriteHTML embeds.
func ReadHTMLData(r io.Reader) (*HTMLData, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read report: %w", err)
	}
	start := `<script type="application/json" id="` + dataID + `">`
	i := bytes.Index(b, []byte(start))
	if i < 0 {
		return nil, errors.New("read report: no embedded loadcap data")
	}
	b = b[i+len(start):]
	j := bytes.Index(b, []byte("</script>"))
	if j < 0 {
		return nil, errors.New("read report: embedded data is not terminated")
	}
	var d HTMLData
	if err := json.Unmarshal(b[:j], &d); err != nil {
		return nil, fmt.Errorf("read report: %w", err)
	}
	if d.Schema != ReportSchema {
		return nil, fmt.Errorf("read report: schema %q, want %q", d.Schema, ReportSchema)
	}
	return &d, nil
}

// exitMeaning names the exit codes of docs/ARCHITECTURE.md.
func exitMeaning(code int) string {
	switch code {
	case 0:
		return "ok"
	case 1:
		return "tool error"
	case 2:
		return "usage error"
	case 99:
		return "thresholds or SLO failed"
	case 104:
		return "invalid input"
	case 105:
		return "aborted"
	case 106:
		return "isolation violated"
	case 110:
		return "regression against the baseline"
	}
	return "exit code " + fmt.Sprint(code)
}

// title is the page's heading.
func title(in HTMLInput) string {
	switch {
	case in.Title != "":
		return in.Title
	case in.Drill != nil && in.Drill.ID != "":
		return "loadcap drill " + in.Drill.ID
	case in.Run != nil && in.Run.Meta.File != "":
		return "loadcap report: " + in.Run.Meta.File
	case in.Run != nil && in.Run.Meta.Target != "":
		return "loadcap report: " + in.Run.Meta.Target
	case in.Find != nil:
		return "loadcap capacity report"
	case in.Plan != nil:
		return "loadcap capacity plan: " + in.Plan.Plan
	}
	return "loadcap report"
}
