package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/loadcap/loadcap/capacity/drill"
	"github.com/loadcap/loadcap/internal/cli"
	"github.com/loadcap/loadcap/reports"
	"github.com/loadcap/loadcap/scenarios"
)

type drillConfig struct {
	dryRun  bool
	now     string
	outDir  string
	quiet   bool
	cluster clusterFlags

	dashboard string
	live      liveFlags
}

func newDrillCmd(st *state) *cobra.Command {
	var c drillConfig
	cmd := &cobra.Command{
		Use:   "drill PLAN.yaml [--dry-run] [--out-dir DIR] [--agents A,B --tls-cert C --tls-key K --ca CA]",
		Short: "Run a guarded pre-sale drill: tagged traffic in stages, measured, audited, planned",
		Long: `Run a drill plan: the isolation pre-flight, then the stages (tagged traffic at each stage's rate)
under the guard, which stops everything when a rule is breached; each stage is measured, with
every listed service's throughput and latency. At the end, or at the stop: the audit, the
capacity plan for the peak with HPA and KEDA manifests, and an HTML report.

Writes into --out-dir: run.json, stages.json (each stage as a capacity step), services.json
(each service's measured capacity and how it was measured), plan.json, hpa/, keda/, report.html. Exit codes: 0 every stage passed · 99 a stage failed its SLO · 105 the guard
or a signal stopped the drill, or a guard signal did not answer before the start · 106 the pre-flight or the audit found an isolation problem ·
2 outside the plan's window (--now overrides, for CI).

With --agents the agents (loadcap agent) generate the load, each its share of every stage, with
the same flags as run --agents; the guard watches their merged results and its stop kills
generation on every agent at once. The recording (or the scenario's data files) must lie beside
the recording (or scenario): agents get that directory's files.`,
		Example: `  loadcap drill scenarios/examples/presale-drill.yaml --dry-run --now 2026-11-01T02:00:00+08:00
  loadcap drill presale.yaml --out-dir drill-2026-11-01
  loadcap drill presale.yaml --out-dir drill-2026-11-01 --dashboard :8090
  loadcap drill presale.yaml --agents 10.0.0.5:7070,10.0.0.6:7070 --tls-cert coordinator.pem --tls-key coordinator-key.pem --ca ca.pem`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			d, err := scenarios.LoadDrill(a[0])
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return cli.WithCode(cli.ExitInvalid, err)
				}
				return err
			}
			cfg := drill.Config{Plan: d}
			if len(c.cluster.agents) > 0 {
				cc := c.cluster.coordinatorConfig(st, true)
				cfg.Agents = &cc
			}
			if c.now != "" {
				if cfg.Now, err = time.Parse(time.RFC3339, c.now); err != nil {
					return usageErr("--now: want an RFC 3339 time: %v", err)
				}
			}
			if !c.quiet {
				cfg.Progress, cfg.Live = st.stderr, st.tty
			}
			if !c.dryRun { // a dry run sends nothing to watch
				sess, err := c.live.start(st)
				if err != nil {
					return err
				}
				defer c.live.stop(st, sess)
				cfg.Metrics = sess.Metrics()
			}
			if c.dryRun {
				if c.dashboard != "" {
					return usageErr("--dashboard shows a drill that runs; a dry run sends nothing")
				}
				return dryRunDrill(cmd.Context(), st, cfg)
			}
			if err := checkDirs(cmd, "out-dir"); err != nil {
				return err
			}
			report := filepath.Join(c.outDir, "report.html")
			dash, err := startDashboard(st, c.dashboard, "drill "+d.DrillID, true)
			if err != nil {
				return err
			}
			if dash != nil {
				cfg.Dashboard = dash.Server
			}
			res, code, err := runDrill(cmd.Context(), st, cfg, c.outDir, report, nil)
			if dash != nil {
				verdict := ""
				if err == nil {
					verdict = res.VerdictLine()
				}
				dash.end(verdict, cmp.Or(err, codeErr(code)), report)
			}
			if err != nil {
				return err
			}
			switch code {
			case cli.ExitIsolation:
				return cli.WithCode(code, errors.New("isolation violated: see the audit above"))
			case cli.ExitAborted:
				return cli.WithCode(code, errors.New("the drill was stopped"))
			case cli.ExitThresholds:
				return cli.WithCode(code, errors.New("a stage failed its SLO"))
			case cli.ExitPartial:
				return cli.WithCode(code, partialErr(res.Run.Lost))
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&c.dryRun, "dry-run", false, "print the stage plan, check the pre-flight and the guard's signals; send nothing")
	fl.StringVar(&c.now, "now", "", "check the window against this time instead of the clock (RFC 3339)")
	fl.StringVar(&c.outDir, "out-dir", ".", "where the results, manifests and report go")
	fl.BoolVarP(&c.quiet, "quiet", "q", false, "no progress")
	c.cluster.add(cmd)
	addDashboardFlag(cmd, &c.dashboard)
	c.live.add(cmd)
	fl.Var(outFlag{live: &c.live}, "out", "prometheus-rw=URL: push the live metrics to this remote-write receiver")
	return cmd
}

