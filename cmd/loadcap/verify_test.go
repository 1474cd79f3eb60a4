package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loadcap/loadcap/internal/demo/shop"
	"github.com/loadcap/loadcap/test/israce"
	"github.com/loadcap/loadcap/test/quiet"
)

// capacity verify from the command line: a plan written for the shop is
// verified on it (exit 0, the table, verify.json); the same plan with the
// product's capacity overstated is not (99).
func TestCapacityVerify(t *testing.T) {
	if israce.Enabled {
		t.Skip("measures capacity: under the race detector it would measure the detector")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := shop.Start(ctx, shop.Config{Dir: t.TempDir(), ReplicaStartup: 200 * time.Millisecond,
		Capacity: map[string]shop.Capacity{
			shop.Gateway: {Workers: 4, ServiceTime: 4 * time.Millisecond},
			shop.Product: {Workers: 2, ServiceTime: 10 * time.Millisecond},
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	dir := t.TempDir()
	args := []string{"--url", s.URL() + "/api/products/1", "--slo", "p(99)<100ms,error<1%", "--scaler", "shop",
		"--warmup", "1s", "--window", "2s", "--margin", "0"}
	for _, name := range []string{shop.Gateway, shop.Product} {
		ep, _ := s.Endpoint(name)
		args = append(args, "--metrics", name+"="+ep.MetricsURL)
	}
	plan := func(productCap int) string {
		f := filepath.Join(dir, "plan.yaml")
		os.WriteFile(f, []byte(`peak: {entry_qps: 300}
headroom: 30%
redundancy: n+1
services:
  gateway: {capacity: 1000, current: 1}
  product: {capacity: `+strconv.Itoa(productCap)+`, current: 1}
`), 0o644)
		return f
	}
	out := filepath.Join(dir, "verify.json")
	// A busy machine can hold the generator back (dropped arrivals):
	// such an attempt is repeated.
	quiet.Retry(t, 3, func(a *quiet.A) {
		r := loadcap(t, nil, false, append([]string{"capacity", "verify", plan(200), "--out", out}, args...)...)
		if r.code != 0 || !strings.Contains(r.stdout, "plan verified") || !strings.Contains(r.stdout, "bottleneck: planned product, measured product") {
			a.Errorf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			return
		}
		var doc struct {
			Schema string
			Held   bool
			Checks []struct{ Name string }
		}
		b, _ := os.ReadFile(out)
		if err := json.Unmarshal(b, &doc); err != nil || doc.Schema != "loadcap.verify/v1" || !doc.Held || len(doc.Checks) != 2 {
			a.Errorf("verify.json: %v %+v", err, doc)
		}
	})
	// Overstated: 600/s per product replica needs 1 (+1) replicas; 2
	// real ones hold 400/s, one (the redundancy check) 200/s.
	r := loadcap(t, nil, false, append([]string{"capacity", "verify", plan(600)}, args...)...)
	if r.code != 99 || !strings.Contains(r.stdout, "plan NOT verified") {
		t.Errorf("overstated plan: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = loadcap(t, nil, false, "capacity", "verify", plan(200), "--url", s.URL()+"/", "--scaler", "shop")
	if r.code != 2 || !strings.Contains(r.stderr, `no metrics for the plan's service "gateway"`) {
		t.Errorf("no metrics: exit %d\n%s", r.code, r.stderr)
	}
}
