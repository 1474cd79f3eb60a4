package reports

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/scenarios/slo"
)

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
	allow, _ := slo.ParseAllowances(slo.DefaultMaxRegression)
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

func TestCompareNoise(t *testing.T) {
	allow, _ := slo.ParseAllowances("p(99)+10%,avg+10%,rps-5%,error_rate+0.5pp")
	base := steady(60, 1).build()
	hiccup := steady(60, 2)
	hiccup.slow = func(t int) float64 { return map[bool]float64{true: 10, false: 1}[t == 31] }
	shifted := steady(60, 3)
	shifted.slow = func(int) float64 { return 1.3 }
	slower := steady(60, 4)
	slower.rate = func(int) float64 { return 0.85 }
	burst := steady(60, 5)
	burst.failShare = map[string]float64{"5xx": 0.01}
	failing := steady(60, 6)
	failing.failShare = map[string]float64{"5xx": 0.03}
	cases := []struct {
		name string
		run  *Run
		// every "all" check's allowance that must regress, and those whose
		// point change is beyond the allowance but within the noise.
		regressed, withinNoise []string
	}{
		{"same distribution, other samples", steady(60, 7).build(), nil, nil},
		{"a one-second stall is noise", hiccup.build(), nil, []string{"p(99)+10%", "avg+10%"}},
		{"latency 30% higher every second", shifted.build(), []string{"p(99)+10%", "avg+10%"}, nil},
		{"rate 15% lower every second", slower.build(), []string{"rps-5%"}, nil},
		{"errors 1% spread over the run", burst.build(), []string{"error_rate+0.5pp"}, nil},
		{"errors 3% spread over the run", failing.build(), []string{"error_rate+0.5pp"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Compare(base, tc.run, allow, Resamples(400))
			if err != nil {
				t.Fatal(err)
			}
			var regressed, within []string
			for _, ch := range c.Checks {
				if ch.Request != "all" {
					continue
				}
				if ch.CI == nil || ch.Noise != "" {
					t.Errorf("%s: noise not assessed on a 60 s run: %q", ch.Allowance, ch.Noise)
					continue
				}
				if ch.CI.Low > ch.Delta || ch.CI.High < ch.Delta {
					t.Logf("%s: change %v outside its interval %+v", ch.Allowance, ch.Delta, *ch.CI)
				}
				if ch.Regressed {
					regressed = append(regressed, ch.Allowance)
				} else if beyondPoint(ch) {
					within = append(within, ch.Allowance)
				}
			}
			if fmt.Sprint(regressed) != fmt.Sprint(tc.regressed) || fmt.Sprint(within) != fmt.Sprint(tc.withinNoise) {
				var b bytes.Buffer
				c.WriteText(&b)
				t.Errorf("regressed %v and within noise %v, want %v and %v\n%s", regressed, within, tc.regressed, tc.withinNoise, b.String())
			}
		})
	}
}

func TestCompareNoiseIsDeterministic(t *testing.T) {
	allow, _ := slo.ParseAllowances(slo.DefaultMaxRegression)
	base, run := steady(30, 1).build(), steady(30, 2).build()
	var out [2]bytes.Buffer
	for i := range out {
		c, err := Compare(base, run, allow, Resamples(200))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.WriteJSON(&out[i]); err != nil {
			t.Fatal(err)
		}
	}
	if out[0].String() != out[1].String() {
		t.Error("the same runs compared twice give different intervals")
	}
}

func TestCompareShortRunsKeepThePointRule(t *testing.T) {
	allow, _ := slo.ParseAllowances("p(99)+10%")
	base := steady(MinNoiseIntervals-1, 1).build()
	worse := steady(MinNoiseIntervals-1, 2)
	worse.slow = func(int) float64 { return 1.5 }
	c, err := Compare(base, worse.build(), allow)
	if err != nil {
		t.Fatal(err)
	}
	ch := c.Checks[0]
	if !ch.Regressed || ch.CI != nil || !strings.Contains(ch.Noise, "fewer than 10") {
		t.Errorf("check %+v: want a regression by the point change, noise not assessed", ch)
	}
	var b bytes.Buffer
	c.WriteText(&b)
	if !strings.Contains(b.String(), "n/a") || !strings.Contains(b.String(), "the change alone decides") {
		t.Errorf("table does not say the noise was not assessed:\n%s", b.String())
	}
}

func TestComparisonJSON(t *testing.T) {
	allow, _ := slo.ParseAllowances("p(99)+10%,error_rate+0.1pp")
	failing := steady(20, 2)
	failing.failShare = map[string]float64{"timeout": 0.05}
	c, err := Compare(steady(20, 1).build(), failing.build(), allow, Resamples(100))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := c.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Schema    string `json:"schema"`
		Regressed bool   `json:"regressed"`
		Resamples int    `json:"resamples"`
		Checks    []struct {
			Request, Allowance, Unit, Change, Noise string
			Baseline, Delta                         *float64
			CI                                      *struct{ Low, High *float64 } `json:"ci_95"`
			Regressed                               bool
		} `json:"checks"`
	}
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if got.Schema != CompareSchema || !got.Regressed || got.Resamples != 100 || len(got.Checks) != 4 {
		t.Fatalf("%+v", got)
	}
	errAll, errAPI := got.Checks[1], got.Checks[3]
	if errAll.Allowance != "error_rate+0.1pp" || errAll.Unit != "pp" || !errAll.Regressed || errAll.CI == nil || *errAll.CI.Low <= 0.1 {
		t.Errorf("overall error rate check %+v", errAll)
	}
	if errAPI.Request != "api" || errAPI.CI != nil || errAPI.Noise == "" {
		t.Errorf("a single request's error rate has no per-second failures: %+v", errAPI)
	}
}

// BenchmarkCompareOneHour compares two one-hour runs of three request
// names with four allowances (every check's bootstrap included).
func BenchmarkCompareOneHour(b *testing.B) {
	allow, _ := slo.ParseAllowances("p(99)+10%,avg+5%,rps-5%,error_rate+0.1pp")
	base := oneHour()
	s := synth{seconds: 3600, period: 600, names: []string{"checkout", "home", "search"}, rps: []float64{50, 200, 100},
		medianMs: []float64{36, 4, 12}, sigma: 0.5, seed: 7200}
	run := s.build()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compare(base, run, allow); err != nil {
			b.Fatal(err)
		}
	}
}
