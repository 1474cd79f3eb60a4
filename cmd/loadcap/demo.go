package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/loadcap/loadcap/capacity/drill"
	"github.com/loadcap/loadcap/internal/cli"
	"github.com/loadcap/loadcap/internal/demo/shop"
	"github.com/loadcap/loadcap/scenarios"
	"github.com/loadcap/loadcap/scenarios/examples"
)

// demoCapacities are the shop's services' capacities in the demo. The
// product service is deliberately weak: 2 workers x 10 ms = 200 req/s,
// which the last stage (5x the recording's peak, ~0.7 of the gateway's
// requests reaching it) overruns. The others are sized so that the
// recording's mix keeps each 5-30% busy at the peak stage: loaded, never
// saturated, so their capacities come from the utilization law.
var demoCapacities = map[string]shop.Capacity{
	shop.Gateway: shop.DefaultCapacity,                             // 8 x 2 ms = 4000 req/s
	shop.Product: {Workers: 2, ServiceTime: 10 * time.Millisecond}, // 200 req/s
	shop.Cart:    {Workers: 1, ServiceTime: 5 * time.Millisecond},  // 200 req/s
	shop.Order:   {Workers: 1, ServiceTime: 10 * time.Millisecond}, // 100 req/s
	shop.Payment: {Workers: 1, ServiceTime: 8 * time.Millisecond},  // 125 req/s
	shop.User:    {Workers: 2, ServiceTime: 8 * time.Millisecond},  // 250 req/s
}

// demoServices are the services the demo's drill measures, entry first.
var demoServices = []string{shop.Gateway, shop.Product, shop.Cart, shop.Order, shop.Payment, shop.User}

// demoPlan is the demo's drill; the placeholders are filled with the
// in-process shop's addresses.
const demoPlan = `# loadcap demo: a guarded pre-sale drill against the reference shop on loopback
drill_id: loadcap-demo
target: {{gateway}}
traffic: {replay: {{traffic}}}
stages:
  - {name: warm-up, multiplier: 1, ramp: 2s, hold: 8s}
  - {name: double,  multiplier: 2, ramp: 2s, hold: 8s}
  - {name: peak,    multiplier: 5, ramp: 3s, hold: 12s}
maxVUs: 1000
guard:
  every: 1s
  breaches: 2
  rules:
    - {name: drill-latency, drill: "p(99)<250ms"}
    - {name: drill-errors, drill: "error<5%"}
    - {name: gateway-health, health: "{{gateway}}/healthz"}
services:
{{services}}capacity: {peak_qps: {{peak}}, headroom: 30%, redundancy: n+1}
isolation: {dsn: "{{dsn}}", tables: [{{tables}}], id_offset: {{offset}}}
`

