package scenarios

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"go.k6.io/k6/metrics"
	"gopkg.in/yaml.v3"

	"github.com/loadcap/loadcap/scenarios/slo"
)

// MetricType is the kind of a metric, as in k6; it decides which
// aggregations a threshold may use. It is the SLO language's Kind.
type MetricType = slo.Kind

// The metric types.
const (
	Counter = slo.Counter // a running sum: count, rate (per second)
	Rate    = slo.Rated   // the fraction of non-zero samples: rate
	Trend   = slo.Trend   // a distribution: p(N), avg, min, max, med
)

// metricInfo describes a metric thresholds may name.
type metricInfo struct {
	typ     MetricType
	nameTag bool // may be filtered by {name:REQUEST}
}

// Metrics that thresholds may use. Every one may be filtered by
// {scenario:NAME}; the per-request ones also by {name:REQUEST}.
var knownMetrics = map[string]metricInfo{
	"http_req_duration":  {Trend, true},   // ms, from the intended send time; every request, gRPC calls too
	"grpc_req_duration":  {Trend, true},   // ms, the same for gRPC calls only
	"http_req_failed":    {Rate, true},    // fraction of failed requests
	"http_reqs":          {Counter, true}, // requests completed
	"dropped_iterations": {Counter, false},
	"data_sent":          {Counter, true}, // bytes
	"data_received":      {Counter, true}, // bytes
}

