package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"

	"github.com/spf13/cobra"

	"github.com/loadcap/loadcap/capacity"
	"github.com/loadcap/loadcap/internal/cli"
	"github.com/loadcap/loadcap/scenarios/slo"
)

func newCapacityCmd(st *state) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "capacity",
		Short: "Turn measurements into capacity: max QPS under an SLO, the USL model, replicas and autoscaler config",
	}
	cmd.AddCommand(newFindCmd(st), newFitCmd(st), newPlanCmd(st), newSimulateCmd(st), newVerifyCmd(st), newWatchCmd(st))
	return cmd
}

type findFlags struct {
	url, target, slo, out string
	metrics               []string
	cfg                   capacity.FindConfig
	quiet                 bool
	k6                    k6Flags // a k6 script's --k6-arg and --drill-id
	live                  liveFlags
}

func newFindCmd(st *state) *cobra.Command {
	var c findFlags
	cmd := &cobra.Command{
		Use:   "find (--url U | FILE.yaml | SCRIPT.js) --slo 'p(99)<200ms,error<0.5%'",
		Short: "Find the highest arrival rate one node sustains under an SLO",
		Long: `Search for the maximum sustainable QPS: constant-arrival-rate steps (a warm-up, then a
measured window) ramping geometrically until the SLO fails, a bisection to within the tolerance,
and a confirming soak. A step fails on an SLO clause, on achieving under 95% of the offered rate,
or on dropped requests. Prints each step as it ends; --out writes find.json (steps, max_qps,
saturation, knee, USL fit). A scenario file supplies the request mix; its executors are replaced.
A k6 script's default function is driven at each step's rate (iterations per second: the script
must make one request per iteration). A signal (Ctrl-C, SIGTERM) ends the step in progress, which
counts for nothing, and writes the steps done as a partial result ("partial": true; exit 105);
a second signal stops at once.`,
		Example: `  loadcap capacity find --url http://127.0.0.1:8080/api --slo 'p(99)<200ms,error<0.5%' --out find.json
  loadcap capacity find scenarios/examples/checkout.yaml --slo 'p(99)<200ms' --metrics http://127.0.0.1:8080/metrics
  loadcap capacity find script.js --k6-arg=--env=BASE=http://127.0.0.1:8080 --slo 'p(99)<200ms'   # one request per iteration`,
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := checkOutputs(cmd, "out"); err != nil {
				return err
			}
			objective, err := slo.Parse(c.slo)
			if err != nil {
				return cli.WithCode(cli.ExitUsage, err)
			}
			c.cfg.SLO = objective
			for _, m := range c.metrics {
				src, err := capacity.ParseMetricsSource(m)
				if err != nil {
					return cli.WithCode(cli.ExitUsage, err)
				}
				c.cfg.Metrics = append(c.cfg.Metrics, src)
			}
			file := ""
			if len(a) == 1 {
				file = a[0]
			}
			in := capacity.Load{File: file, URL: c.url, Target: c.target, K6Args: c.k6.args, DrillID: c.k6.drillID, Stderr: st.stderr}
			if err := in.Apply(&c.cfg); err != nil {
				return err
			}
			if !c.quiet {
				c.cfg.Progress = st.stderr
			}
			fmt.Fprintf(st.stderr, "capacity find: SLO %s; steps of %v warm-up + %v measured, from %.4g req/s x%.3g\n",
				objective.Text, c.cfg.Warmup, c.cfg.Window, c.cfg.StartRate, c.cfg.Factor)
			// The first signal cancels the search: the step in progress
			// ends at once, the steps done are the partial result. The
			// second abandons even that.
			sess, err := c.live.start(st)
			if err != nil {
				return err
			}
			defer c.live.stop(st, sess)
			c.cfg.Live = sess.Metrics()
			stop := st.stopper(cmd.Context(), "the step in progress ends; the steps done are kept")
			defer stop.Close()
			return stop.Wait(func() error {
				res, err := capacity.Find(stop.Context(), c.cfg)
				if err != nil && res != nil && (len(res.Steps) > 0 || stop.Interrupted()) {
					// A search cut short by a signal or an error: the steps
					// done, named partial. With none done there is nothing
					// to keep, and --out stays as it was.
					reason := stop.Reason()
					if !stop.Interrupted() {
						reason = fmt.Sprintf("stopped by an error (%v)", err)
					}
					res.MarkPartial(reason)
					saved := ""
					switch {
					case c.out == "":
					case len(res.Steps) == 0:
						saved = "; " + c.out + " is left as it was"
					default:
						if werr := writeJSON(c.out, res); werr != nil {
							return errors.Join(err, werr)
						}
						saved = ", written to " + c.out
					}
					if len(res.Steps) > 0 {
						res.WriteSummary(st.stdout)
					}
					if stop.Interrupted() {
						return cli.WithCode(cli.ExitAborted, fmt.Errorf("capacity find %s: a partial result of %d steps%s", reason, len(res.Steps), saved))
					}
					return fmt.Errorf("%w: a partial result of %d steps%s", err, len(res.Steps), saved)
				}
				if err != nil {
					return err
				}
				if c.out != "" {
					if err := writeJSON(c.out, res); err != nil {
						return err
					}
				}
				res.WriteSummary(st.stdout)
				return nil
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&c.url, "url", "", "target URL (instead of a scenario file)")
	fl.StringVar(&c.target, "target", "", "replace the scenario file's target: base URL")
	addK6Flags(cmd, &c.k6)
	fl.StringVar(&c.slo, "slo", "p(99)<200ms,error<1%", "what a sustainable step must meet")
	fl.VarP(outFlag{&c.out, &c.live}, "out", "o", "write find.json here; prometheus-rw=URL pushes the live metrics there (repeatable)")
	c.live.add(cmd)
	fl.StringArrayVar(&c.metrics, "metrics", nil, "[name=]URL of a Prometheus text endpoint to scrape per step (repeatable)")
	fl.Float64Var(&c.cfg.StartRate, "start-rate", capacity.DefaultStartRate, "first step's rate, req/s")
	fl.Float64Var(&c.cfg.Factor, "factor", capacity.DefaultFactor, "ramp multiplier between steps")
	fl.Float64Var(&c.cfg.Tolerance, "tolerance", capacity.DefaultTolerance, "stop bisecting when the bracket is this narrow (relative)")
	fl.Float64Var(&c.cfg.MaxRate, "max-rate", 0, "never offer more than this, req/s (0 = no limit)")
	fl.DurationVar(&c.cfg.Warmup, "warmup", capacity.DefaultWarmup, "per step, not measured")
	fl.DurationVar(&c.cfg.Window, "window", capacity.DefaultWindow, "per step, measured")
	fl.DurationVar(&c.cfg.Soak, "soak", capacity.DefaultSoak, "the confirming step at the answer")
	fl.IntVar(&c.cfg.MaxSteps, "max-steps", capacity.DefaultMaxSteps, "step budget")
	fl.IntVar(&c.cfg.MaxVUs, "max-vus", capacity.DefaultMaxVUs, "in-flight cap per step")
	fl.BoolVarP(&c.quiet, "quiet", "q", false, "no per-step lines")
	return cmd
}

func newFitCmd(st *state) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "fit (find.json | data.csv)",
		Short: "Fit the Universal Scalability Law to throughput against concurrency",
		Long: `Fit X(N) = λN / (1 + σ(N−1) + κN(N−1)) by bounded nonlinear least squares (as the R package usl
does) to a find.json's steps or a CSV (header row; column 1 = concurrency N, column 2 = throughput X).`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(_ *cobra.Command, a []string) error {
			pts, err := capacity.ReadPoints(a[0])
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return cli.WithCode(cli.ExitInvalid, err)
				}
				return err
			}
			u, err := capacity.FitUSL(pts)
			if err != nil {
				return cli.WithCode(cli.ExitInvalid, fmt.Errorf("%s: %w", a[0], err))
			}
			if asJSON {
				enc := json.NewEncoder(st.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(u)
			}
			return u.WriteText(st.stdout)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the fit as JSON")
	return cmd
}

func newPlanCmd(st *state) *cobra.Command {
	var out, hpa, keda, prom string
	cmd := &cobra.Command{
		Use:   "plan PLAN.yaml [--out plan.json] [--hpa DIR] [--keda DIR]",
		Short: "Replicas per service for a target peak, with headroom and redundancy; HPA and KEDA manifests",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := checkOutputs(cmd, "out"); err != nil {
				return err
			}
			if err := checkDirs(cmd, "hpa", "keda"); err != nil {
				return err
			}
			r, err := computePlan(a[0])
			if err != nil {
				return err
			}
			if err := r.WriteTable(st.stdout); err != nil {
				return err
			}
			if out != "" {
				if err := writeJSON(out, r); err != nil {
					return err
				}
			}
			if hpa != "" {
				files, err := capacity.WriteHPA(hpa, r)
				if err != nil {
					return err
				}
				fmt.Fprintf(st.stdout, "wrote %d HorizontalPodAutoscaler manifests to %s\n", len(files), hpa)
			}
			if keda != "" {
				files, err := capacity.WriteKEDA(keda, r, capacity.KEDAOptions{PrometheusAddress: prom})
				if err != nil {
					return err
				}
				fmt.Fprintf(st.stdout, "wrote %d KEDA ScaledObjects to %s\n", len(files), keda)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&out, "out", "o", "", "write plan.json here")
	fl.StringVar(&hpa, "hpa", "", "write one autoscaling/v2 HorizontalPodAutoscaler per service into this directory")
	fl.StringVar(&keda, "keda", "", "write one KEDA ScaledObject per service into this directory")
	fl.StringVar(&prom, "prometheus", "", "KEDA's Prometheus server address (default: the plan's or KEDA's default)")
	return cmd
}
