package verify

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/loadcap/loadcap/capacity"
	"github.com/loadcap/loadcap/internal/demo/shop"
	"github.com/loadcap/loadcap/scenarios"
	"github.com/loadcap/loadcap/scenarios/slo"
	"github.com/loadcap/loadcap/test/israce"
	"github.com/loadcap/loadcap/test/quiet"
)

// shopUnderTest starts the reference shop with the product service at 200
// req/s per replica (2 workers × 10 ms) and the gateway at 1000, one
// replica each, new replicas ready after 300 ms; it returns the shop, its
// scaler and a metrics source per service.
func shopUnderTest(t *testing.T) (*shop.Shop, *HTTPScaler, []capacity.MetricsSource) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := shop.Start(ctx, shop.Config{Dir: t.TempDir(), ReplicaStartup: 300 * time.Millisecond,
		Capacity: map[string]shop.Capacity{
			shop.Gateway: {Workers: 4, ServiceTime: 4 * time.Millisecond},
			shop.Product: {Workers: 2, ServiceTime: 10 * time.Millisecond},
		}})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); cancel() })
	sc := &HTTPScaler{URLs: map[string]string{}}
	var srcs []capacity.MetricsSource
	for _, name := range []string{shop.Gateway, shop.Product} {
		ep, _ := s.Endpoint(name)
		sc.URLs[name] = strings.TrimSuffix(ep.MetricsURL, "/metrics") + "/admin/replicas"
		srcs = append(srcs, capacity.MetricsSource{Name: name, URL: ep.MetricsURL})
	}
	return s, sc, srcs
}

func productPlan(productCap float64, productReplicas, gatewayReplicas int) *capacity.PlanResult {
	return &capacity.PlanResult{Plan: "shop.yaml", EntryQPS: 300, Headroom: 0.3, Services: []capacity.ServicePlan{
		{Name: shop.Gateway, CapacityQPS: 1000, Fanout: 1, Current: 1, Replicas: gatewayReplicas},
		{Name: shop.Product, CapacityQPS: productCap, Fanout: 1, Current: 1, Replicas: productReplicas},
	}}
}

// A plan that holds: 300 req/s of product views on 4 product replicas of
// 200 req/s (n+1 over the 3 the 30% headroom needs) and 2 gateways. verify
// scales the shop to it, measures every service near its prediction,
// holds 10% above the peak and with one replica of each taken away, names
// product as the bottleneck, and leaves the shop at the plan.
func TestVerifyHoldsAPlan(t *testing.T) {
	if israce.Enabled {
		t.Skip("measures capacity: under the race detector it would measure the detector")
	}
	s, sc, srcs := shopUnderTest(t)
	objective, _ := slo.Parse("p(99)<100ms,error<1%")
	quiet.Retry(t, 3, func(a *quiet.A) {
		var progress bytes.Buffer
		res, err := Run(context.Background(), Config{
			Plan: productPlan(200, 4, 2), Scaler: sc, Margin: 0.1, Redundancy: true, Progress: &progress,
			Load: capacity.FindConfig{Base: quickFile(t, s.URL()+"/api/products/1"), SLO: objective,
				Warmup: time.Second, Window: 2 * time.Second, Metrics: srcs},
		})
		if err != nil {
			t.Fatalf("%v\n%s", err, progress.String())
		}
		var table bytes.Buffer
		res.WriteTable(&table)
		t.Logf("\n%s%s", progress.String(), table.String())
		if !res.Held || len(res.Checks) != 3 {
			a.Errorf("held %v with %d checks, want 3 checks held", res.Held, len(res.Checks))
		}
		if res.PredictedBottleneck != shop.Product || res.MeasuredBottleneck != shop.Product {
			a.Errorf("bottleneck planned %q, measured %q; want product", res.PredictedBottleneck, res.MeasuredBottleneck)
		}
		for _, c := range res.Checks {
			for _, sv := range c.Services {
				if sv.Error != "" || sv.MeasuredQPS < 0.9*sv.PredictedQPS || sv.MeasuredQPS > 1.1*sv.PredictedQPS {
					a.Errorf("%s/%s: measured %.1f/s, predicted %.1f/s (%s)", c.Name, sv.Name, sv.MeasuredQPS, sv.PredictedQPS, sv.Error)
				}
			}
		}
		if rc := res.Checks[2].Services[1]; rc.Replicas != 3 || rc.Utilization < 0.35 || rc.Utilization > 0.65 {
			a.Errorf("redundancy: product on %d replicas at %.0f%%, want 3 at about 50%%", rc.Replicas, 100*rc.Utilization)
		}
	})
	for name, want := range map[string]int{shop.Product: 4, shop.Gateway: 2} {
		if n, err := sc.Ready(context.Background(), name); err != nil || n != want {
			t.Errorf("%s left at %d replicas (%v), want the plan's %d", name, n, err, want)
		}
	}
}

// A plan built on a wrong capacity (product at 400 req/s per replica, so
// one replica "holds" 300 req/s) does not hold: the product service runs
// past its capacity and the check says so.
func TestVerifyCatchesAWrongPlan(t *testing.T) {
	if israce.Enabled {
		t.Skip("measures capacity: under the race detector it would measure the detector")
	}
	s, sc, srcs := shopUnderTest(t)
	objective, _ := slo.Parse("p(99)<100ms,error<1%")
	res, err := Run(context.Background(), Config{
		Plan: productPlan(400, 1, 1), Scaler: sc,
		Load: capacity.FindConfig{Base: quickFile(t, s.URL()+"/api/products/1"), SLO: objective,
			Warmup: time.Second, Window: 2 * time.Second, Metrics: srcs},
	})
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	res.WriteTable(&table)
	if res.Held || !strings.Contains(table.String(), "plan NOT verified") {
		t.Errorf("a plan 50%% over the product's capacity held:\n%s", table.String())
	}
	if p := res.Checks[0].Services[1]; p.PredictedUtil > 1 || p.Utilization < 0.9 {
		t.Errorf("product: predicted %.0f%%, measured %.0f%%; want under 100%% predicted, about 100%% measured", 100*p.PredictedUtil, 100*p.Utilization)
	}
}

func quickFile(t *testing.T, url string) *scenarios.File {
	t.Helper()
	f, err := scenarios.Quick(scenarios.QuickOptions{URL: url, RatePerSec: 1, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return f
}
