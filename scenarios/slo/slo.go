// Package slo is the one home of loadcap's condition language: the SLO
// clauses that `capacity find`, the drill guard and drill plans take
// ("p(99)<200ms,error<0.5%") and the k6-syntax threshold expressions of
// scenario files and scripts ("p(99)<200", "rate<0.01", "count>100").
// It parses both and evaluates them over a Window of results.
//
// It imports nothing of loadcap: every package that judges results
// (scenarios, loadgen, capacity, the guard, reports) imports it, so that an
// expression means the same thing wherever a user writes it.
//
// Units: latency values are milliseconds (a clause may write ms, s, us or
// µs; a bare number is ms, as in k6), error rates are fractions (a clause
// may write a percentage), rps is requests finished per second.
package slo

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Agg is what an expression measures.
type Agg string

// Aggregations. P, Avg, Med, Min and Max are latency (ms); Error is the
// failed fraction of finished requests; RPS finished requests per second;
// Count and Rate are k6's counter and rate aggregations, whose meaning
// depends on the metric a threshold names (see Expr.OfCounter, Expr.OfRate).
const (
	P     Agg = "p"
	Avg   Agg = "avg"
	Med   Agg = "med"
	Min   Agg = "min"
	Max   Agg = "max"
	Error Agg = "error"
	RPS   Agg = "rps"
	Count Agg = "count"
	Rate  Agg = "rate"
)

// Latency reports whether a measures latency (a value in ms).
func (a Agg) Latency() bool {
	switch a {
	case P, Avg, Med, Min, Max:
		return true
	}
	return false
}

// Expr is one condition: an aggregation compared with a limit.
type Expr struct {
	Text  string  // as written: "p(99)<200ms"
	Agg   Agg     // what is measured
	Pct   float64 // for Agg P: 99, 99.9, ...
	Op    string  // "<", "<=", ">", ">=", "==" or "!="
	Limit float64 // ms for latency, a fraction for Error, per second for RPS
}

// Name is the aggregation as a user writes it: "p(99)", "avg", "error".
func (e Expr) Name() string {
	if e.Agg == P {
		return "p(" + strconv.FormatFloat(e.Pct, 'g', -1, 64) + ")"
	}
	return string(e.Agg)
}

// Holds reports whether v passes (v Op Limit). NaN, the value of a
// window without data, never holds.
func (e Expr) Holds(v float64) bool {
	if math.IsNaN(v) {
		return false
	}
	switch e.Op {
	case "<":
		return v < e.Limit
	case "<=":
		return v <= e.Limit
	case ">":
		return v > e.Limit
	case ">=":
		return v >= e.Limit
	case "==":
		return v == e.Limit
	case "!=":
		return v != e.Limit
	}
	return false
}

// Unit is the unit of the expression's values: "ms", "ratio" (0.02 is 2%)
// or "/s"; "" for k6's count and rate, whose unit is the metric's.
func (e Expr) Unit() string {
	switch {
	case e.Agg.Latency():
		return "ms"
	case e.Agg == Error:
		return "ratio"
	case e.Agg == RPS:
		return "/s"
	}
	return ""
}

// Format writes v in the expression's unit: "12.5ms", "0.5%", "480/s".
func (e Expr) Format(v float64) string {
	switch e.Unit() {
	case "ms":
		return fmt.Sprintf("%.4gms", v)
	case "ratio":
		return fmt.Sprintf("%.3g%%", 100*v)
	case "/s":
		return fmt.Sprintf("%.4g/s", v)
	}
	return fmt.Sprintf("%g", v)
}

// SLO is a list of clauses that must all hold.
type SLO struct {
	Text    string
	Clauses []Expr
}

// Parse reads an SLO: comma-separated clauses of a latency aggregation
// (p(N), avg, med, min, max) under a duration ("200ms", "1.5s", "500us",
// or a bare number of ms), the error rate under a percentage or fraction
// ("error<0.5%", "error<0.005"; also "errors", "error_rate"), or the
// finished requests per second above a rate ("rps>500"). Latency and errors
// take upper limits (< or <=), rps a lower one (> or >=).
func Parse(s string) (SLO, error) {
	out := SLO{Text: s}
	for _, raw := range strings.Split(s, ",") {
		text := strings.TrimSpace(raw)
		if text == "" {
			continue
		}
		c, err := ParseClause(text)
		if err != nil {
			return SLO{}, fmt.Errorf("slo clause %q: %w", text, err)
		}
		out.Clauses = append(out.Clauses, c)
	}
	if len(out.Clauses) == 0 {
		return SLO{}, fmt.Errorf("slo %q: no clauses (want e.g. 'p(99)<200ms,error<0.5%%')", s)
	}
	return out, nil
}

