package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loadcap/loadcap/internal/demo/shop"
	"github.com/loadcap/loadcap/test/israce"
)

// capacity verify driven by a drill plan: each check is a stage of the
// drill (its recording replayed at the plan's peak, tagged, guarded, its
// services' metrics); the plan holds on the shop and the shop served the
// drill's traffic tagged.
func TestCapacityVerifyDrill(t *testing.T) {
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
	recording, err := filepath.Abs("../../scenarios/examples/shop-traffic.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	gw, _ := s.Endpoint(shop.Gateway)
	pr, _ := s.Endpoint(shop.Product)
	drillFile := func(services string) string {
		return writeFile(t, "drill.yaml", fmt.Sprintf(`drill_id: verify-drill
target: %s
traffic: {replay: %q}
stages:
  - {name: placeholder, multiplier: 1, ramp: 1s, hold: 1s}
guard:
  rules:
    - {name: drill-latency, drill: "p(99)<250ms"}
    - {name: drill-errors, drill: "error<5%%"}
services:
%s`, s.URL(), recording, services))
	}
	both := drillFile(fmt.Sprintf("  gateway: {metrics: %q}\n  product: {metrics: %q}\n", gw.MetricsURL, pr.MetricsURL))
	plan := writeFile(t, "plan.yaml", `peak: {entry_qps: 200}
headroom: 30%
redundancy: n+1
services:
  gateway: {capacity: 1000, current: 1}
  product: {capacity: 200, current: 1}
`)
	out := filepath.Join(t.TempDir(), "verify.json")
	r := loadcap(t, nil, false, "capacity", "verify", plan, "--drill", both, "--scaler", "shop",
		"--warmup", "1s", "--window", "2s", "--margin", "0", "--out", out)
	if r.code != 0 || !strings.Contains(r.stdout, "plan verified") {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	var doc struct {
		SLO    string
		Held   bool
		Checks []struct {
			Name     string
			EntryQPS float64 `json:"entry_qps"`
			Step     struct{ Achieved float64 }
			Services []struct {
				Name     string
				Replicas int
			}
		}
	}
	b, _ := os.ReadFile(out)
	if err := json.Unmarshal(b, &doc); err != nil || !doc.Held || len(doc.Checks) != 2 || doc.SLO != "p(99)<250ms,error<5%" {
		t.Fatalf("verify.json: %v %+v", err, doc)
	}
	if c := doc.Checks[0]; c.Name != "peak" || c.EntryQPS != 200 || c.Step.Achieved < 180 {
		t.Errorf("peak check %+v: want the drill's replay driven at the plan's 200 req/s", c)
	}
	// product: 200 req/s at 140 per replica is 2, plus one: 3; 2 in the
	// redundancy check.
	for i, want := range []int{3, 2} {
		for _, sv := range doc.Checks[i].Services {
			if sv.Name == shop.Product && sv.Replicas != want {
				t.Errorf("check %s: product on %d replicas, want %d", doc.Checks[i].Name, sv.Replicas, want)
			}
		}
	}
	// Two checks, each a 1 s ramp to 200 req/s and a 2 s hold: 500 each.
	if n := taggedAt(t, gw.MetricsURL); n < 0.9*1000 {
		t.Errorf("the gateway served %v tagged requests; want the drill's traffic tagged", n)
	}

}

// A drill that does not measure a service the plan scales is refused
// with exit 104, naming the drill file, line and services field; a missing
// drill file with 104; the flags the drill replaces with 2. Nothing is
// sent: the checks come before any load.
func TestCapacityVerifyDrillRefused(t *testing.T) {
	recording, err := filepath.Abs("../../scenarios/examples/shop-traffic.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	drillFile := func(services string) string {
		return writeFile(t, "drill.yaml", fmt.Sprintf(`drill_id: verify-drill
target: http://127.0.0.1:9
traffic: {replay: %q}
stages:
  - {name: placeholder, multiplier: 1, ramp: 1s, hold: 1s}
services:
%s`, recording, services))
	}
	both := drillFile("  gateway: {metrics: \"http://127.0.0.1:9/metrics\"}\n  product: {metrics: \"http://127.0.0.1:9/metrics\"}\n")
	onlyGateway := drillFile("  gateway: {metrics: \"http://127.0.0.1:9/metrics\"}\n")
	plan := writeFile(t, "plan.yaml", `peak: {entry_qps: 200}
headroom: 30%
services:
  gateway: {capacity: 1000, current: 1}
  product: {capacity: 200, current: 1}
`)
	for _, c := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"a plan service the drill does not measure", []string{plan, "--drill", onlyGateway}, 104,
			[]string{onlyGateway + ":7:3: services: has no service \"product\"", plan}},
		{"no such drill file", []string{plan, "--drill", filepath.Join(t.TempDir(), "none.yaml")}, 104, []string{"none.yaml"}},
		{"--metrics with --drill", []string{plan, "--drill", both, "--metrics", "product=http://127.0.0.1:9/metrics"}, 2, []string{"--metrics with --drill"}},
		{"a scenario and a drill", []string{plan, recording, "--drill", both}, 2, []string{"not both"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := loadcap(t, nil, false, append([]string{"capacity", "verify", "--scaler", "shop"}, c.args...)...)
			if r.code != c.code {
				t.Errorf("exit %d, want %d\n%s", r.code, c.code, r.stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
		})
	}
}

// taggedAt is the tagged requests the service whose metrics are at url
// has served.
func taggedAt(t *testing.T, url string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	total := 0.0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "shop_requests_total{") && strings.Contains(l, `shadow="true"`) {
			var v float64
			fmt.Sscan(l[strings.LastIndex(l, " ")+1:], &v)
			total += v
		}
	}
	return total
}
