package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loadcap/loadcap/capacity"
	"github.com/loadcap/loadcap/capacity/autoscale"
	"github.com/loadcap/loadcap/capacity/verify"
	"github.com/loadcap/loadcap/internal/demo/shop"
)

// capacity watch, live, against what capacity simulate predicts: the
// reference shop's product service (200 req/s per replica, new replicas
// ready after 2 s) behind Debian's Prometheus scraping it every second
// (so the metric the loop reads is up to a second old);
// traffic at 60 req/s for 10 s, then a jump to 420 req/s for 30 s. The
// watch loop reads the product's rate from Prometheus every 3 s and
// scales the shop; simulate replays the same algorithm over the same
// traffic. At every second the live desired replicas are within one
// replica of the simulated ones, give or take one sync period; and the
// live loop ends at the replicas the simulation ends at.
func TestWatchMatchesSimulate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := shop.Start(ctx, shop.Config{Dir: t.TempDir(), ReplicaStartup: 2 * time.Second,
		Capacity: map[string]shop.Capacity{shop.Product: {Workers: 2, ServiceTime: 10 * time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	prom := startProm(t, s)
	ep, _ := s.Endpoint(shop.Product)
	plan := &capacity.PlanResult{Plan: "watch.yaml", EntryQPS: 420, Headroom: 0.3, Services: []capacity.ServicePlan{{
		Name: shop.Product, CapacityQPS: 200, SafeQPSPerReplica: 140, Fanout: 1, Current: 1, Replicas: 4, MaxReplicas: 10,
		Metric: "rps", Deployment: "product"}}}
	const sync = 3 * time.Second
	const window = 5 * time.Second
	// 10 s of baseline fill the rate window twice; 30 s of sale cover the
	// climb to 4 replicas (three decisions, each a sync period and a
	// start-up apart) with as long again to hold there.
	const seconds = 40
	const total = seconds * time.Second
	load, err := verify.NewPromLoad(prom.url, fmt.Sprintf(`sum(rate(shop_requests_total{service="{{service}}"}[%v]))`, window))
	if err != nil {
		t.Fatal(err)
	}
	scaler := &verify.HTTPScaler{URLs: map[string]string{shop.Product: strings.TrimSuffix(ep.MetricsURL, "/metrics") + "/admin/replicas"}}

	scen := filepath.Join(t.TempDir(), "jump.yaml")
	os.WriteFile(scen, fmt.Appendf(nil, `target: %s
scenarios:
  before: {executor: constant-arrival-rate, rate: 60, duration: 10s, preAllocatedVUs: 20, maxVUs: 400}
  sale:   {executor: constant-arrival-rate, rate: 420, duration: 30s, startTime: 10s, preAllocatedVUs: 50, maxVUs: 400}
requests:
  - {name: product, path: /api/products/1}
`, s.URL()), 0o644)

	var log bytes.Buffer
	out := filepath.Join(t.TempDir(), "run.json")
	gen := start(t, "run", "-q", "--no-summary", scen, "--out", out)
	live, err := verify.Watch(ctx, verify.WatchConfig{Plan: plan, Load: load, Scaler: scaler, Sync: sync, Duration: total, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	gen.wait(t, 30*time.Second)
	t.Logf("live:\n%s", log.String())
	// The traffic's own time zero, from its result: the live loop's
	// decisions are placed on the same clock as the simulation's.
	started, err := time.Parse(time.RFC3339Nano, readRun(t, out).Started)
	if err != nil {
		t.Fatal(err)
	}

	// The simulation of the same: the plan's HPA from one replica, the
	// same sync, rate window and start-up, over the traffic the run sent.
	hpa, err := autoscale.FromManifest(capacity.HPA(plan, &plan.Services[0]))
	if err != nil {
		t.Fatal(err)
	}
	hpa.Min, hpa.Sync = 1, sync
	tr := autoscale.Traffic{Start: started}
	for i := 0; i < seconds; i++ {
		tr.RPS = append(tr.RPS, map[bool]float64{true: 60, false: 420}[i < 10])
	}
	// The live metric's newest second is up to a scrape interval old when
	// read: the simulation reads it as late (without that, a decision on
	// the edge of the HPA's tolerance came a sync period early, and every
	// later one with it).
	sim, err := autoscale.Run(autoscale.Service{Name: shop.Product, CapacityQPS: 200, Fanout: 1, Current: 1, HPA: hpa,
		Startup: 2 * time.Second, MetricWindow: window, MetricDelay: time.Second}, tr)
	if err != nil {
		t.Fatal(err)
	}
	var simLog []string
	for _, d := range sim.Decisions {
		simLog = append(simLog, fmt.Sprintf("%v: %d → %d", d.At.Sub(started).Round(time.Second), d.From, d.To))
	}
	t.Logf("simulated: %s", strings.Join(simLog, ", "))

	// The live desired replicas, second by second (a decision counts from
	// the second it is nearest to).
	liveAt := make([]int, seconds)
	for i := range liveAt {
		liveAt[i] = 1
		for _, d := range live {
			if d.At.Sub(started).Round(time.Second) <= time.Duration(i)*time.Second {
				liveAt[i] = d.To
			}
		}
	}
	slack := int(sync / time.Second)
	for i, n := range liveAt {
		ok := false
		for j := max(0, i-slack); j <= min(seconds-1, i+slack); j++ {
			if d := n - sim.Desired[j]; d >= -1 && d <= 1 {
				ok = true
			}
		}
		if !ok {
			t.Errorf("at %d s the live loop asked for %d replicas; the simulation %d (within %d s: %v)",
				i, n, sim.Desired[i], slack, sim.Desired[max(0, i-slack):min(seconds, i+slack+1)])
		}
	}
	if len(live) == 0 || live[len(live)-1].To < 3 {
		t.Errorf("the live loop did not scale product up for the jump: %+v", live)
	}
	if got, _ := scaler.Ready(ctx, shop.Product); got < 3 {
		t.Errorf("the shop's product runs %d replicas after the jump", got)
	}
}
