package live

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metricsql"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

const dashboard = "../../docs/grafana/loadcap.json"

// exported is every series name loadcap exports, from the descriptors of
// what a Session registers (Metrics and the Pusher), with a histogram's
// _bucket, _sum and _count.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	m := New()
	p, err := NewPusher(m.Registry(), PushConfig{URL: "http://127.0.0.1:1/api/v1/write"})
	if err != nil {
		t.Fatal(err)
	}
	m.Registry().MustRegister(p)
	ch := make(chan *prometheus.Desc, 64)
	m.Describe(ch)
	p.Describe(ch)
	close(ch)
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	names := map[string]bool{}
	for d := range ch {
		sub := fq.FindStringSubmatch(d.String())
		if sub == nil {
			t.Fatalf("no name in %s", d)
		}
		names[sub[1]] = true
	}
	// Which of them are histograms: what a registry gathers once a run
	// has recorded something.
	for _, iv := range intervals(t) {
		m.Observe(iv)
	}
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[mf.GetName()+s] = true
			}
		}
	}
	return names
}

// exprs returns every PromQL expression of a Grafana dashboard: each
// target's expr, and the metric of each label_values() variable query.
func exprs(v any, out *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && (k == "expr" || k == "definition") {
				*out = append(*out, s)
				continue
			}
			exprs(x, out)
		}
	case []any:
		for _, x := range v {
			exprs(x, out)
		}
	}
}

var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "$__interval", "1m", "$__range", "1h")

func TestGrafanaDashboardQueriesExportedMetrics(t *testing.T) {
	b, err := os.ReadFile(dashboard)
	if err != nil {
		t.Fatal(err)
	}
	var d any
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboard, err)
	}
	var qs []string
	exprs(d, &qs)
	if len(qs) < 10 {
		t.Fatalf("%s: only %d queries", dashboard, len(qs))
	}
	names := exported(t)
	used := map[string]bool{}
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*\w+\)$`)
	for _, q := range qs {
		expr := grafanaVars.Replace(q)
		if m := labelValues.FindStringSubmatch(expr); m != nil {
			expr = m[1] // a variable's query: its metric selector
		}
		e, err := metricsql.Parse(expr)
		if err != nil {
			t.Errorf("%s: %q does not parse: %v", dashboard, q, err)
			continue
		}
		metricsql.VisitAll(e, func(e metricsql.Expr) {
			me, ok := e.(*metricsql.MetricExpr)
			if !ok {
				return
			}
			for _, lfs := range me.LabelFilterss {
				for _, lf := range lfs {
					if lf.Label != "__name__" {
						continue
					}
					if lf.IsRegexp || lf.IsNegative || !names[lf.Value] {
						t.Errorf("%s: %q selects %q, not a metric loadcap exports", dashboard, q, lf.Value)
					}
					used[lf.Value] = true
				}
			}
		})
	}
	// The dashboard shows what the issue asks to watch.
	for _, want := range []string{"loadcap_requests_total", "loadcap_request_failures_total", "loadcap_requests_in_flight",
		"loadcap_arrivals_dropped_total", "loadcap_arrivals_scheduled_total", "loadcap_requests_sent_total",
		"loadcap_request_duration_seconds_bucket", "loadcap_drill_stage", "loadcap_guard_rule_state",
		"loadcap_generator_stall_seconds", "loadcap_generator_steal_ratio"} {
		if !used[want] {
			t.Errorf("%s does not chart %s", dashboard, want)
		}
	}
}
