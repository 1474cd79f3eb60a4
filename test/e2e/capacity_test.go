package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loadcap/loadcap/internal/demo/shop"
)

// measuredService is one entry of a drill's services.json.
type measuredService struct {
	Name          string  `json:"name"`
	CapacityQPS   float64 `json:"capacity_qps"`
	PerReplicaQPS float64 `json:"per_replica_qps"`
	Saturated     bool    `json:"saturated"`
	Method        string  `json:"method"`
	Stage         string  `json:"stage"`
	Requests      float64 `json:"requests"`
}

// readServices reads services.json from a drill's --out-dir.
func readServices(t *testing.T, out string) map[string]measuredService {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(out, "services.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Services []measuredService }
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("services.json: %v\n%s", err, b)
	}
	m := map[string]measuredService{}
	for _, s := range doc.Services {
		m[s.Name] = s
	}
	return m
}

// The capacity a drill finds for each shop service agrees within ±10% with
// its configured capacity (workers / service time), read from the
// services' own /metrics: the weak product service where the last stage
// saturates it, every other one by the utilization law from the stages
// before. The capacities differ from one another by more than 20%, so a
// figure read from the wrong service cannot pass.
func TestDrillMeasuresEveryServiceCapacity(t *testing.T) {
	caps := map[string]shop.Capacity{
		shop.Gateway: {Workers: 4, ServiceTime: 4 * time.Millisecond},  // 1000 req/s
		shop.Product: {Workers: 2, ServiceTime: 10 * time.Millisecond}, // 200 req/s: saturates at 5x
		shop.Cart:    {Workers: 2, ServiceTime: 5 * time.Millisecond},  // 400 req/s
		shop.Order:   {Workers: 1, ServiceTime: 10 * time.Millisecond}, // 100 req/s
		shop.Payment: {Workers: 1, ServiceTime: 8 * time.Millisecond},  // 125 req/s
		shop.User:    {Workers: 1, ServiceTime: 4 * time.Millisecond},  // 250 req/s
	}
	s := drillShopE2E(t, caps)
	recording, err := filepath.Abs("../../scenarios/examples/shop-traffic.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	names := []string{shop.Gateway, shop.Product, shop.Cart, shop.Order, shop.Payment, shop.User}
	var svc strings.Builder
	for _, name := range names {
		ep, _ := s.Endpoint(name)
		fmt.Fprintf(&svc, "  %s: {metrics: %q, current: 1}\n", name, ep.MetricsURL)
	}
	out := t.TempDir()
	plan := filepath.Join(t.TempDir(), "drill.yaml")
	if err := os.WriteFile(plan, fmt.Appendf(nil, `drill_id: e2e-capacity
target: %s
traffic: {replay: %q}
stages:
  - {name: warm,   multiplier: 1, ramp: 1s, hold: 8s}
  - {name: double, multiplier: 2, ramp: 1s, hold: 8s}
  - {name: peak,   multiplier: 5, ramp: 2s, hold: 10s}
maxVUs: 1000
guard:
  rules:
    - {name: drill-latency, drill: "p(99)<250ms"}
    - {name: drill-errors, drill: "error<5%%"}
services:
%sisolation: {dsn: %q, tables: [orders, payments], id_offset: %d, audit: true}
`, s.URL(), recording, svc.String(), s.DSN(), s.IDOffset()), 0o644); err != nil {
		t.Fatal(err)
	}
	p := start(t, "drill", plan, "--out-dir", out, "-q")
	// The guard stops the peak (105) once the product service saturates;
	// on a slow machine it may only fail its SLO (99).
	if code := p.wait(t, 90*time.Second); code != 105 && code != 99 {
		t.Fatalf("exit %d, want 105 (the guard stopped the peak) or 99\n%s\n%s", code, p.stdout.String(), p.stderr.String())
	}
	got := readServices(t, out)
	for _, name := range names {
		m, ok := got[name]
		want := caps[name].PerSec()
		switch {
		case !ok:
			t.Errorf("%s: not in services.json", name)
		case m.PerReplicaQPS < 0.9*want || m.PerReplicaQPS > 1.1*want:
			t.Errorf("%s: measured %.1f req/s per replica by %s (stage %s, %.0f requests), configured %.0f: off by more than 10%%",
				name, m.PerReplicaQPS, m.Method, m.Stage, m.Requests, want)
		case name == shop.Product && (m.Method != "saturated" || !m.Saturated):
			t.Errorf("product: method %q, saturated %v; want the bottleneck, measured where it saturated", m.Method, m.Saturated)
		case name != shop.Product && m.Method != "utilization":
			t.Errorf("%s: method %q, want utilization (the law, from its busy time)", name, m.Method)
		}
		t.Logf("%-8s configured %6.1f req/s, measured %6.1f (%+.1f%%) by %s over %s, %.0f requests",
			name, want, m.PerReplicaQPS, 100*(m.PerReplicaQPS-want)/want, m.Method, m.Stage, m.Requests)
	}
	if !strings.Contains(p.stdout.String(), "ok: no leak") {
		t.Errorf("audit not clean:\n%s", p.stdout.String())
	}
}
