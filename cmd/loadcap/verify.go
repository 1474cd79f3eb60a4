package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/spf13/cobra"

	"github.com/loadcap/loadcap/capacity"
	"github.com/loadcap/loadcap/capacity/drill"
	"github.com/loadcap/loadcap/capacity/verify"
	"github.com/loadcap/loadcap/capacity/verify/kube"
	"github.com/loadcap/loadcap/internal/cli"
	"github.com/loadcap/loadcap/scenarios"
	"github.com/loadcap/loadcap/scenarios/slo"
)

type verifyFlags struct {
	url, target, slo, out, scaler string
	drill                         string
	scaleCmd, readyCmd            string
	kubeconfig, kubeContext       string
	metrics, scaleURLs            []string
	cfg                           verify.Config
	warmup, window                time.Duration
	noRedundancy                  bool
	live                          liveFlags
}

func newVerifyCmd(st *state) *cobra.Command {
	var c verifyFlags
	cmd := &cobra.Command{
		Use:   "verify PLAN.json|PLAN.yaml (--url U | FILE.yaml | --drill DRILL.yaml) [--metrics NAME=URL...] --scaler shop|cmd|k8s",
		Short: "Scale the system to the plan, drive its peak and check the plan's predictions against measurements",
		Long: `Verify a capacity plan on the system it plans. Every service is scaled to the plan's replicas
through the scaler and waited for until ready; then the planned peak is driven at the entry (the
scenario file's request mix, --url, or --drill's traffic) and measured, then --margin above it, then the peak again
with one replica of each service taken away (the plan's redundancy; --no-redundancy skips it).
Each service's load comes from its own metrics (--metrics NAME=URL, named as the plan names the
services): predicted and measured load, load per replica, utilization (busy time when the service
exports it) against the plan's ceiling (1 − headroom), latency and failures, and whether the
service the plan runs closest to capacity is the one measured busiest. A check holds when the
entry meets --slo and no service runs past its capacity. The services are left at the plan's
replicas. Exit 0 when every check held, 99 when one did not.

--drill DRILL.yaml drives each check as a stage of that drill plan: its recording replayed at the
check's rate (the multiplier scaled to the plan's peak), tagged with its drill id, under its
guard (a stop fails the check), its isolation pre-flight and audit; its services' metrics are the
checks' (so --metrics is not given), its drill rules the SLO (so --slo is not), and every service
the plan scales must be one of them. Each stage ramps over --warmup and is measured over --window.
--as-is checks the replicas running now instead of scaling to the plan (no redundancy check):
whether the system as it stands, before or after a cron pre-scale, holds the peak.

Scalers: shop (the reference shop's /admin/replicas, found next to each --metrics URL, or
--scale-url NAME=URL), cmd (--scale-cmd 'my-scaler {service} {replicas}', and optionally
--ready-cmd 'my-ready {service}' printing the ready replicas), k8s (the plan's namespace and
deployment of each service, scaled through the Deployment's scale subresource, readiness from its
status; --kubeconfig and --context as kubectl's).`,
		Example: `  loadcap capacity verify plan.json --url http://127.0.0.1:8080/api/products/1 --slo 'p(99)<100ms' \
      --metrics gateway=http://127.0.0.1:9101/metrics --metrics product=http://127.0.0.1:9102/metrics --scaler shop
  loadcap capacity verify plan.json checkout.yaml --metrics cart=http://10.0.0.7:9100/metrics \
      --scaler cmd --scale-cmd 'nomad job scale shop {service} {replicas}'
  loadcap capacity verify plan.json --drill drill.yaml --scaler shop --out verify.json`,
		Args: args(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := checkOutputs(cmd, "out"); err != nil {
				return err
			}
			usage := func(format string, v ...any) error { return cli.WithCode(cli.ExitUsage, fmt.Errorf(format, v...)) }
			plan, err := loadPlanResult(a[0])
			if err != nil {
				return err
			}
			var d *scenarios.Drill
			if c.drill != "" {
				if d, err = c.loadDrill(cmd, a, plan); err != nil {
					return err
				}
				c.slo = capacity.DrillSLO(d)
				for _, s := range d.Services {
					c.metrics = append(c.metrics, s.Name+"="+s.Metrics)
				}
			}
			var objective slo.SLO
			if d == nil || c.slo != "" { // a drill without drill rules judges on the rate alone
				if objective, err = slo.Parse(c.slo); err != nil {
					return cli.WithCode(cli.ExitUsage, err)
				}
			}
			c.cfg.Plan = plan
			c.cfg.Redundancy = !c.noRedundancy
			c.cfg.Load = capacity.FindConfig{SLO: objective, Warmup: c.warmup, Window: c.window, MaxVUs: capacity.DefaultMaxVUs}
			metrics := map[string]string{}
			for _, m := range c.metrics {
				src, err := capacity.ParseMetricsSource(m)
				if err != nil {
					return cli.WithCode(cli.ExitUsage, err)
				}
				c.cfg.Load.Metrics = append(c.cfg.Load.Metrics, src)
				metrics[src.Name] = src.URL
			}
			for _, s := range plan.Services {
				if _, ok := metrics[s.Name]; !ok {
					return usage("--metrics: no metrics for the plan's service %q: give --metrics %s=URL", s.Name, s.Name)
				}
			}
			file := ""
			if len(a) == 2 {
				file = a[1]
			}
			if d == nil {
				in := capacity.Load{File: file, URL: c.url, Target: c.target, Stderr: st.stderr}
				if err := in.Apply(&c.cfg.Load); err != nil {
					return err
				}
			}
			if c.cfg.Scaler, err = c.newScaler(plan, metrics); err != nil {
				return err
			}
			c.cfg.Progress = st.stderr
			sess, err := c.live.start(st)
			if err != nil {
				return err
			}
			defer c.live.stop(st, sess)
			c.cfg.Load.Live = sess.Metrics()
			if d != nil {
				c.cfg.Drive = drill.Drive(drill.Config{Plan: d, Metrics: sess.Metrics()}, c.warmup, c.window)
			}
			stop := st.stopper(cmd.Context(), "the check in progress ends; the services stay where they are")
			defer stop.Close()
			return stop.Wait(func() error {
				res, err := verify.Run(stop.Context(), c.cfg)
				if err != nil {
					if stop.Interrupted() {
						done := 0
						if res != nil {
							done = len(res.Checks)
						}
						return cli.WithCode(cli.ExitAborted, fmt.Errorf("capacity verify %s after %d checks", stop.Reason(), done))
					}
					return err
				}
				if err := res.WriteTable(st.stdout); err != nil {
					return err
				}
				if c.out != "" {
					if err := writeJSON(c.out, res); err != nil {
						return err
					}
				}
				if !res.Held {
					return cli.WithCode(cli.ExitThresholds, cli.ErrSilent)
				}
				return nil
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&c.url, "url", "", "entry URL (instead of a scenario file)")
	fl.StringVar(&c.drill, "drill", "", "drive each check as a stage of this drill plan: its traffic, tag, guard and services (instead of a scenario file or --url)")
	fl.BoolVar(&c.cfg.AsIs, "as-is", false, "check the replicas running now: scale nothing (no redundancy check)")
	fl.StringVar(&c.target, "target", "", "replace the scenario file's target: base URL")
	fl.StringVar(&c.slo, "slo", "p(99)<200ms,error<1%", "what the entry must meet at every check")
	fl.StringArrayVar(&c.metrics, "metrics", nil, "NAME=URL of each plan service's Prometheus text endpoint (repeatable)")
	fl.StringVar(&c.scaler, "scaler", "", "shop, cmd or k8s")
	fl.StringArrayVar(&c.scaleURLs, "scale-url", nil, "--scaler shop: NAME=URL of a service's /admin/replicas (default: next to its --metrics URL)")
	fl.StringVar(&c.scaleCmd, "scale-cmd", "", "--scaler cmd: the command that scales, with {service} and {replicas}")
	fl.StringVar(&c.readyCmd, "ready-cmd", "", "--scaler cmd: a command printing a service's ready replicas, with {service} (default: ready when --scale-cmd returns)")
	fl.StringVar(&c.kubeconfig, "kubeconfig", "", "--scaler k8s: the kubeconfig (default as kubectl: $KUBECONFIG, ~/.kube/config)")
	fl.StringVar(&c.kubeContext, "context", "", "--scaler k8s: the kubeconfig context (default: its current one)")
	fl.Float64Var(&c.cfg.Margin, "margin", 0.1, "the second check drives this much above the peak (0 skips it)")
	fl.BoolVar(&c.noRedundancy, "no-redundancy", false, "skip the check with one replica of each service taken away")
	fl.DurationVar(&c.cfg.ReadyTimeout, "ready-timeout", 2*time.Minute, "how long the services get to have their replicas ready")
	fl.DurationVar(&c.warmup, "warmup", capacity.DefaultWarmup, "per check, not measured")
	fl.DurationVar(&c.window, "window", capacity.DefaultWindow, "per check, measured")
	fl.VarP(outFlag{&c.out, &c.live}, "out", "o", "write the checks as JSON (loadcap.verify/v1) here; prometheus-rw=URL pushes the live metrics there (repeatable)")
	c.live.add(cmd)
	return cmd
}

// loadDrill reads --drill and checks that it can drive plan's checks;
// the flags it replaces must not be given.
func (c *verifyFlags) loadDrill(cmd *cobra.Command, a []string, plan *capacity.PlanResult) (*scenarios.Drill, error) {
	for _, f := range []string{"url", "target", "metrics", "slo"} {
		if cmd.Flags().Changed(f) {
			return nil, usageErr("--%s with --drill: the drill plan gives its target, services' metrics and SLO", f)
		}
	}
	if len(a) == 2 {
		return nil, usageErr("%s with --drill: give a scenario file or a drill plan, not both", a[1])
	}
	d, err := scenarios.LoadDrill(c.drill)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, cli.WithCode(cli.ExitInvalid, err)
		}
		return nil, err
	}
	if err := drill.Fits(d, plan, a[0]); err != nil {
		return nil, err
	}
	return d, nil
}

func (c *verifyFlags) newScaler(plan *capacity.PlanResult, metrics map[string]string) (verify.Scaler, error) {
	usage := func(format string, v ...any) error { return cli.WithCode(cli.ExitUsage, fmt.Errorf(format, v...)) }
	switch c.scaler {
	case "shop":
		s := &verify.HTTPScaler{URLs: map[string]string{}}
		for name, u := range metrics {
			s.URLs[name] = strings.TrimSuffix(u, "/metrics") + "/admin/replicas"
		}
		for _, kv := range c.scaleURLs {
			name, u, ok := strings.Cut(kv, "=")
			if !ok || name == "" || u == "" {
				return nil, usage("--scale-url %q: want NAME=URL", kv)
			}
			s.URLs[name] = u
		}
		return s, nil
	case "cmd":
		if c.scaleCmd == "" {
			return nil, usage("--scaler cmd needs --scale-cmd 'COMMAND {service} {replicas}'")
		}
		if !strings.Contains(c.scaleCmd, "{replicas}") {
			return nil, usage("--scale-cmd %q: it must use {replicas}", c.scaleCmd)
		}
		return &verify.CmdScaler{ScaleCmd: c.scaleCmd, ReadyCmd: c.readyCmd}, nil
	case "k8s":
		targets := map[string]kube.Target{}
		for _, s := range plan.Services {
			targets[s.Name] = kube.Target{Namespace: s.Namespace, Deployment: s.Deployment}
		}
		k, err := kube.NewScaler(c.kubeconfig, c.kubeContext, targets)
		if err != nil {
			return nil, cli.WithCode(cli.ExitUsage, err)
		}
		return k, nil
	case "":
		return nil, usage("--scaler: give shop, cmd or k8s")
	}
	return nil, usage("--scaler %q: want shop, cmd or k8s", c.scaler)
}

func newWatchCmd(st *state) *cobra.Command {
	var (
		c                 verifyFlags
		prom, query, addr string
		w                 verify.WatchConfig
	)
	cmd := &cobra.Command{
		Use:   "watch PLAN.json|PLAN.yaml --prometheus URL --scaler shop|cmd|k8s",
		Short: "The capacity decision loop, live: scale each service on its load as the plan's HPA would",
		Long: `Run the plan's autoscaler live, for systems without an HPA (VMs, bare metal, Compose) or to
check one: every --sync it reads each service's request rate from Prometheus (--query, with
{{service}}), asks the same controller capacity simulate replays (the HPA that capacity plan
writes, reacting from each service's current replicas, with the plan window's cron pre-scale
--prescale-lead before it) for the replicas, and scales through the scaler when they change.
Every decision is logged with its reason; --dry-run only logs them; --metrics-listen serves the
loop's metrics (loadcap_watch_*). A service whose load or readiness cannot be read is skipped
for that sync and logged, never scaled on a guess. Runs until interrupted or --duration.`,
		Example: `  loadcap capacity watch plan.json --prometheus http://127.0.0.1:9090 --scaler shop \
      --scale-url product=http://127.0.0.1:9102/admin/replicas --query 'sum(rate(shop_requests_total{service="{{service}}"}[15s]))'
  loadcap capacity watch plan.json --prometheus http://prometheus:9090 --scaler cmd --scale-cmd 'nomad job scale shop {service} {replicas}' --dry-run`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if prom == "" {
				return cli.WithCode(cli.ExitUsage, fmt.Errorf("--prometheus: give the Prometheus server's URL"))
			}
			if !strings.Contains(query, "{{service}}") {
				return cli.WithCode(cli.ExitUsage, fmt.Errorf("--query %q: it must use {{service}}", query))
			}
			plan, err := loadPlanResult(a[0])
			if err != nil {
				return err
			}
			w.Plan = plan
			if w.Scaler, err = c.newScaler(plan, nil); err != nil {
				return err
			}
			if w.Load, err = verify.NewPromLoad(prom, query); err != nil {
				return cli.WithCode(cli.ExitUsage, err)
			}
			w.Log = st.stdout
			if addr != "" {
				reg := prometheus.NewRegistry()
				w.Registry = reg
				srv, err := serveMetrics(addr, reg)
				if err != nil {
					return err
				}
				defer srv.Close()
				fmt.Fprintf(st.stderr, "watch: metrics on http://%s/metrics\n", srv.Addr)
			}
			stop := st.stopper(cmd.Context(), "the loop ends; the services stay where they are")
			defer stop.Close()
			return stop.Wait(func() error {
				ds, err := verify.Watch(stop.Context(), w)
				fmt.Fprintf(st.stdout, "watch: %d decisions\n", len(ds))
				if err != nil && stop.Interrupted() {
					return nil // stopping is how a watch ends
				}
				return err
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&prom, "prometheus", "", "the Prometheus server to read each service's load from")
	fl.StringVar(&query, "query", capacity.DefaultKEDAQuery, "PromQL of a service's total request rate, with {{service}}")
	fl.StringVar(&c.scaler, "scaler", "", "shop, cmd or k8s")
	fl.StringArrayVar(&c.scaleURLs, "scale-url", nil, "--scaler shop: NAME=URL of each service's /admin/replicas")
	fl.StringVar(&c.scaleCmd, "scale-cmd", "", "--scaler cmd: the command that scales, with {service} and {replicas}")
	fl.StringVar(&c.readyCmd, "ready-cmd", "", "--scaler cmd: a command printing a service's ready replicas, with {service}")
	fl.StringVar(&c.kubeconfig, "kubeconfig", "", "--scaler k8s: the kubeconfig")
	fl.StringVar(&c.kubeContext, "context", "", "--scaler k8s: the kubeconfig context")
	fl.BoolVar(&w.DryRun, "dry-run", false, "log the decisions, do not scale")
	fl.DurationVar(&w.Sync, "sync", 15*time.Second, "the decision period (the HPA's sync period)")
	fl.DurationVar(&w.PrescaleLead, "prescale-lead", capacity.DefaultPrescaleLead, "raise the plan's replicas this long before its window")
	fl.DurationVar(&w.Duration, "duration", 0, "stop after this long (0: until interrupted)")
	fl.StringVar(&addr, "metrics-listen", "", "serve the loop's metrics on this address")
	return cmd
}

// serveMetrics serves reg's metrics at /metrics on addr until closed.
func serveMetrics(addr string, reg *prometheus.Registry) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, cli.WithCode(cli.ExitUsage, fmt.Errorf("--metrics-listen: %w", err))
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Addr: ln.Addr().String(), Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return srv, nil
}