// MustParse is Parse for SLOs fixed in code; it panics on an error.
func MustParse(s string) SLO {
	o, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return o
}

// ParseClause reads one SLO clause (see Parse).
func ParseClause(text string) (Expr, error) {
	c := Expr{Text: text}
	i := strings.IndexAny(text, "<>=!")
	if i <= 0 {
		return c, fmt.Errorf("want AGG<LIMIT, e.g. p(99)<200ms or error<1%%")
	}
	lhs, rest := strings.TrimSpace(text[:i]), text[i:]
	c.Op, rest = cutOp(rest)
	rest = strings.TrimSpace(rest)
	agg, pct, err := parseAgg(lhs)
	if err != nil {
		return c, err
	}
	c.Agg, c.Pct = agg, pct
	switch c.Agg {
	case Error:
		if c.Op != "<" && c.Op != "<=" {
			return c, fmt.Errorf("an error SLO is an upper limit: use < or <=")
		}
		v, pct := strings.CutSuffix(rest, "%")
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || f < 0 || math.IsNaN(f) {
			return c, fmt.Errorf("error limit %q: want a percentage like 0.5%% or a fraction like 0.005", rest)
		}
		if pct {
			f /= 100
		}
		if f > 1 {
			return c, fmt.Errorf("error limit %q is over 100%%", rest)
		}
		c.Limit = f
	case RPS:
		if c.Op != ">" && c.Op != ">=" {
			return c, fmt.Errorf("an rps SLO is a lower limit: use > or >=")
		}
		v := strings.TrimSpace(strings.TrimSuffix(strings.TrimSuffix(rest, "/s"), "rps"))
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 || math.IsInf(f, 0) || math.IsNaN(f) {
			return c, fmt.Errorf("rps limit %q: want a positive rate like 500 or 500/s", rest)
		}
		c.Limit = f
	case Count, Rate:
		return c, fmt.Errorf("unknown aggregation %q: use p(N), avg, med, min, max, error or rps", lhs)
	default:
		if c.Op != "<" && c.Op != "<=" {
			return c, fmt.Errorf("an SLO is an upper limit: use < or <=")
		}
		ms, err := parseMs(rest)
		if err != nil {
			return c, err
		}
		c.Limit = ms
	}
	return c, nil
}

// cutOp splits the comparison operator off s ("<=200" → "<=", "200").
// An unknown operator is returned as "" with s unchanged.
func cutOp(s string) (op, rest string) {
	for _, o := range []string{"<=", ">=", "===", "==", "!=", "<", ">"} {
		if r, ok := strings.CutPrefix(s, o); ok {
			if o == "===" {
				o = "=="
			}
			return o, r
		}
	}
	return "", s
}

// parseAgg reads an aggregation name.
func parseAgg(lhs string) (Agg, float64, error) {
	switch lhs {
	case "error", "errors", "error_rate":
		return Error, 0, nil
	case "rps":
		return RPS, 0, nil
	case "avg", "med", "min", "max", "count", "rate":
		return Agg(lhs), 0, nil
	}
	if strings.HasPrefix(lhs, "p(") && strings.HasSuffix(lhs, ")") {
		p, err := strconv.ParseFloat(strings.TrimSpace(lhs[2:len(lhs)-1]), 64)
		if err != nil || math.IsNaN(p) || p <= 0 || p > 100 {
			return "", 0, fmt.Errorf("percentile %q: want p(N) with 0 < N ≤ 100", lhs)
		}
		return P, p, nil
	}
	return "", 0, fmt.Errorf("unknown aggregation %q: use p(N), avg, med, min, max, error or rps", lhs)
}

