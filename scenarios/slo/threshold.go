package slo

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"go.k6.io/k6/metrics"
)

// Kind is the kind of a k6 metric; it decides which aggregations a
// threshold on it may use.
type Kind int

// Metric kinds, as k6 has them.
const (
	Counter Kind = iota + 1 // a running sum: count, rate (per second)
	Rated                   // the fraction of non-zero samples: rate
	Trend                   // a distribution: p(N), avg, min, max, med
)

// String returns k6's name of the kind.
func (k Kind) String() string {
	switch k {
	case Counter:
		return "counter"
	case Rated:
		return "rate"
	case Trend:
		return "trend"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Aggregations lists the aggregations a threshold on a metric of this kind
// may use, as a user writes them.
func (k Kind) Aggregations() []string {
	switch k {
	case Counter:
		return []string{"count", "rate"}
	case Rated:
		return []string{"rate"}
	case Trend:
		return []string{"p(N)", "avg", "min", "max", "med"}
	}
	return nil
}

// Allows reports whether a threshold on a metric of this kind may use a.
func (k Kind) Allows(a Agg) bool {
	switch k {
	case Counter:
		return a == Count || a == Rate
	case Rated:
		return a == Rate
	case Trend:
		return a.Latency()
	}
	return false
}

// ParseThreshold reads one k6 threshold expression: AGGREGATION OPERATOR
// NUMBER ("p(99)<200", "rate<0.01", "count>=100"), numbers bare as k6
// writes them (latency in ms). k6's own parser decides what is accepted,
// so a scenario file and a script mean the same; its error is returned as
// it words it.
func ParseThreshold(expr string) (Expr, error) {
	ts := metrics.NewThresholds([]string{expr})
	if err := ts.Parse(); err != nil {
		return Expr{}, err
	}
	e := Expr{Text: expr}
	i := strings.IndexAny(expr, "<>=!")
	if i < 0 {
		return Expr{}, fmt.Errorf("threshold %q: no operator", expr)
	}
	left, right := strings.TrimSpace(expr[:i]), ""
	e.Op, right = cutOp(expr[i:])
	if e.Op == "" {
		return Expr{}, fmt.Errorf("threshold %q: unknown operator", expr)
	}
	e.Limit, _ = strconv.ParseFloat(strings.TrimSpace(right), 64)
	if strings.HasPrefix(left, "p(") && strings.HasSuffix(left, ")") {
		e.Agg = P
		e.Pct, _ = strconv.ParseFloat(strings.TrimSpace(left[2:len(left)-1]), 64)
		if math.IsNaN(e.Pct) || e.Pct < 0 || e.Pct > 100 {
			return Expr{}, &ValueError{expr, "a percentile must be between 0 and 100"}
		}
	} else {
		e.Agg = Agg(left)
	}
	if math.IsNaN(e.Limit) || math.IsInf(e.Limit, 0) {
		return Expr{}, &ValueError{expr, "the value must be a finite number"}
	}
	return e, nil
}

// A ValueError is a threshold k6's grammar accepts but whose numbers loadcap
// cannot evaluate: a percentile outside 0..100, a limit that is not finite.
// Any other error of ParseThreshold is k6's syntax error.
type ValueError struct{ Expr, Msg string }

func (e *ValueError) Error() string { return fmt.Sprintf("%q: %s", e.Expr, e.Msg) }