func dryRunDrill(ctx context.Context, st *state, cfg drill.Config) error {
	return drillErr(drill.DryRun(ctx, cfg, st.stdout))
}

// drillStream starts the intervals file of the drill's run.json in
// outDir; nil, said on stderr, when it cannot be created: every second
// then stays in memory.
func drillStream(st *state, outDir string) *reports.IntervalStream {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		fmt.Fprintf(st.stderr, "loadcap: %v: every second stays in memory instead\n", err)
		return nil
	}
	return openIntervalStream(st, intervalsPath(filepath.Join(outDir, "run.json")))
}

// drillCode is the exit code of a drill's verdict.
func drillCode(v drill.Verdict) cli.Code {
	switch v {
	case drill.Leaked:
		return cli.ExitIsolation
	case drill.Stopped:
		return cli.ExitAborted
	case drill.StageFailed:
		return cli.ExitThresholds
	case drill.Partial:
		return cli.ExitPartial
	}
	return cli.ExitOK
}

func drillErr(err error) error {
	switch {
	case errors.Is(err, drill.ErrOutsideWindow):
		return cli.WithCode(cli.ExitUsage, err)
	case errors.Is(err, drill.ErrIsolation):
		return cli.WithCode(cli.ExitIsolation, err)
	case errors.Is(err, drill.ErrSignals), errors.Is(err, drill.ErrStoppedEarly):
		return cli.WithCode(cli.ExitAborted, err)
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, drill.ErrInvalid):
		return cli.WithCode(cli.ExitInvalid, err)
	}
	return err
}

// runDrill runs a drill, writes its files into outDir and the report to
// report, says how it went, and returns the exit code the outcome stands
// for. more, when set, runs after the summary and may add to the report.
func runDrill(ctx context.Context, st *state, cfg drill.Config, outDir, report string, more func(context.Context, *drill.Result, *reports.HTMLInput)) (*drill.Result, cli.Code, error) {
	// The first signal stops the engine at once; the audit and the report
	// still run. The second abandons them.
	stop := st.stopper(ctx, "the audit, the plan and the report still run")
	defer stop.Close()
	// Every second goes to run.intervals as it closes, as in loadcap run
	// (execute): the engine keeps the last few, the stages are measured as
	// they end, and a drill of over an hour has run.json reference the
	// file.
	stream := drillStream(st, outDir)
	attached := false
	defer func() {
		if stream != nil && !attached {
			stream.Discard()
		}
	}()
	if stream != nil {
		cfg.OnInterval, cfg.KeepIntervals = stream.Write, keepIntervals
	}
	var res *drill.Result
	err := stop.Wait(func() (err error) {
		res, err = drill.Run(stop.Context(), cfg)
		return err
	})
	if errors.Is(err, cli.ErrStoppedAtOnce) {
		return nil, 0, cli.WithCode(cli.ExitAborted, fmt.Errorf("%w: the audit did not run; check isolation before the next drill", cli.ErrStoppedAtOnce))
	}
	if err != nil && stop.Interrupted() {
		// The signal, not what it cut short (a pre-flight check, agents
		// preparing), is the reason.
		return res, 0, cli.WithCode(cli.ExitAborted, fmt.Errorf("the drill was %s before its load ran: nothing was measured", stop.Reason()))
	}
	if err != nil {
		if res != nil && res.Check != nil {
			for _, p := range res.Check.Problems {
				fmt.Fprintln(st.stdout, "isolation:", p)
			}
		}
		return res, 0, drillErr(err)
	}
	code := drillCode(res.Verdict())
	// The audit and the stop are said even when writing the files fails.
	said := false
	sayOutcome := func() {
		if !said {
			said = true
			res.WriteOutcome(st.stdout)
		}
	}
	fail := func(err error) (*drill.Result, cli.Code, error) {
		sayOutcome()
		if code != cli.ExitOK {
			return res, 0, cli.WithCode(code, fmt.Errorf("%w (and the drill's outcome, above, is exit %d)", err, code))
		}
		return res, 0, err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return fail(err)
	}
	run := reports.NewRun(res.Run, meta(res.File))
	if stream != nil {
		attached = true
		run.AttachIntervals(stream, res.Run.Earlier)
	}
	out := reports.Outputs{JSON: filepath.Join(outDir, "run.json"), Notices: st.stderr, Write: cli.WriteAtomic}
	if err := out.WriteRun(run, res.Cluster, 0); err != nil {
		return fail(err)
	}
	reports.RemoveStaleIntervals(out.JSON, run)
	manifests, err := res.WriteFiles(outDir, filepath.Dir(report), cli.WriteAtomic)
	if err != nil {
		return fail(err)
	}
	fmt.Fprintln(st.stdout)
	if err := res.WriteSummary(st.stdout); err != nil {
		return fail(err)
	}
	sayOutcome()
	in := reports.HTMLInput{Run: run, Find: res.Stages, Plan: res.Plan, ExitCode: int(code), Drill: res.Report(manifests)}
	if more != nil && stop.Context().Err() == nil {
		more(stop.Context(), res, &in)
	}
	if err := (reports.Outputs{HTML: report, Notices: st.stderr, Write: cli.WriteAtomic}).WriteReports(in); err != nil {
		return fail(err)
	}
	return res, code, nil
}
