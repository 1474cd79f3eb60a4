package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loadcap/loadcap/test/shop/shop"
)

// drillShop starts the reference shop with a weak product service.
func drillShop(t *testing.T) *shop.Shop {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := shop.Start(ctx, shop.Config{Capacity: map[string]shop.Capacity{
		shop.Product: {Workers: 2, ServiceTime: 10 * time.Millisecond}, // 200 req/s
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); cancel() })
	return s
}

// drillPlan writes a drill plan against s's services.
func drillPlan(t *testing.T, s *shop.Shop, stages string, extra string) string {
	t.Helper()
	var svc strings.Builder
	for _, name := range []string{shop.Gateway, shop.Product, shop.Order} {
		e, _ := s.Endpoint(name)
		fmt.Fprintf(&svc, "  %s: {metrics: %q}\n", strings.ToLower(name), e.MetricsURL)
	}
	traffic, _ := filepath.Abs("../../scenarios/examples/shop-traffic.jsonl")
	tables, _ := s.Tables(context.Background())
	plan := fmt.Sprintf(`drill_id: drill-test
target: %s
traffic: {replay: %s}
stages:
%s
services:
%scapacity: {peak_qps: 500, redundancy: none, headroom: 0%%}
isolation: {dsn: %q, tables: [%s], id_offset: %d}
%s`, s.URL(), traffic, stages, svc.String(), s.DSN(), strings.Join(tables, ", "), s.IDOffset(), extra)
	return writeFile(t, "drill.yaml", plan)
}

func TestDrillDryRunSendsNothing(t *testing.T) {
	s := drillShop(t)
	plan := drillPlan(t, s, "  - {name: one, multiplier: 1, hold: 2s}", "window: {start: \"2026-11-01T01:00:00Z\", end: \"2026-11-01T05:00:00Z\"}\n")
	r := loadcap(t, nil, false, "drill", plan, "--dry-run", "--now", "2026-11-01T02:00:00Z")
	if r.code != 0 || !strings.Contains(r.stdout, "62.0 req/s (1x the recorded peak") || !strings.Contains(r.stdout, "isolation pre-flight: ok") {
		t.Fatalf("dry run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if n := s.Provider().Charges(); n != 0 {
		t.Errorf("a dry run reached the shop: %d charges", n)
	}
	if r := loadcap(t, nil, false, "drill", plan, "--dry-run", "--now", "2026-11-02T02:00:00Z"); r.code != 2 || !strings.Contains(r.stderr, "window") {
		t.Errorf("outside the window: exit %d, want 2\n%s", r.code, r.stderr)
	}
}

// Three stages up to 4x the recorded peak: the weak product service
// saturates in the last; every result file is written, the audit is clean.
func TestDrillMeasuresStages(t *testing.T) {
	if testing.Short() {
		t.Skip("a 12 s drill")
	}
	s := drillShop(t)
	plan := drillPlan(t, s, `  - {name: warm, multiplier: 1, ramp: 1s, hold: 3s}
  - {name: double, multiplier: 2, ramp: 1s, hold: 3s}
  - {name: quad, multiplier: 4, ramp: 1s, hold: 3s}`, "")
	out := t.TempDir()
	r := loadcap(t, nil, false, "drill", plan, "--out-dir", out, "-q")
	if r.code != 0 && r.code != 99 {
		t.Fatalf("drill: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, f := range []string{"run.json", "stages.json", "plan.json", "report.html", "hpa", "keda"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	if !strings.Contains(r.stdout, "ok: no leak") {
		t.Errorf("audit not clean:\n%s", r.stdout)
	}
	var stages struct {
		Steps []struct {
			Phase    string
			Achieved float64
			Services []struct {
				Name        string
				RequestRate float64 `json:"request_rate"`
			}
		}
	}
	b, _ := os.ReadFile(filepath.Join(out, "stages.json"))
	if err := json.Unmarshal(b, &stages); err != nil || len(stages.Steps) != 3 {
		t.Fatalf("stages.json: %v\n%s", err, b)
	}
	for i, want := range []float64{62, 124, 248} {
		if a := stages.Steps[i].Achieved; a < want*0.9 || a > want*1.1 {
			t.Errorf("stage %s achieved %.1f req/s, want ≈%.0f", stages.Steps[i].Phase, a, want)
		}
		if len(stages.Steps[i].Services) != 3 || stages.Steps[i].Services[0].RequestRate <= 0 {
			t.Errorf("stage %d services %+v", i, stages.Steps[i].Services)
		}
	}
	t.Log(r.stdout)
}