func metricNames() []string {
	var out []string
	for k := range knownMetrics {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Threshold is one pass/fail criterion, in k6's syntax.
type Threshold struct {
	Metric         string            // one of the metrics listed in the package documentation
	Type           MetricType        // the metric's type
	Tags           map[string]string // "name" (a request) and/or "scenario"
	Expr           string            // the source, e.g. "p(99)<200"
	Agg            string            // "p", "avg", "min", "max", "med", "count" or "rate"
	Pct            float64           // for Agg "p": 99, 99.9, ...
	Op             string            // "<", "<=", ">", ">=", "==" or "!="
	Value          float64           // ms for durations (k6's convention), a fraction for rates
	AbortOnFail    bool
	DelayAbortEval time.Duration // with AbortOnFail: do not abort before this much run time
	Pos            Pos

	key string // the metric key as written
}

// Key returns the metric with its tags as written, e.g.
// "http_req_duration{name:checkout}".
func (t Threshold) Key() string {
	if t.key != "" {
		return t.key
	}
	if len(t.Tags) == 0 {
		return t.Metric
	}
	var tags []string
	for k, v := range t.Tags {
		tags = append(tags, k+":"+v)
	}
	sort.Strings(tags)
	return t.Metric + "{" + strings.Join(tags, ",") + "}"
}

// Compare reports whether v passes the threshold (v Op Value).
func (t Threshold) Compare(v float64) bool { return t.Condition().Holds(v) }

// Condition is the threshold's expression in the SLO language.
func (t Threshold) Condition() slo.Expr {
	return slo.Expr{Text: t.Expr, Agg: slo.Agg(t.Agg), Pct: t.Pct, Op: t.Op, Limit: t.Value}
}

func (p *parser) thresholds(n *yaml.Node, f *File) []Threshold {
	pairs, ok := p.mapping(n, "thresholds")
	if !ok {
		return nil
	}
	var out []Threshold
	for _, e := range pairs {
		path := join("thresholds", e.key)
		metric, tags, ok := p.metricKey(e, path, f)
		if !ok {
			continue
		}
		items := resolve(e.v)
		if items.Kind != yaml.SequenceNode {
			// One expression may stand alone; k6 wants a list.
			items = &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{e.v}}
		}
		if len(items.Content) == 0 {
			p.errorf(e.k, path, "needs at least one expression, e.g. [\"p(99)<200\"]")
		}
		for i, item := range items.Content {
			t, ok := p.threshold(item, index(path, i), metric)
			if !ok {
				continue
			}
			t.Tags = tags
			t.key = e.key
			out = append(out, t)
		}
	}
	return out
}

// metricKey parses "metric{tag:value,...}".
func (p *parser) metricKey(e kv, path string, f *File) (string, map[string]string, bool) {
	name, rawTags, err := metrics.ParseMetricName(e.key)
	if err != nil {
		p.errorf(e.k, path, "%v", err)
		return "", nil, false
	}
	info, ok := knownMetrics[name]
	if !ok {
		p.errorf(e.k, path, "unknown metric %q%s; loadcap measures: %s", name, suggest(name, metricNames()),
			strings.Join(metricNames(), ", "))
		return "", nil, false
	}
	good := true
	var tags map[string]string
	for _, t := range rawTags {
		k, v, _ := strings.Cut(t, ":")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if tags == nil {
			tags = map[string]string{}
		}
		if _, dup := tags[k]; dup {
			p.errorf(e.k, path, "tag %q is given twice", k)
			good = false
			continue
		}
		tags[k] = v
		switch k {
		case "name":
			if !info.nameTag {
				p.errorf(e.k, path, "%s is not measured per request: filter it by scenario only", name)
				good = false
				continue
			}
			var names []string
			found := false
			for _, r := range f.Requests {
				names = append(names, r.Name)
				found = found || r.Name == v
			}
			if !found && !p.declared[v] {
				p.errorf(e.k, path, "no request is named %q%s", v, suggest(v, names))
				good = false
			}
		case "scenario":
			var names []string
			found := false
			for _, s := range f.Scenarios {
				names = append(names, s.Name)
				found = found || s.Name == v
			}
			if !found && !p.declaredScenario(v) {
				p.errorf(e.k, path, "no scenario is named %q%s", v, suggest(v, names))
				good = false
			}
		default:
			p.errorf(e.k, path, "unsupported tag %q%s: thresholds filter by name (a request) or scenario", k,
				suggest(k, []string{"name", "scenario"}))
			good = false
		}
	}
	return name, tags, good
}

// declaredScenario reports whether a scenario of that name was written,
// valid or not (so a broken scenario is not reported twice).
func (p *parser) declaredScenario(name string) bool { return p.scenarioNames[name] }

func (p *parser) threshold(item *yaml.Node, path, metric string) (Threshold, bool) {
	n := resolve(item)
	t := Threshold{Metric: metric, Type: knownMetrics[metric].typ, Pos: posOf(n)}
	exprNode := n
	good := true
	switch {
	case n.Kind == yaml.ScalarNode && n.Tag != "!!null":
		t.Expr = n.Value
	case n.Kind == yaml.MappingNode:
		pairs, _ := p.mapping(n, path)
		p.known(pairs, path, "threshold", "abortOnFail", "delayAbortEval")
		e, ok := find(pairs, "threshold")
		if !ok {
			p.errorf(n, join(path, "threshold"), "is required: the expression, e.g. p(99)<200")
			return t, false
		}
		exprNode = e.v
		if t.Expr, ok = p.str(e.v, join(path, "threshold")); !ok {
			return t, false
		}
		if a, ok := find(pairs, "abortOnFail"); ok {
			if t.AbortOnFail, ok = p.boolean(a.v, join(path, "abortOnFail")); !ok {
				good = false
			}
		}
		if d, ok := find(pairs, "delayAbortEval"); ok {
			if t.DelayAbortEval, ok = p.duration(d.v, join(path, "delayAbortEval")); !ok {
				good = false
			}
		}
	default:
		p.errorf(n, path, "must be an expression such as \"p(99)<200\" or a mapping with threshold:, got %s", describe(n))
		return t, false
	}
	if n.Kind == yaml.MappingNode {
		path = join(path, "threshold")
	}
	if !p.expression(&t, exprNode, path) {
		return t, false
	}
	return t, good
}

// expression parses t.Expr in the SLO language's k6 form and fills Agg,
// Pct, Op and Value; the aggregation must suit the metric's type.
func (p *parser) expression(t *Threshold, n *yaml.Node, path string) bool {
	e, err := slo.ParseThreshold(t.Expr)
	if err != nil {
		var ve *slo.ValueError
		if errors.As(err, &ve) {
			p.errorf(n, path, "%v", err)
		} else {
			p.errorf(n, path, "%v (expected AGGREGATION OPERATOR NUMBER, e.g. p(99)<200)", err)
		}
		return false
	}
	t.Agg, t.Pct, t.Op, t.Value = string(e.Agg), e.Pct, e.Op, e.Limit
	if !t.Type.Allows(e.Agg) {
		agg := t.Agg
		if agg == "p" {
			agg = "p(N)"
		}
		p.errorf(n, path, "%q: %s does not apply to %s, a %s metric; use %s",
			t.Expr, agg, t.Metric, t.Type, strings.Join(t.Type.Aggregations(), ", "))
		return false
	}
	return true
}

// ParseThreshold parses one threshold as a k6 script states it: the
// metric key as written ("http_req_duration{name:checkout}") and one
// expression ("p(99)<200"). Unlike a scenario file's, its name and
// scenario tags are not checked against requests (a script's requests are
// known only as it runs). The error says why loadcap cannot evaluate it:
// a metric it does not measure, a tag it does not filter by, a bad
// expression.
func ParseThreshold(key, expr string) (Threshold, error) {
	p := &parser{file: "threshold"}
	name, rawTags, err := metrics.ParseMetricName(key)
	if err != nil {
		return Threshold{}, err
	}
	info, ok := knownMetrics[name]
	if !ok {
		return Threshold{}, fmt.Errorf("loadcap does not measure %q (it measures %s)", name, strings.Join(metricNames(), ", "))
	}
	t := Threshold{Metric: name, Type: info.typ, Expr: expr, key: key}
	for _, tag := range rawTags {
		k, v, _ := strings.Cut(tag, ":")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if k != "scenario" && !(k == "name" && info.nameTag) {
			return Threshold{}, fmt.Errorf("loadcap does not filter %s by %q", name, k)
		}
		if t.Tags == nil {
			t.Tags = map[string]string{}
		}
		if _, dup := t.Tags[k]; dup {
			return Threshold{}, fmt.Errorf("tag %q is given twice", k)
		}
		t.Tags[k] = v
	}
	if !p.expression(&t, &yaml.Node{}, "threshold") {
		return Threshold{}, errors.New(p.errs[0].Msg)
	}
	return t, nil
}