// parseMs reads a latency limit: "200ms", "1.5s", "500us", or a bare
// number of milliseconds (k6's threshold convention).
func parseMs(s string) (float64, error) {
	units := []struct {
		suffix string
		ms     float64
	}{{"ms", 1}, {"us", 0.001}, {"µs", 0.001}, {"s", 1000}}
	num, scale := s, 1.0
	for _, u := range units {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			num, scale = v, u.ms
			break
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || f <= 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("latency limit %q: want a positive duration like 200ms or 1.5s", s)
	}
	return f * scale, nil
}

// Window is the span of results an SLO is judged over; loadgen.Window is
// the one loadcap uses. Latency is in µs and may be nil when nothing
// finished.
type Window interface {
	Finished() int64 // requests that completed or failed
	Failures() int64 // of those, failed
	Span() time.Duration
	Latency() *hdr.Histogram
}

// Value is the window's figure for the clause: ms for latency, a fraction
// for Error, per second for RPS, the finished count for Count. NaN when the
// window holds nothing to measure (no request finished, no span).
func (e Expr) Value(w Window) float64 {
	switch e.Agg {
	case Error:
		return e.OfRate(w.Failures(), w.Finished())
	case RPS:
		return e.OfCounter(w.Finished(), w.Span())
	case Count:
		return float64(w.Finished())
	}
	return e.OfTrend(w.Latency())
}

// OfTrend is a latency aggregation of h (µs) in ms; NaN when h is empty
// or the aggregation is not a latency one.
func (e Expr) OfTrend(h *hdr.Histogram) float64 {
	if h == nil || h.TotalCount() == 0 {
		return math.NaN()
	}
	switch e.Agg {
	case P:
		return float64(h.ValueAtPercentile(e.Pct)) / 1000
	case Med:
		return float64(h.ValueAtPercentile(50)) / 1000
	case Avg:
		return h.Mean() / 1000
	case Min:
		return float64(h.Min()) / 1000
	case Max:
		return float64(h.Max()) / 1000
	}
	return math.NaN()
}

// OfRate is k6's rate of a rate metric: the fraction num/den; NaN when den
// is 0.
func (e Expr) OfRate(num, den int64) float64 {
	if den <= 0 {
		return math.NaN()
	}
	return float64(num) / float64(den)
}

// OfCounter is k6's aggregation of a counter metric of n over span: count
// is n, rate (and rps) n per second; NaN for other aggregations or an
// empty span with rate.
func (e Expr) OfCounter(n int64, span time.Duration) float64 {
	switch e.Agg {
	case Count:
		return float64(n)
	case Rate, RPS:
		if span <= 0 {
			return math.NaN()
		}
		return float64(n) / span.Seconds()
	}
	return math.NaN()
}

// ClauseResult is one clause judged over one window.
type ClauseResult struct {
	Expr   Expr
	Value  float64 // NaN: no data
	Passed bool
}

// Verdict is an SLO judged over one window.
type Verdict struct {
	Passed  bool
	Clauses []ClauseResult
	// Failed is the first clause that does not hold; nil when all hold.
	Failed *ClauseResult
	// Closest is, when all hold, the clause nearest to its limit (the
	// highest value/limit for an upper limit, the lowest for a lower one).
	Closest *ClauseResult
}

// Eval judges every clause of s over w.
func (s SLO) Eval(w Window) Verdict {
	v := Verdict{Passed: true, Clauses: make([]ClauseResult, 0, len(s.Clauses))}
	for _, c := range s.Clauses {
		x := c.Value(w)
		v.Clauses = append(v.Clauses, ClauseResult{Expr: c, Value: x, Passed: c.Holds(x)})
	}
	closest := math.Inf(-1)
	for i := range v.Clauses {
		r := &v.Clauses[i]
		if !r.Passed {
			if v.Failed == nil {
				v.Failed = r
			}
			v.Passed = false
			continue
		}
		if q := nearness(r.Expr, r.Value); q > closest {
			closest, v.Closest = q, r
		}
	}
	if !v.Passed {
		v.Closest = nil
	}
	return v
}

// nearness is how close v is to the clause's limit, 1 at the limit.
func nearness(e Expr, v float64) float64 {
	if e.Limit == 0 || v == 0 {
		return 0
	}
	if e.Op == ">" || e.Op == ">=" {
		return e.Limit / v
	}
	return v / e.Limit
}
