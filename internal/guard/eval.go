package guard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/scenarios/slo"
)

// Querier runs an instant PromQL query evaluated at the time at. Guards
// use a client of Config.Prometheus; a test or a caller with its own
// client sets Config.Querier. It must honour ctx's deadline.
type Querier interface {
	Query(ctx context.Context, query string, at time.Time) (model.Value, error)
}

// QuerierFunc adapts a function to a Querier.
type QuerierFunc func(ctx context.Context, query string, at time.Time) (model.Value, error)

// Query calls f.
func (f QuerierFunc) Query(ctx context.Context, query string, at time.Time) (model.Value, error) {
	return f(ctx, query, at)
}

var _ Querier = QuerierFunc(nil)

// promQuerier queries Prometheus through the official HTTP API client.
type promQuerier struct{ api v1.API }

var _ Querier = promQuerier{}

func newAPI(c api.Client) v1.API { return v1.NewAPI(c) }

func (p promQuerier) Query(ctx context.Context, query string, at time.Time) (model.Value, error) {
	var opts []v1.Option
	if dl, ok := ctx.Deadline(); ok {
		// Prometheus gives up on its side too, rather than evaluating a
		// query nobody waits for.
		opts = append(opts, v1.WithTimeout(queryTimeout(time.Until(dl))))
	}
	v, _, _, err := p.api.Query(ctx, query, at, opts...)
	return v, err
}

// queryTimeout rounds d down to a duration whose String form Prometheus
// parses ("499ms", "4s"; not "499.97ms" or "1.5s"), at least 1ms.
func queryTimeout(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Truncate(time.Second)
	}
	return max(d.Truncate(time.Millisecond), time.Millisecond)
}

// evalPromQL runs r's query and holds its worst series against Max/Min.
func evalPromQL(ctx context.Context, q Querier, r Rule) outcome {
	v, err := q.Query(ctx, r.PromQL, time.Now())
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return outcome{state: StateError, detail: fmt.Sprintf("query: no answer within %v", r.Timeout)}
		}
		return outcome{state: StateError, detail: "query: " + err.Error()}
	}
	type sample struct {
		labels string
		v      float64
	}
	var ss []sample
	total, nan, inf := 0, 0, 0
	// add keeps a sample that can judge the rule: a finite value, or an
	// infinite one that breaches it (+Inf above Max, -Inf below Min). NaN
	// and an infinity on the safe side show nothing about production.
	add := func(labels string, f float64) {
		total++
		switch {
		case math.IsNaN(f):
			nan++
		case math.IsInf(f, 1) && r.Max == nil, math.IsInf(f, -1) && r.Min == nil:
			inf++
		default:
			ss = append(ss, sample{labels, f})
		}
	}
	switch v := v.(type) {
	case model.Vector:
		for _, s := range v {
			if s.Histogram != nil {
				continue
			}
			add(s.Metric.String(), float64(s.Value))
		}
	case *model.Scalar:
		add("", float64(v.Value))
	case nil:
	default:
		return outcome{state: StateError, detail: fmt.Sprintf("query returned a %s; want an instant vector or a scalar", v.Type())}
	}
	if len(ss) == 0 {
		detail := "query returned no series"
		if total > 0 {
			detail = fmt.Sprintf("query returned %d series, none with a usable value (%d NaN, %d infinite)", total, nan, inf)
		}
		return outcome{state: StateNoData, detail: detail}
	}
	hi, lo := ss[0], ss[0]
	for _, s := range ss[1:] {
		if s.v > hi.v {
			hi = s
		}
		if s.v < lo.v {
			lo = s
		}
	}
	series := func(s sample) string {
		if len(ss) == 1 {
			return ""
		}
		return fmt.Sprintf(" (series %s, 1 of %d)", s.labels, len(ss))
	}
	switch {
	case r.Max != nil && hi.v > *r.Max:
		return outcome{state: StateBad, value: hi.v, limit: *r.Max,
			detail: fmt.Sprintf("value %g above max %g%s", hi.v, *r.Max, series(hi))}
	case r.Min != nil && lo.v < *r.Min:
		return outcome{state: StateBad, value: lo.v, limit: *r.Min,
			detail: fmt.Sprintf("value %g below min %g%s", lo.v, *r.Min, series(lo))}
	case r.Max != nil:
		return outcome{state: StateOK, value: hi.v, limit: *r.Max,
			detail: fmt.Sprintf("value %g within max %g%s", hi.v, *r.Max, series(hi))}
	default:
		return outcome{state: StateOK, value: lo.v, limit: *r.Min,
			detail: fmt.Sprintf("value %g within min %g%s", lo.v, *r.Min, series(lo))}
	}
}

// maxHealthBody is how much of a health answer is read (and discarded) so
// the connection can be reused.
const maxHealthBody = 64 << 10

// evalHealth GETs r's URL: a 2xx answer is good, anything else bad.
func evalHealth(ctx context.Context, c *http.Client, r Rule) outcome {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.Health, nil)
	if err != nil {
		return outcome{state: StateBad, detail: fmt.Sprintf("GET %s: %v", r.Health, err)}
	}
	req.Header.Set("User-Agent", "loadcap-guard")
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return outcome{state: StateBad, detail: fmt.Sprintf("GET %s: no answer within %v", r.Health, r.Timeout)}
		}
		return outcome{state: StateBad, detail: fmt.Sprintf("GET %s: %v", r.Health, err)}
	}
	took := time.Since(start)
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxHealthBody))
	_ = resp.Body.Close()
	o := outcome{value: float64(resp.StatusCode), unit: "status",
		detail: fmt.Sprintf("GET %s: %s in %v", r.Health, resp.Status, took.Round(time.Millisecond))}
	if resp.StatusCode/100 == 2 {
		o.state = StateOK
	} else {
		o.state = StateBad
	}
	return o
}

// evalSLO holds a traffic window against every clause of o. The value
// reported is the first failing clause's, or when all hold the one
// closest to its limit.
func evalSLO(o slo.SLO, minRequests int64, w *loadgen.Window) outcome {
	done := w.Finished()
	if done == 0 || done < minRequests {
		return outcome{state: StateNoData,
			detail: fmt.Sprintf("%d requests finished in the last %ds (need %d)", done, w.Intervals, max(1, minRequests))}
	}
	v := o.Eval(w)
	parts := make([]string, 0, len(v.Clauses))
	for _, c := range v.Clauses {
		parts = append(parts, fmt.Sprintf("%s=%s", c.Expr.Name(), c.Expr.Format(c.Value)))
	}
	seen := fmt.Sprintf("%s over %d requests in %ds", strings.Join(parts, " "), done, w.Intervals)
	if f := v.Failed; f != nil {
		return outcome{state: StateBad, value: f.Value, limit: f.Expr.Limit, unit: f.Expr.Unit(),
			detail: fmt.Sprintf("%s does not hold: %s", f.Expr.Text, seen)}
	}
	c := v.Closest
	if c == nil {
		c = &v.Clauses[0]
	}
	return outcome{state: StateOK, value: c.Value, limit: c.Expr.Limit, unit: c.Expr.Unit(), detail: seen}
}
