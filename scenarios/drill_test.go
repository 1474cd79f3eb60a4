package scenarios

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDrillExample(t *testing.T) {
	d, err := LoadDrill("examples/presale-drill.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if d.DrillID != "presale-2026-11" || d.Replay != filepath.Join("examples", "shop-traffic.jsonl") || len(d.Stages) != 3 {
		t.Fatalf("drill %+v", d)
	}
	if d.Duration() != 80*time.Second || d.StageAt(0) != 0 || d.StageAt(25*time.Second) != 1 || d.StageAt(80*time.Second) != 3 {
		t.Errorf("duration %v, stage at 25 s %d", d.Duration(), d.StageAt(25*time.Second))
	}
	g := d.Guard
	if g.Breaches != 3 || len(g.Rules) != 4 || g.Rules[2].Max != 0.3 || g.Rules[2].Breaches != 2 || !math.IsNaN(g.Rules[2].Min) ||
		g.SignalLoss != 10*time.Second || g.HotSwitchListen != "127.0.0.1:7071" {
		t.Errorf("guard %+v", g)
	}
	if d.Window == nil || d.Window.Start.UTC().Hour() != 17 || len(d.Services) != 4 || d.Services[0].Current != 2 {
		t.Errorf("window %+v services %+v", d.Window, d.Services)
	}
	if d.Capacity.PeakQPS != 5000 || d.Capacity.Headroom != 0.3 || d.Isolation == nil || d.Isolation.IDOffset != 1e12 {
		t.Errorf("capacity %+v isolation %+v", d.Capacity, d.Isolation)
	}
	// The repository's safety rule: examples aim at loopback only.
	urls := []string{d.Target, g.Prometheus}
	for _, r := range g.Rules {
		urls = append(urls, r.Health)
	}
	for _, s := range d.Services {
		urls = append(urls, s.Metrics)
	}
	for _, u := range append(urls, "http://"+g.HotSwitchListen) {
		if u != "http://" && u != "" && !strings.HasPrefix(u, "http://127.0.0.1:") {
			t.Errorf("%s is not on loopback", u)
		}
	}
	// Stages as one workload at a recorded peak of 62/s: ramps and holds.
	w := d.Workload(62)
	want := []RateStage{{62, 5 * time.Second}, {62, 15 * time.Second}, {124, 5 * time.Second}, {124, 15 * time.Second},
		{496, 10 * time.Second}, {496, 30 * time.Second}}
	if len(w.RateStages) != len(want) || w.Duration() != d.Duration() || w.MaxVUs != 2000 {
		t.Fatalf("workload %+v", w)
	}
	for i := range want {
		if w.RateStages[i] != want[i] {
			t.Errorf("stage %d = %+v, want %+v", i, w.RateStages[i], want[i])
		}
	}
}

func TestDrillStepStage(t *testing.T) {
	d, err := ParseDrill("d.yaml", []byte(`drill_id: d
target: http://127.0.0.1:1
traffic: {scenario: s.yaml}
stages: [{rate: 100, hold: 2s}, {rate: 300, hold: 1s}]
`))
	if err != nil {
		t.Fatal(err)
	}
	w := d.Workload(0)
	want := []RateStage{{100, 0}, {100, 2 * time.Second}, {300, 0}, {300, time.Second}}
	for i := range want {
		if i >= len(w.RateStages) || w.RateStages[i] != want[i] {
			t.Fatalf("workload %+v, want %+v (a stage without ramp steps at once)", w.RateStages, want)
		}
	}
}

func TestDrillErrors(t *testing.T) {
	src := `drill_id: "bad id"
target: ftp://x
traffic: {replay: t.jsonl, scenario: s.yaml}
stages:
  - {name: a, rate: 10, multiplier: 2, hold: 1s}
  - {name: a, rate: -1, ramp: 1s}
maxVUs: 0
guard:
  every: 1ms
  rules:
    - {promql: 'up'}
    - {drill: "p99<1", health: "http://127.0.0.1:1/"}
    - {drill: "error>1%", on_no_data: ignore}
    - {promql: 'up', max: 1, on_no_data: skip}
  signal_loss: {action: pray}
window: {start: "2026-11-02T00:00:00", end: "2026-11-01T00:00:00"}
services:
  gateway: {current: -1}
capacity: {headroom: 200%}
isolation: {tables: []}
extra: 1
`
	_, err := ParseDrill("d.yaml", []byte(src))
	if err == nil {
		t.Fatal("parsed")
	}
	msg := err.Error()
	for _, w := range []string{
		`d.yaml:1:11: drill_id: "bad id" is not a valid drill id`,
		`d.yaml:2:9: target: "ftp://x" is not an absolute http(s) URL`,
		"d.yaml:3:10: traffic: needs exactly one of replay:",
		"d.yaml:5:5: stages[0]: needs exactly one of rate:",
		`d.yaml:6:12: stages[1].name: duplicate stage name "a"`,
		"d.yaml:6:21: stages[1].rate: must be more than 0",
		"d.yaml:6:5: stages[1].hold: is required",
		"d.yaml:7:9: maxVUs: must be between 1 and 1000000",
		"d.yaml:9:10: guard.every: must be between 100ms and 1m",
		"guard.prometheus: is required: rule \"rule-1\" queries Prometheus",
		"d.yaml:11:7: guard.rules[0].max: is required with promql:",
		"d.yaml:12:7: guard.rules[1]: needs exactly one of drill:",
		`guard.rules[1].drill: slo clause "p99<1": unknown aggregation "p99": use p(N)`,
		`d.yaml:13:15: guard.rules[2].drill: slo clause "error>1%": an error SLO is an upper limit`,
		`d.yaml:13:39: guard.rules[2].on_no_data: applies to promql: rules`,
		`d.yaml:14:42: guard.rules[3].on_no_data: unknown value "skip": stop`,
		`d.yaml:15:25: guard.signal_loss.action: unknown action "pray"`,
		"d.yaml:16:1: window: ends (2026-11-01T00:00:00Z) before it starts",
		"d.yaml:18:3: services.gateway.metrics: is required",
		"services.gateway.current: must be between 0 and 100000, got -1",
		"capacity.peak_qps: is required",
		"capacity.headroom:",
		"isolation.dsn: is required",
		"isolation.tables: must be a non-empty list",
		`d.yaml:21:1: extra: unknown key`,
	} {
		if !strings.Contains(msg, w) {
			t.Errorf("missing %q", w)
		}
	}
	if t.Failed() {
		t.Log(msg)
	}
}

func FuzzParseDrill(f *testing.F) {
	for _, p := range []string{"examples/presale-drill.yaml"} {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("drill_id: d\ntarget: http://127.0.0.1:1\ntraffic: {scenario: s.yaml}\nstages: [{rate: 1, hold: 1s}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseDrill("examples/fuzz-drill.yaml", data)
		if err != nil {
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("error %v is not Errors", err)
			}
			return
		}
		if d == nil || d.DrillID == "" || len(d.Stages) == 0 {
			t.Fatalf("accepted an incomplete drill: %+v", d)
		}
		d.Workload(10)
	})
}
