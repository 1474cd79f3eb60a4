package scenarios

import "testing"

func TestParseThreshold(t *testing.T) {
	tests := []struct {
		name, key, expr string
		ok              bool
		agg             string
		tags            int
	}{
		{name: "duration percentile", key: "http_req_duration", expr: "p(95)<200", ok: true, agg: "p"},
		{name: "tagged by a request named only at run time", key: "http_req_duration{name:http://x/}", expr: "max<1000", ok: true, agg: "max", tags: 1},
		{name: "failure rate", key: "http_req_failed{scenario:s}", expr: "rate<0.01", ok: true, agg: "rate", tags: 1},
		{name: "custom metric", key: "my_trend", expr: "p(95)<200"},
		{name: "checks are k6's", key: "checks", expr: "rate>0.9"},
		{name: "unsupported tag", key: "http_req_duration{status:200}", expr: "p(95)<200"},
		{name: "wrong aggregation", key: "http_reqs", expr: "p(95)<200"},
		{name: "bad expression", key: "http_reqs", expr: "count<<3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th, err := ParseThreshold(tt.key, tt.expr)
			if (err == nil) != tt.ok {
				t.Fatalf("err %v, want ok %v", err, tt.ok)
			}
			if !tt.ok {
				return
			}
			if th.Agg != tt.agg || len(th.Tags) != tt.tags || th.Key() != tt.key {
				t.Errorf("got agg %q tags %v key %q", th.Agg, th.Tags, th.Key())
			}
		})
	}
}
