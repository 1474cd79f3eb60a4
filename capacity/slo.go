package capacity

import (
	"fmt"
	"strconv"
	"strings"
)

// Clause is one condition of an SLO: a latency aggregation (in ms) or the
// error rate (a fraction) compared against a limit.
type Clause struct {
	Text  string  // as written: "p(99)<200ms"
	Agg   string  // "p", "avg", "med", "max" (latency) or "error"
	Pct   float64 // for Agg "p"
	Op    string  // "<" or "<="
	Limit float64 // ms for latency, fraction for error
}

// SLO is what a step must meet to count as sustainable. Beyond its clauses,
// find also requires achieved ≥ 95% of offered and no dropped requests.
type SLO struct {
	Text    string
	Clauses []Clause
}

// ParseSLO reads 'p(99)<200ms,error<0.5%': comma-separated clauses of a
// latency aggregation (p(N), avg, med, max) under a duration (ms, s, us),
// or error under a percentage or fraction.
func ParseSLO(s string) (SLO, error) {
	slo := SLO{Text: s}
	for _, raw := range strings.Split(s, ",") {
		text := strings.TrimSpace(raw)
		if text == "" {
			continue
		}
		c, err := parseClause(text)
		if err != nil {
			return SLO{}, fmt.Errorf("slo clause %q: %w", text, err)
		}
		slo.Clauses = append(slo.Clauses, c)
	}
	if len(slo.Clauses) == 0 {
		return SLO{}, fmt.Errorf("slo %q: no clauses (want e.g. 'p(99)<200ms,error<0.5%%')", s)
	}
	return slo, nil
}

func parseClause(text string) (Clause, error) {
	c := Clause{Text: text}
	i := strings.IndexAny(text, "<>=")
	if i <= 0 {
		return c, fmt.Errorf("want AGG<LIMIT, e.g. p(99)<200ms or error<1%%")
	}
	lhs, rest := strings.TrimSpace(text[:i]), text[i:]
	switch {
	case strings.HasPrefix(rest, "<="):
		c.Op, rest = "<=", rest[2:]
	case strings.HasPrefix(rest, "<"):
		c.Op, rest = "<", rest[1:]
	default:
		return c, fmt.Errorf("an SLO is an upper limit: use < or <=")
	}
	rest = strings.TrimSpace(rest)
	switch {
	case lhs == "error" || lhs == "errors" || lhs == "error_rate":
		c.Agg = "error"
		v, pct := strings.CutSuffix(rest, "%")
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || f < 0 {
			return c, fmt.Errorf("error limit %q: want a percentage like 0.5%% or a fraction like 0.005", rest)
		}
		if pct {
			f /= 100
		}
		if f > 1 {
			return c, fmt.Errorf("error limit %q is over 100%%", rest)
		}
		c.Limit = f
		return c, nil
	case strings.HasPrefix(lhs, "p(") && strings.HasSuffix(lhs, ")"):
		p, err := strconv.ParseFloat(lhs[2:len(lhs)-1], 64)
		if err != nil || p <= 0 || p > 100 {
			return c, fmt.Errorf("percentile %q: want p(N) with 0 < N ≤ 100", lhs)
		}
		c.Agg, c.Pct = "p", p
	case lhs == "avg" || lhs == "med" || lhs == "max":
		c.Agg = lhs
	default:
		return c, fmt.Errorf("unknown aggregation %q: use p(N), avg, med, max or error", lhs)
	}
	ms, err := parseMs(rest)
	if err != nil {
		return c, err
	}
	c.Limit = ms
	return c, nil
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
	if err != nil || f <= 0 {
		return 0, fmt.Errorf("latency limit %q: want a positive duration like 200ms or 1.5s", s)
	}
	return f * scale, nil
}

func (c Clause) holds(v float64) bool {
	if c.Op == "<=" {
		return v <= c.Limit
	}
	return v < c.Limit
}
