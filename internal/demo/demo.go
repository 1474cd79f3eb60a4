// Package demo is what `loadcap demo` runs against: the reference shop
// started on loopback with deliberately uneven capacities, its bundled
// recording, and a guarded drill plan aimed at it.
package demo

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/loadcap/loadcap/internal/cli"
	"github.com/loadcap/loadcap/internal/demo/shop"
	"github.com/loadcap/loadcap/scenarios"
	"github.com/loadcap/loadcap/scenarios/examples"
)

// Capacities are the shop's services' capacities in the demo. The
// product service is deliberately weak: 2 workers x 10 ms = 200 req/s,
// which the last stage (5x the recording's peak, ~0.7 of the gateway's
// requests reaching it) overruns. The others are sized so that the
// recording's mix keeps each 5-30% busy at the peak stage: loaded, never
// saturated, so their capacities come from the utilization law.
var Capacities = map[string]shop.Capacity{
	shop.Gateway: shop.DefaultCapacity,                             // 8 x 2 ms = 4000 req/s
	shop.Product: {Workers: 2, ServiceTime: 10 * time.Millisecond}, // 200 req/s
	shop.Cart:    {Workers: 1, ServiceTime: 5 * time.Millisecond},  // 200 req/s
	shop.Order:   {Workers: 1, ServiceTime: 10 * time.Millisecond}, // 100 req/s
	shop.Payment: {Workers: 1, ServiceTime: 8 * time.Millisecond},  // 125 req/s
	shop.User:    {Workers: 2, ServiceTime: 8 * time.Millisecond},  // 250 req/s
}

// Services are the services the demo's drill measures, entry first.
var Services = []string{shop.Gateway, shop.Product, shop.Cart, shop.Order, shop.Payment, shop.User}

// Plan is the demo's drill; the placeholders are filled with the
// in-process shop's addresses.
const Plan = `# loadcap demo: a guarded pre-sale drill against the reference shop on loopback
drill_id: loadcap-demo
target: {{gateway}}
traffic: {replay: {{traffic}}}
stages:
{{stages}}maxVUs: 1000
guard:
  every: 1s
  breaches: 2
  rules:
    - {name: drill-latency, drill: "p(99)<250ms"}
    - {name: drill-errors, drill: "error<5%"}
    - {name: gateway-health, health: "{{gateway}}/healthz"}
services:
{{services}}{{capacity}}isolation: {dsn: "{{dsn}}", tables: [{{tables}}], id_offset: {{offset}}}
`

// stages are the demo drill's stages: five load levels before the peak,
// so that the USL fit over them has degrees of freedom left to say how
// sure it is.
const stages = `  - {name: warm-up, multiplier: 1, ramp: 2s, hold: 6s}
  - {name: x1.5,    multiplier: 1.5, ramp: 2s, hold: 6s}
  - {name: double,  multiplier: 2, ramp: 2s, hold: 6s}
  - {name: triple,  multiplier: 3, ramp: 2s, hold: 6s}
  - {name: x4,      multiplier: 4, ramp: 2s, hold: 6s}
  - {name: peak,    multiplier: 5, ramp: 2s, hold: 10s}
`

// ReplicaStartup is how long a new replica of a shop service takes to
// serve in the demo.
const ReplicaStartup = time.Second

// PeakQPS is the peak the demo plans replicas for: 10x the recording's.
const PeakQPS = 620

// Demo is the shop running on loopback with the drill plan written for it.
type Demo struct {
	fill     *strings.Replacer // the shop's addresses into Plan
	Shop     *shop.Shop
	Plan     *scenarios.Drill
	PlanPath string
}

// Start starts the shop, writes the recording and the drill plan into
// dir, and says on w what runs where. nginx, when not "", is the nginx
// binary to front the gateway's replicas with (shop.Config.Nginx); ""
// keeps them in the process.
func Start(ctx context.Context, dir string, w io.Writer, nginx string) (*Demo, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	s, err := shop.Start(ctx, shop.Config{Capacity: Capacities, ReplicaStartup: ReplicaStartup, Nginx: nginx})
	if err != nil {
		return nil, fmt.Errorf("demo: start the shop: %w", err)
	}
	if nginx != "" {
		fmt.Fprintf(w, "demo: the gateway's replicas run behind %s, reloaded when they scale\n", nginx)
	}
	d := &Demo{Shop: s}
	if err := d.write(ctx, dir, w); err != nil {
		s.Close()
		return nil, err
	}
	return d, nil
}

