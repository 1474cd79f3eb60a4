package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// capacity simulate on the example plan and forecast: the HPA alone falls
// behind the midnight jump, the KEDA cron pre-scale holds it (exit 0), and
// the timelines reach --out. A plan without a window has only the
// reactive HPA to stand on: the same jump fails it (99). A broken forecast
// is 104 with its file, line and field.
func TestCapacitySimulate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "sim.json")
	r := loadcap(t, nil, false, "capacity", "simulate", "../../scenarios/examples/presale-plan.yaml",
		"--traffic", "../../scenarios/examples/presale-forecast.csv", "--out", out)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"reactive (the plan's HPA, reacting from the current replicas): NOT HELD",
		"cart: over capacity for", "pre-scaled", "): held", "unscaled"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Schema string
		Cases  []struct {
			Name     string
			Services []struct {
				Service     string
				LoadQPS     []float64 `json:"load_qps"`
				Ready       []int
				OverSeconds int `json:"over_seconds"`
			}
		}
	}
	if err := json.Unmarshal(b, &doc); err != nil || doc.Schema != "loadcap.simulate/v1" || len(doc.Cases) != 3 {
		t.Fatalf("sim.json: %v, schema %q, %d cases", err, doc.Schema, len(doc.Cases))
	}
	for _, c := range doc.Cases {
		for _, s := range c.Services {
			if len(s.LoadQPS) == 0 || len(s.LoadQPS) != len(s.Ready) {
				t.Errorf("%s/%s: %d loads, %d ready counts", c.Name, s.Service, len(s.LoadQPS), len(s.Ready))
			}
			if (c.Name == "pre-scaled") != (s.OverSeconds == 0) {
				t.Errorf("%s/%s: over capacity %d s", c.Name, s.Service, s.OverSeconds)
			}
		}
	}

	steady := filepath.Join(dir, "steady.yaml")
	os.WriteFile(steady, []byte("peak: {entry_qps: 12000}\nheadroom: 0.3\nredundancy: none\nservices:\n  api: {capacity: 900, current: 2}\n"), 0o644)
	r = loadcap(t, nil, false, "capacity", "simulate", steady, "--traffic", "../../scenarios/examples/presale-forecast.csv")
	if r.code != 99 || !strings.Contains(r.stderr, "reactive case does not hold") {
		t.Errorf("no window, reactive only: exit %d, want 99\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("time,rps\n0,100\n60,lots\n"), 0o644)
	r = loadcap(t, nil, false, "capacity", "simulate", steady, "--traffic", bad)
	if r.code != 104 || !strings.Contains(r.stderr, bad+":3") || !strings.Contains(r.stderr, "rps") {
		t.Errorf("bad forecast: exit %d\n%s", r.code, r.stderr)
	}
}