func newDemoCmd(st *state) *cobra.Command {
	var (
		dir    string
		report string
		quiet  bool
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "No setup: a guarded pre-sale drill against the built-in reference shop on loopback, with its report",
		Long: `Start the reference shop on loopback (SQLite, in-process stores, one deliberately weak service),
replay a bundled recording of shop traffic tagged with a drill id through three stages up to 5x
its peak, let the guard stop the last stage when the weak service saturates, measure every
service's capacity from its /metrics (printed beside its configured capacity), audit the shop's
database for leaks, plan replicas for 10x the recorded peak, and write the HTML report.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), st, dir, report, quiet)
		},
	}
	cmd.Flags().StringVar(&dir, "out-dir", "loadcap-demo", "where the drill plan, results and manifests go")
	cmd.Flags().StringVarP(&report, "report", "o", "loadcap-report.html", "the HTML report")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress")
	return cmd
}

func runDemo(ctx context.Context, st *state, dir, report string, quiet bool) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := shop.Start(ctx, shop.Config{Capacity: demoCapacities})
	if err != nil {
		return fmt.Errorf("demo: start the shop: %w", err)
	}
	defer s.Close()
	traffic := filepath.Join(dir, "shop-traffic.jsonl")
	if err := os.WriteFile(traffic, examples.ShopTraffic, 0o644); err != nil {
		return err
	}
	var svc strings.Builder
	for _, name := range demoServices {
		e, _ := s.Endpoint(name)
		fmt.Fprintf(&svc, "  %s: {metrics: %q, current: 1, zones: 1}\n", strings.ToLower(name), e.MetricsURL)
	}
	tables, err := s.Tables(ctx)
	if err != nil {
		return err
	}
	abs, _ := filepath.Abs(traffic)
	plan := strings.NewReplacer("{{gateway}}", s.URL(), "{{traffic}}", abs, "{{services}}", svc.String(),
		"{{peak}}", "620", "{{dsn}}", s.DSN(), "{{tables}}", strings.Join(tables, ", "),
		"{{offset}}", fmt.Sprint(s.IDOffset())).Replace(demoPlan)
	planPath := filepath.Join(dir, "drill.yaml")
	if err := os.WriteFile(planPath, []byte(plan), 0o644); err != nil {
		return err
	}
	d, err := scenarios.ParseDrill(planPath, []byte(plan))
	if err != nil {
		return fmt.Errorf("demo: built-in drill plan: %w", err)
	}
	e, _ := s.Endpoint(shop.Product)
	fmt.Fprintf(st.stdout, "demo: the shop runs at %s; its product service is deliberately weak (%d workers x %v = %.0f req/s)\n",
		s.URL(), e.Capacity.Workers, e.Capacity.ServiceTime, e.Capacity.PerSec())
	var conf []string
	for _, name := range demoServices {
		e, _ := s.Endpoint(name)
		conf = append(conf, fmt.Sprintf("%s %.0f", name, e.Capacity.PerSec()))
	}
	fmt.Fprintf(st.stdout, "demo: configured capacities (workers / service time, req/s): %s\n", strings.Join(conf, ", "))
	fmt.Fprintf(st.stdout, "demo: drill plan %s: 3 stages up to 5x the recording's peak, guarded by p(99)<250ms\n", planPath)
	cfg := drill.Config{Plan: d}
	if !quiet {
		cfg.Progress, cfg.Live = st.stderr, st.tty
	}
	res, code, err := runDrill(ctx, st, cfg, dir, report)
	if err != nil {
		return err
	}
	if n := s.Provider().Charges(); n > 0 {
		return fmt.Errorf("demo: tagged traffic reached the payment provider %d times", n)
	}
	fmt.Fprintln(st.stdout, "\ndemo: each service's capacity per replica, measured from its /metrics vs configured:")
	for _, m := range res.Services {
		e, _ := s.Endpoint(m.Name)
		c := e.Capacity.PerSec()
		fmt.Fprintf(st.stdout, "  %-8s %8.1f req/s  configured %6.0f  %+6.1f%%  (%s)\n", m.Name, m.PerReplicaQPS, c, 100*(m.PerReplicaQPS-c)/c, m.Method)
	}
	fmt.Fprintf(st.stdout, "\ndemo: report %s; results, plan and HPA/KEDA manifests in %s/\n", report, dir)
	switch {
	case code == cli.ExitIsolation:
		return cli.WithCode(code, errors.New("demo: isolation violated"))
	case res.Stopped != nil && !res.Stopped.ByGuard():
		return cli.WithCode(cli.ExitAborted, errors.New("demo: interrupted"))
	case res.Stopped != nil:
		fmt.Fprintf(st.stdout, "demo: the guard stopped stage %s as designed: %s\n", res.Stopped.Stage, res.Stopped.Reason)
	case code == cli.ExitThresholds:
		fmt.Fprintln(st.stdout, "demo: a stage failed its SLO but the guard did not stop the drill (see the stage table)")
	default:
		fmt.Fprintln(st.stdout, "demo: every stage ran to its end (the weak service held; a loaded machine can hide the saturation)")
	}
	return nil
}