func (d *Demo) write(ctx context.Context, dir string, w io.Writer) error {
	s := d.Shop
	traffic := filepath.Join(dir, "shop-traffic.jsonl")
	if err := cli.WriteAtomic(traffic, func(w io.Writer) error { _, err := w.Write(examples.ShopTraffic); return err }); err != nil {
		return err
	}
	var svc strings.Builder
	for _, name := range Services {
		e, _ := s.Endpoint(name)
		fmt.Fprintf(&svc, "  %s: {metrics: %q, current: 1, zones: 1}\n", strings.ToLower(name), e.MetricsURL)
	}
	tables, err := s.Tables(ctx)
	if err != nil {
		return err
	}
	abs, _ := filepath.Abs(traffic)
	d.fill = strings.NewReplacer("{{gateway}}", s.URL(), "{{traffic}}", abs, "{{services}}", svc.String(),
		"{{dsn}}", s.DSN(), "{{tables}}", strings.Join(tables, ", "), "{{offset}}", fmt.Sprint(s.IDOffset()))
	d.PlanPath = filepath.Join(dir, "drill.yaml")
	capacity := fmt.Sprintf("capacity: {peak_qps: %d, headroom: 30%%, redundancy: n+1}\n", PeakQPS)
	if d.Plan, err = d.writePlan(d.PlanPath, stages, capacity); err != nil {
		return err
	}
	e, _ := s.Endpoint(shop.Product)
	fmt.Fprintf(w, "demo: the shop runs at %s; its product service is deliberately weak (%d workers x %v = %.0f req/s)\n",
		s.URL(), e.Capacity.Workers, e.Capacity.ServiceTime, e.Capacity.PerSec())
	var conf []string
	for _, name := range Services {
		e, _ := s.Endpoint(name)
		conf = append(conf, fmt.Sprintf("%s %.0f", name, e.Capacity.PerSec()))
	}
	fmt.Fprintf(w, "demo: configured capacities (workers / service time, req/s): %s\n", strings.Join(conf, ", "))
	fmt.Fprintf(w, "demo: drill plan %s: 6 stages up to 5x the recording's peak, guarded by p(99)<250ms\n", d.PlanPath)
	return nil
}

// writePlan writes the demo's drill plan with these stages and capacity
// section to path and parses it.
func (d *Demo) writePlan(path, stages, capacity string) (*scenarios.Drill, error) {
	plan := strings.NewReplacer("{{stages}}", stages, "{{capacity}}", capacity).Replace(d.fill.Replace(Plan))
	if err := cli.WriteAtomic(path, func(w io.Writer) error { _, err := io.WriteString(w, plan); return err }); err != nil {
		return nil, err
	}
	p, err := scenarios.ParseDrill(path, []byte(plan))
	if err != nil {
		return nil, fmt.Errorf("demo: built-in drill plan: %w", err)
	}
	return p, nil
}

// ScaleURLs are the shop's scaling endpoints by service.
func (d *Demo) ScaleURLs() map[string]string {
	out := map[string]string{}
	for _, name := range Services {
		e, _ := d.Shop.Endpoint(name)
		out[strings.ToLower(name)] = strings.TrimSuffix(e.MetricsURL, "/metrics") + "/admin/replicas"
	}
	return out
}

// Check fails when tagged traffic reached the shop's payment provider:
// the side effect the shadow library must keep it from.
func (d *Demo) Check() error {
	if n := d.Shop.Provider().Charges(); n > 0 {
		return fmt.Errorf("demo: tagged traffic reached the payment provider %d times", n)
	}
	return nil
}

// WriteComparison writes each service's measured capacity per replica
// beside its configured one; method says how each was measured.
func (d *Demo) WriteComparison(w io.Writer, perReplica map[string]float64, method map[string]string) {
	fmt.Fprintln(w, "\ndemo: each service's capacity per replica, measured from its /metrics vs configured:")
	for _, name := range Services {
		m, ok := perReplica[name]
		if !ok {
			continue
		}
		e, _ := d.Shop.Endpoint(name)
		c := e.Capacity.PerSec()
		fmt.Fprintf(w, "  %-8s %8.1f req/s  configured %6.0f  %+6.1f%%  (%s)\n", name, m, c, 100*(m-c)/c, method[name])
	}
}

// Close stops the shop.
func (d *Demo) Close() { d.Shop.Close() }
