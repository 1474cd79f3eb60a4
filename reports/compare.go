package reports

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// DefaultMaxRegression is what compare allows when not told otherwise.
const DefaultMaxRegression = "p(99)+10%,rps-5%,error_rate+0.1pp"

// Allowance is one clause of --max-regression: how far a metric may move in
// its bad direction. Latencies may rise, rps may fall, the error rate may
// rise.
type Allowance struct {
	Text   string  // as written: "p(99)+10%"
	Metric string  // "p", "avg", "max", "rps" or "error_rate"
	Pct    float64 // for "p"
	Limit  float64 // the allowed change
	Unit   string  // "%" (relative), "ms" (latency, absolute) or "pp" (error rate, percentage points)
}

// ParseAllowances reads 'p(99)+10%,rps-5%,error_rate+0.1pp'. Latency
// clauses take + and % or ms; rps takes - and %; error_rate takes + and pp
// or %.
func ParseAllowances(s string) ([]Allowance, error) {
	var out []Allowance
	for _, raw := range strings.Split(s, ",") {
		text := strings.TrimSpace(raw)
		if text == "" {
			continue
		}
		a, err := parseAllowance(text)
		if err != nil {
			return nil, fmt.Errorf("max-regression %q: %w", text, err)
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("max-regression %q: no clauses (e.g. %s)", s, DefaultMaxRegression)
	}
	return out, nil
}

func parseAllowance(text string) (Allowance, error) {
	a := Allowance{Text: text}
	i := strings.IndexAny(text, "+-")
	if i <= 0 {
		return a, fmt.Errorf("want METRIC+LIMIT or rps-LIMIT, e.g. p(99)+10%%")
	}
	name, sign, rest := text[:i], text[i], text[i+1:]
	switch {
	case strings.HasPrefix(name, "p(") && strings.HasSuffix(name, ")"):
		p, err := strconv.ParseFloat(name[2:len(name)-1], 64)
		if err != nil || p <= 0 || p > 100 {
			return a, fmt.Errorf("percentile %q: want p(N) with 0 < N ≤ 100", name)
		}
		a.Metric, a.Pct = "p", p
	case name == "avg" || name == "max" || name == "rps" || name == "error_rate":
		a.Metric = name
	default:
		return a, fmt.Errorf("unknown metric %q: use p(N), avg, max, rps or error_rate", name)
	}
	want := byte('+')
	if a.Metric == "rps" {
		want = '-'
	}
	if sign != want {
		return a, fmt.Errorf("%s regresses when it goes %s: write %s%cLIMIT", name, map[byte]string{'+': "up", '-': "down"}[want], name, want)
	}
	units := []string{"%"}
	switch a.Metric {
	case "p", "avg", "max":
		units = []string{"%", "ms"}
	case "error_rate":
		units = []string{"pp", "%"}
	}
	for _, u := range units {
		if v, ok := strings.CutSuffix(rest, u); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 {
				return a, fmt.Errorf("limit %q: want a non-negative number", rest)
			}
			a.Limit, a.Unit = f, u
			return a, nil
		}
	}
	return a, fmt.Errorf("limit %q: want a unit, one of %s", rest, strings.Join(units, ", "))
}

// Check is one allowance tested against one request name (or "all").
type Check struct {
	Request   string
	Allowance string
	Baseline  float64
	Run       float64
	Change    string // "+12.3%", "-4.0 ms", "+0.20pp"
	Regressed bool
}

// Comparison is a run measured against a baseline.
type Comparison struct {
	Checks    []Check
	Regressed bool
}

// Compare tests run against baseline, overall and for every request name
// both have.
func Compare(baseline, run *Run, allow []Allowance) (*Comparison, error) {
	c := &Comparison{}
	names := []string{""}
	for _, n := range run.RequestNames() {
		if _, ok := baseline.Requests[n]; ok {
			names = append(names, n)
		}
	}
	for _, name := range names {
		bv, err := figures(baseline, name)
		if err != nil {
			return nil, fmt.Errorf("baseline: %w", err)
		}
		rv, err := figures(run, name)
		if err != nil {
			return nil, fmt.Errorf("run: %w", err)
		}
		label := name
		if label == "" {
			label = "all"
		}
		for _, a := range allow {
			ch := check(a, bv, rv)
			ch.Request = label
			c.Checks = append(c.Checks, ch)
			c.Regressed = c.Regressed || ch.Regressed
		}
	}
	return c, nil
}

// figures is what the allowances read from one run for one request name
// ("" = all): its latency histogram, rps and error rate.
type figs struct {
	h          *hdr.Histogram
	rps, errRt float64
}

func figures(r *Run, name string) (figs, error) {
	var f figs
	names := r.RequestNames()
	t := r.Totals
	if name != "" {
		names = []string{name}
		t = r.Requests[name].Totals
	}
	for _, n := range names {
		h, err := r.Histogram(n)
		if err != nil {
			return f, err
		}
		if f.h == nil {
			f.h = hdr.New(1, h.HighestTrackableValue(), int(h.SignificantFigures()))
		}
		f.h.Merge(h)
	}
	f.rps = t.RPS
	if n := t.Completed + t.Failed; n > 0 {
		f.errRt = float64(t.Failed) / float64(n)
	}
	return f, nil
}

func check(a Allowance, b, r figs) Check {
	ch := Check{Allowance: a.Text}
	lat := func(f figs) float64 {
		if f.h == nil || f.h.TotalCount() == 0 {
			return math.NaN()
		}
		switch a.Metric {
		case "avg":
			return f.h.Mean() / 1000
		case "max":
			return float64(f.h.Max()) / 1000
		}
		return float64(f.h.ValueAtPercentile(a.Pct)) / 1000
	}
	switch a.Metric {
	case "rps":
		ch.Baseline, ch.Run = b.rps, r.rps
	case "error_rate":
		ch.Baseline, ch.Run = b.errRt, r.errRt
	default:
		ch.Baseline, ch.Run = lat(b), lat(r)
	}
	if math.IsNaN(ch.Baseline) || math.IsNaN(ch.Run) {
		ch.Change = "no data"
		return ch
	}
	d := ch.Run - ch.Baseline
	rel := 0.0
	if ch.Baseline != 0 {
		rel = 100 * d / ch.Baseline
	} else if d != 0 {
		rel = math.Inf(1)
	}
	switch {
	case a.Unit == "ms":
		ch.Change = fmt.Sprintf("%+.2f ms", d)
		ch.Regressed = d > a.Limit
	case a.Unit == "pp":
		ch.Change = fmt.Sprintf("%+.2fpp", 100*d)
		ch.Regressed = 100*d > a.Limit
	case a.Metric == "rps":
		ch.Change = fmt.Sprintf("%+.1f%%", rel)
		ch.Regressed = -rel > a.Limit
	default:
		ch.Change = fmt.Sprintf("%+.1f%%", rel)
		ch.Regressed = rel > a.Limit
	}
	return ch
}

// WriteText prints the comparison as a table and a verdict.
func (c *Comparison) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "request\tallowed\tbaseline\trun\tchange\tverdict")
	for _, ch := range c.Checks {
		verdict := "ok"
		if ch.Regressed {
			verdict = "REGRESSED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%.4g\t%.4g\t%s\t%s\n", ch.Request, ch.Allowance, ch.Baseline, ch.Run, ch.Change, verdict)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	verdict := "no regression"
	if c.Regressed {
		verdict = "REGRESSION against the baseline"
	}
	_, err := fmt.Fprintln(w, verdict)
	return err
}
