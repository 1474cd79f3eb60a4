package slo

import (
	"fmt"
	"strconv"
	"strings"
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
		a, err := ParseAllowance(text)
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

// ParseAllowance reads one clause of --max-regression (see ParseAllowances).
func ParseAllowance(text string) (Allowance, error) {
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

// Expr is the aggregation the allowance compares, for the latency ones
// (p(N), avg, max): evaluate it with OfTrend.
func (a Allowance) Expr() Expr {
	switch a.Metric {
	case "p":
		return Expr{Agg: P, Pct: a.Pct}
	case "avg":
		return Expr{Agg: Avg}
	case "max":
		return Expr{Agg: Max}
	case "rps":
		return Expr{Agg: RPS}
	}
	return Expr{Agg: Error}
}
