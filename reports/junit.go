package reports

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/loadcap/loadcap/capacity"
)

// JUnitInput is what WriteJUnit reports: each part present becomes one
// <testsuite>.
type JUnitInput struct {
	Run        *Run                 // suite "loadcap.run": a case per threshold, and an error case when the run was aborted
	Find       *capacity.FindResult // suite "loadcap.capacity": a case per SLO clause of the final soak, and the max-QPS result
	Comparison *Comparison          // suite "loadcap.compare": a case per check
	// Time stamps the suites when there is no Run to take the start time
	// from; zero leaves them without a timestamp.
	Time time.Time
}

// The JUnit XML schema, as Jenkins, GitLab and most CI systems read it.
type (
	junitSuites struct {
		XMLName  xml.Name     `xml:"testsuites"`
		Name     string       `xml:"name,attr"`
		Tests    int          `xml:"tests,attr"`
		Failures int          `xml:"failures,attr"`
		Errors   int          `xml:"errors,attr"`
		Skipped  int          `xml:"skipped,attr"`
		Time     string       `xml:"time,attr"`
		Suites   []junitSuite `xml:"testsuite"`
	}
	junitSuite struct {
		Name       string          `xml:"name,attr"`
		Tests      int             `xml:"tests,attr"`
		Failures   int             `xml:"failures,attr"`
		Errors     int             `xml:"errors,attr"`
		Skipped    int             `xml:"skipped,attr"`
		Time       string          `xml:"time,attr"`
		Timestamp  string          `xml:"timestamp,attr,omitempty"`
		Properties []junitProperty `xml:"properties>property,omitempty"`
		Cases      []junitCase     `xml:"testcase"`
		secs       float64
	}
	junitProperty struct {
		Name  string `xml:"name,attr"`
		Value string `xml:"value,attr"`
	}
	junitCase struct {
		Name      string        `xml:"name,attr"`
		Classname string        `xml:"classname,attr"`
		Time      string        `xml:"time,attr"`
		Failure   *junitProblem `xml:"failure,omitempty"`
		Error     *junitProblem `xml:"error,omitempty"`
		Skipped   *junitProblem `xml:"skipped,omitempty"`
		SystemOut string        `xml:"system-out,omitempty"`
	}
	junitProblem struct {
		Message string `xml:"message,attr"`
		Type    string `xml:"type,attr,omitempty"`
		Text    string `xml:",chardata"`
	}
)

