package reports

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/loadcap/loadcap/loadgen"
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
func runWith(latUs []int64, rps float64, failed int64) *Run {
	res := sample()
	h := hist(latUs...)
	res.Requests = []*loadgen.RequestStats{{Name: "api", Sent: int64(len(latUs)), Completed: int64(len(latUs)) - failed, Failed: failed,
		Latency: h, Service: h, StatusCodes: map[int]int64{}}}
	res.Latency, res.Service = h, h
	res.Totals = loadgen.Totals{Scheduled: int64(len(latUs)), Sent: int64(len(latUs)), Completed: int64(len(latUs)) - failed, Failed: failed}
	res.Duration = time.Duration(float64(len(latUs)) / rps * float64(time.Second))
	return NewRun(res, Meta{})
}

func scale(us []int64, f float64) []int64 {
	out := make([]int64, len(us))
	for i, v := range us {
		out[i] = int64(float64(v) * f)
	}
	return out
}

func TestCompare(t *testing.T) {
	lat := func(ms int64) []int64 {
		v := make([]int64, 100)
		for i := range v {
			v[i] = ms * 1000
		}
		return v
	}
	base := runWith(lat(10), 100, 0)
	allow, _ := ParseAllowances(DefaultMaxRegression)
	cases := []struct {
		name      string
		run       *Run
		regressed []string
	}{
		{"same", runWith(lat(10), 100, 0), nil},
		{"p99 +5% is allowed", runWith(scale(lat(10), 1.05), 100, 0), nil},
		{"p99 +50%", runWith(lat(15), 100, 0), []string{"p(99)+10%"}},
		{"rps -10%", runWith(lat(10), 90, 0), []string{"rps-5%"}},
		{"errors +2pp", runWith(lat(10), 100, 2), []string{"error_rate+0.1pp"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Compare(base, tc.run, allow)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, ch := range c.Checks {
				if ch.Regressed && ch.Request == "all" {
					got = append(got, ch.Allowance)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.regressed, ",") || c.Regressed != (len(tc.regressed) > 0) {
				t.Errorf("regressed %v (overall %v), want %v", got, c.Regressed, tc.regressed)
			}
			var b bytes.Buffer
			c.WriteText(&b)
			if tc.regressed != nil && !strings.Contains(b.String(), "REGRESSED") {
				t.Errorf("table lacks the verdict:\n%s", b.String())
			}
		})
	}
}
