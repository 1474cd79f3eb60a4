package drill

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loadcap/loadcap/scenarios"
)

// A drill on agents ships its stages as a scenario file; parsed (as an
// agent parses it) it must be the scenario the drill runs locally: the
// same stages and rates, the same requests, the drill's tag, no
// thresholds.
func TestScenarioIsTheLocalScenario(t *testing.T) {
	dir := t.TempDir()
	recording, err := filepath.Abs("../../scenarios/examples/shop-traffic.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	scenario := filepath.Join(dir, "mix.yaml")
	if err := os.WriteFile(scenario, []byte(`target: http://127.0.0.1:1
drill_id: its-own-tag
scenarios:
  s: {executor: constant-arrival-rate, rate: 5, duration: 1s, preAllocatedVUs: 1}
requests:
  - {name: home, path: /}
  - {name: item, path: "/items/{{randInt 1 9}}", weight: 3}
thresholds:
  http_req_duration: ["p(99)<1"]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		traffic string
		stages  string
	}{
		{name: "replay, multipliers of the recorded peak", traffic: "{replay: " + recording + "}",
			stages: "  - {name: a, multiplier: 0.5, ramp: 1s, hold: 2s}\n  - {name: b, multiplier: 1.25, hold: 3s}\n"},
		{name: "scenario, absolute rates", traffic: "{scenario: " + scenario + "}",
			stages: "  - {name: a, rate: 10, hold: 2s}\n  - {name: b, rate: 40, ramp: 2s, hold: 1s}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			planPath := filepath.Join(dir, "drill.yaml")
			d, err := scenarios.ParseDrill(planPath, []byte("drill_id: drill-7\ntarget: http://127.0.0.1:2\ntraffic: "+tc.traffic+"\nstages:\n"+tc.stages))
			if err != nil {
				t.Fatal(err)
			}
			local, src, peak, err := Prepare(Config{Plan: d})
			if err != nil {
				t.Fatal(err)
			}
			if src != nil {
				defer src.Close()
			}
			path, source, err := Scenario(d, peak)
			if err != nil {
				t.Fatal(err)
			}
			if filepath.Dir(path) != filepath.Dir(map[bool]string{true: recording, false: scenario}[d.Replay != ""]) {
				t.Errorf("path %s: not beside the file it was made from", path)
			}
			if _, err := os.Stat(path); err == nil {
				t.Errorf("%s was written", path)
			}
			f, err := scenarios.Parse(path, source)
			if err != nil {
				t.Fatalf("%v\n%s", err, source)
			}
			if f.DrillID != "drill-7" || f.Target != "http://127.0.0.1:2" || len(f.Thresholds) != 0 || len(f.Scenarios) != 1 {
				t.Errorf("drill %q, target %q, %d thresholds, %d scenarios; want drill-7 at http://127.0.0.1:2, none, 1\n%s",
					f.DrillID, f.Target, len(f.Thresholds), len(f.Scenarios), source)
			}
			want, got := local.Scenarios[0].Workload, f.Scenarios[0].Workload
			if len(got.RateStages) != len(want.RateStages) || got.MaxVUs != want.MaxVUs || got.PreAllocatedVUs != want.PreAllocatedVUs ||
				got.GracefulStop != want.GracefulStop || got.Model != want.Model {
				t.Fatalf("workload %+v, want %+v\n%s", got, want, source)
			}
			for i, st := range got.RateStages {
				if w := want.RateStages[i]; st.Duration != w.Duration || math.Abs(st.TargetPerSec-w.TargetPerSec) > 0.001 {
					t.Errorf("stage %d: %v at %.3f/s, want %v at %.3f/s", i, st.Duration, st.TargetPerSec, w.Duration, w.TargetPerSec)
				}
			}
			if d.Replay != "" {
				if f.Replay == nil || f.Replay.File != recording || f.Replay.Mode != scenarios.ReplayRate || f.Replay.MaxVUs != local.Replay.MaxVUs {
					t.Errorf("replay %+v, want %+v", f.Replay, local.Replay)
				}
				return
			}
			var names []string
			for _, r := range f.Requests {
				names = append(names, r.Name)
			}
			if strings.Join(names, ",") != "home,item" {
				t.Errorf("requests %v, want the scenario's home, item", names)
			}
			if !strings.Contains(string(source), "drill_id: drill-7") || strings.Contains(string(source), "its-own-tag") {
				t.Errorf("the scenario's own tag was not replaced:\n%s", source)
			}
		})
	}
}