// WriteJUnit writes in as JUnit XML: <testsuites> holding a <testsuite>
// for each of the run, the capacity search and the comparison that in has.
// Every test case carries the measured value in its failure message. The
// same input always gives the same bytes.
func WriteJUnit(w io.Writer, in JUnitInput) error {
	if in.Run == nil && in.Find == nil && in.Comparison == nil {
		return errors.New("junit: no run, find result or comparison to report")
	}
	stamp := ""
	if !in.Time.IsZero() {
		stamp = in.Time.UTC().Format("2006-01-02T15:04:05")
	}
	if in.Run != nil {
		if t, err := time.Parse(time.RFC3339Nano, in.Run.Started); err == nil {
			stamp = t.UTC().Format("2006-01-02T15:04:05")
		}
	}
	doc := junitSuites{Name: "loadcap"}
	if in.Run != nil {
		doc.Suites = append(doc.Suites, runSuite(in.Run))
	}
	if in.Find != nil {
		doc.Suites = append(doc.Suites, findSuite(in.Find))
	}
	if in.Comparison != nil {
		doc.Suites = append(doc.Suites, compareSuite(in.Comparison, in.Run))
	}
	total := 0.0
	for i := range doc.Suites {
		s := &doc.Suites[i]
		s.Timestamp = stamp
		s.Tests = len(s.Cases)
		for _, c := range s.Cases {
			switch {
			case c.Failure != nil:
				s.Failures++
			case c.Error != nil:
				s.Errors++
			case c.Skipped != nil:
				s.Skipped++
			}
		}
		doc.Tests += s.Tests
		doc.Failures += s.Failures
		doc.Errors += s.Errors
		doc.Skipped += s.Skipped
		s.Time = junitTime(s.secs)
		total += s.secs
	}
	doc.Time = junitTime(total)
	b, err := xml.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("junit: %w", err)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

func junitTime(s float64) string {
	if math.IsNaN(s) || s < 0 {
		s = 0
	}
	return fmt.Sprintf("%.3f", s)
}

func runSuite(r *Run) junitSuite {
	name := "loadcap.run"
	if r.Meta.File != "" {
		name += " " + r.Meta.File
	}
	s := junitSuite{Name: name, secs: r.DurationS}
	for _, p := range []junitProperty{
		{"scenario_file", r.Meta.File}, {"target", r.Meta.Target}, {"loadcap_version", r.Meta.Version},
		{"status", r.Status}, {"requests", fmt.Sprint(r.Totals.Completed + r.Totals.Failed)}, {"rps", fmt.Sprint(r.Totals.RPS)},
	} {
		if p.Value != "" {
			s.Properties = append(s.Properties, p)
		}
	}
	for _, th := range r.Thresholds {
		c := junitCase{Name: th.Metric + " " + th.Expr, Classname: "loadcap.thresholds", Time: junitTime(0)}
		val := "no data"
		if th.Value != nil {
			val = fmt.Sprintf("%.6g", *th.Value)
		}
		if th.Passed {
			c.SystemOut = "value " + val
		} else {
			msg := fmt.Sprintf("%s %s: value %s", th.Metric, th.Expr, val)
			if th.Abort {
				msg += "; the run was aborted on it"
			}
			c.Failure = &junitProblem{Message: msg, Type: "threshold", Text: msg}
		}
		s.Cases = append(s.Cases, c)
	}
	// An aborted run is an error of its own: its thresholds may all have
	// passed on the part that ran.
	if r.Status == "aborted" {
		msg := strings.TrimSpace("run aborted: " + r.AbortReason + " " + r.AbortCause)
		s.Cases = append(s.Cases, junitCase{Name: "run completes", Classname: "loadcap.run", Time: junitTime(r.DurationS),
			Error:     &junitProblem{Message: msg, Type: "aborted", Text: msg},
			SystemOut: fmt.Sprintf("%d requests, %.1f req/s, %d failed, %d dropped", r.Totals.Completed+r.Totals.Failed, r.Totals.RPS, r.Totals.Failed, r.Totals.Dropped)})
	}
	return s
}

func findSuite(f *capacity.FindResult) junitSuite {
	s := junitSuite{Name: "loadcap.capacity",
		Properties: []junitProperty{{"slo", f.SLO}, {"max_qps", fmt.Sprint(f.MaxQPS)}, {"saturation_qps", fmt.Sprint(f.SaturationQPS)}}}
	var soak *capacity.Step
	for i := range f.Steps {
		if f.Steps[i].Phase == "soak" {
			soak = &f.Steps[i]
		}
	}
	if soak != nil {
		where := fmt.Sprintf("at %s req/s (soak, step %d)", rate(soak.Offered), soak.N)
		for _, cl := range soak.Clauses {
			c := junitCase{Name: "SLO " + cl.Clause, Classname: "loadcap.capacity.slo", Time: junitTime(0)}
			msg := fmt.Sprintf("%s: measured %s %s", cl.Clause, clauseValue(cl), where)
			if cl.Passed {
				c.SystemOut = msg
			} else {
				c.Failure = &junitProblem{Message: msg, Type: "slo", Text: msg}
			}
			s.Cases = append(s.Cases, c)
		}
		c := junitCase{Name: "steady: achieved ≥ 95% of offered, nothing dropped", Classname: "loadcap.capacity.slo", Time: junitTime(0)}
		msg := fmt.Sprintf("achieved %s of %s req/s, %d dropped %s", rate(soak.Achieved), rate(soak.Offered), soak.Dropped, where)
		if soak.Achieved >= 0.95*soak.Offered && soak.Dropped == 0 {
			c.SystemOut = msg
		} else {
			c.Failure = &junitProblem{Message: msg, Type: "slo", Text: msg}
		}
		s.Cases = append(s.Cases, c)
	}
	c := junitCase{Name: "max QPS under " + f.SLO, Classname: "loadcap.capacity", Time: junitTime(0)}
	switch {
	case f.MaxQPS == 0:
		msg := "no rate met the SLO " + f.SLO
		c.Failure = &junitProblem{Message: msg, Type: "capacity", Text: msg + "\n" + strings.Join(f.Notes, "\n")}
	case !f.Confirmed:
		c.SystemOut = fmt.Sprintf("max QPS %s req/s, not confirmed by the soak", rate(f.MaxQPS))
	default:
		c.SystemOut = fmt.Sprintf("max QPS %s req/s, confirmed by the soak", rate(f.MaxQPS))
	}
	s.Cases = append(s.Cases, c)
	return s
}

func compareSuite(cmp *Comparison, run *Run) junitSuite {
	s := junitSuite{Name: "loadcap.compare",
		Properties: []junitProperty{{"resamples", fmt.Sprint(cmp.Resamples)}, {"confidence", fmt.Sprint(Confidence)}}}
	if run != nil {
		s.secs = run.DurationS
	}
	for _, ch := range cmp.Checks {
		c := junitCase{Name: ch.Request + " " + ch.Allowance, Classname: "loadcap.compare." + ch.Request, Time: junitTime(0)}
		msg := fmt.Sprintf("%s %s: baseline %s, run %s, change %s", ch.Request, ch.Allowance, checkFigure(ch, ch.Baseline), checkFigure(ch, ch.Run), ch.Change)
		if ch.CI != nil {
			msg += ", 95% interval " + ch.CI.String(ch.Unit)
		} else if ch.Noise != "" {
			msg += " (noise not assessed: " + ch.Noise + ")"
		}
		switch {
		case math.IsNaN(ch.Delta):
			c.Skipped = &junitProblem{Message: "no data: " + msg}
		case ch.Regressed:
			c.Failure = &junitProblem{Message: msg, Type: "regression", Text: msg}
		default:
			if beyondPoint(ch) {
				msg += "; beyond the allowance but within the noise"
			}
			c.SystemOut = msg
		}
		s.Cases = append(s.Cases, c)
	}
	return s
}
