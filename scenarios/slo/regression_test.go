package slo

import (
	"strings"
	"testing"
)

func TestParseAllowances(t *testing.T) {
	tests := []struct {
		name, in string
		want     []Allowance
		wantErr  string
	}{
		{"default", DefaultMaxRegression, []Allowance{
			{Text: "p(99)+10%", Metric: "p", Pct: 99, Limit: 10, Unit: "%"},
			{Text: "rps-5%", Metric: "rps", Limit: 5, Unit: "%"},
			{Text: "error_rate+0.1pp", Metric: "error_rate", Limit: 0.1, Unit: "pp"}}, ""},
		{"absolute latency", "p(99.9)+5ms, max+20%", []Allowance{
			{Text: "p(99.9)+5ms", Metric: "p", Pct: 99.9, Limit: 5, Unit: "ms"},
			{Text: "max+20%", Metric: "max", Limit: 20, Unit: "%"}}, ""},
		{"rps can only fall", "rps+5%", nil, "write rps-LIMIT"},
		{"latency can only rise", "p(99)-5%", nil, "write p(99)+LIMIT"},
		{"unknown metric", "p99+5%", nil, "unknown metric"},
		{"missing unit", "p(99)+10", nil, "want a unit"},
		{"empty", " ", nil, "no clauses"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAllowances(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || len(got) != len(tc.want) {
				t.Fatalf("got %+v, %v", got, err)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("clause %d = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

// runWith builds a run whose one request has the given latencies (µs),
// rate and failures.
