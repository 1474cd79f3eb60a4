package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/loadcap/loadcap/internal/cli"
	"github.com/loadcap/loadcap/internal/runner"
	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/reports"
	"github.com/loadcap/loadcap/scenarios"
)

type runConfig struct {
	file     string
	k6       k6Flags
	target   string
	quick    scenarios.QuickOptions
	headers  []string
	out      string
	report   string
	junit    string
	quiet    bool
	noSumm   bool
	noTag    bool
	cluster  clusterFlags
	duration time.Duration

	dashboard string
	live      liveFlags
}

func newRunCmd(st *state) *cobra.Command {
	var c runConfig
	cmd := &cobra.Command{
		Use:   "run [FILE.yaml | SCRIPT.js] [--url U --rate R --duration D --vus N --max-vus N]",
		Short: "Run a scenario file, or an ad hoc load against one URL",
		Long: `Run a scenario file (k6's scenario vocabulary in YAML), or an ad hoc load against one URL:
open model with --rate (requests per second), closed model with --vus. A k6 script (.js, or a k6
archive .tar) runs unmodified in k6 inside loadcap (a child process of this executable, with no
usage report, REST API or extension download), recorded and reported like a scenario file.
With --agents, a script is archived (k6 archive) and every agent runs its execution segment of
it; the agents' k6 only connects inside their allow lists (k6's --blacklist-ip), and the
script's thresholds on metrics loadcap measures are judged on the merged data.

Latency is measured from each request's intended send time, so a stalled target shows in the
percentiles. Exit codes: 0 passed, 99 a threshold failed, 104 invalid scenario (or a k6 script
k6 cannot load), 105 aborted (a signal: the result so far is written, status aborted), k6's own
107 for an exception once its test runs.`,
		Example: `  loadcap run scenarios/examples/checkout.yaml --out run.json
  loadcap run --url http://127.0.0.1:8080/ --rate 2000 --duration 30s --max-vus 500 --out run.json
  loadcap run --url http://127.0.0.1:8080/ --vus 50 --duration 30s --quiet
  loadcap run scenarios/examples/checkout.yaml --dashboard :8090 --report report.html
  loadcap run script.js --out run.json --drill-id presale-1
  loadcap run script.js --agents 10.0.0.5:7070,10.0.0.6:7070 --tls-cert coordinator.pem --tls-key coordinator-key.pem --ca ca.pem`,
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := checkOutputs(cmd, "out", "report", "junit"); err != nil {
				return err
			}
			if len(a) == 1 {
				c.file = a[0]
			}
			o := execOptions{out: c.out, report: c.report, junit: c.junit, quiet: c.quiet, noSummary: c.noSumm, cluster: &c.cluster, live: &c.live}
			o.dashboard = c.dashboard
			if c.file != "" && runner.IsScript(c.file) {
				k6args, err := k6RunArgs(cmd, &c, &c.k6)
				if err != nil {
					return err
				}
				return execute(cmd.Context(), st, runner.Config{Script: c.file, K6Args: k6args, DrillID: c.k6.drillID}, o)
			}
			f, err := c.load(cmd)
			if err != nil {
				return err
			}
			if f.K6Script != "" {
				return runK6File(cmd, st, &c, f, o)
			}
			return execute(cmd.Context(), st, runner.Config{File: f, Target: c.target, NoTag: c.noTag}, o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&c.quick.URL, "url", "", "ad hoc target URL (instead of a scenario file)")
	fl.StringVar(&c.target, "target", "", "replace the scenario file's target: base URL")
	fl.StringVar(&c.quick.Method, "method", "GET", "ad hoc request method")
	fl.StringVar(&c.quick.Body, "body", "", "ad hoc request body")
	fl.StringArrayVarP(&c.headers, "header", "H", nil, `ad hoc request header "Name: value" (repeatable)`)
	fl.Float64Var(&c.quick.RatePerSec, "rate", 0, "open model: arrivals per second (constant-arrival-rate)")
	fl.DurationVar(&c.duration, "duration", 30*time.Second, "ad hoc run length")
	fl.IntVar(&c.quick.VUs, "vus", 0, "closed model: virtual users looping (constant-vus)")
	fl.IntVar(&c.quick.MaxVUs, "max-vus", 0, "open model: in-flight cap; arrivals beyond it queue and are sent late, timed from their intended send (dropped only when the backlog overflows, outlives the timeout, or the run ends)")
	fl.IntVar(&c.quick.PreAllocatedVUs, "pre-allocated-vus", 0, "open model: VUs created before the start")
	fl.DurationVar(&c.quick.Timeout, "timeout", 0, "per-request timeout (default 60s)")
	fl.BoolVar(&c.quick.HTTP2, "http2", false, "use HTTP/2 (ALPN h2 for https, h2c for http)")
	fl.BoolVar(&c.quick.Insecure, "insecure", false, "skip TLS certificate verification")
	fl.VarP(outFlag{&c.out, &c.live}, "out", "o", "write the run result (JSON, loadcap.run/v1) to this file; prometheus-rw=URL pushes the live metrics there (repeatable)")
	fl.StringVar(&c.report, "report", "", "also write the HTML report (as loadcap report) to this file")
	fl.StringVar(&c.junit, "junit", "", "also write the thresholds as JUnit XML to this file")
	fl.BoolVarP(&c.quiet, "quiet", "q", false, "no progress line")
	fl.BoolVar(&c.noSumm, "no-summary", false, "do not print the summary table")
	c.cluster.add(cmd)
	c.live.add(cmd)
	addK6Flags(cmd, &c.k6)
	fl.BoolVar(&c.noTag, "no-tag", false, "replay without the shadow tag (refused unless the target is loopback)")
	addDashboardFlag(cmd, &c.dashboard)
	return cmd
}

// load builds the scenario from a file or from the ad hoc flags.
func (c *runConfig) load(cmd *cobra.Command) (*scenarios.File, error) {
	adHoc := []string{"url", "rate", "vus", "max-vus", "pre-allocated-vus", "method", "body", "header", "duration", "http2", "insecure", "timeout"}
	if c.file != "" {
		for _, n := range adHoc {
			if cmd.Flags().Changed(n) && n != "url" {
				return nil, usageErr("--%s applies to an ad hoc run (--url), not to a scenario file: set it in %s", n, c.file)
			}
		}
		if c.quick.URL != "" {
			return nil, usageErr("give either a scenario file or --url, not both")
		}
		var opts []scenarios.Option
		if c.target != "" {
			opts = append(opts, scenarios.WithTarget(c.target))
		}
		f, err := scenarios.Load(c.file, opts...)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, cli.WithCode(cli.ExitInvalid, err)
		}
		return f, err
	}
	if c.quick.URL == "" {
		return nil, usageErr("nothing to run: give a scenario file or --url")
	}
	if c.target != "" {
		return nil, usageErr("--target replaces a scenario file's target; an ad hoc run takes --url")
	}
	if c.quick.RatePerSec > 0 && cmd.Flags().Changed("vus") {
		return nil, usageErr("--rate (open model) and --vus (closed model) exclude each other; use --max-vus to cap the open model")
	}
	if c.quick.RatePerSec < 0 {
		return nil, usageErr("--rate must be positive")
	}
	c.quick.Duration = c.duration
	c.quick.Headers = map[string]string{}
	for _, h := range c.headers {
		name, val, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return nil, usageErr(`--header %q: want "Name: value"`, h)
		}
		c.quick.Headers[strings.TrimSpace(name)] = strings.TrimSpace(val)
	}
	f, err := scenarios.Quick(c.quick)
	if err != nil {
		return nil, cli.WithCode(cli.ExitUsage, err)
	}
	return f, nil
}

type execOptions struct {
	out       string
	report    string // HTML report path
	junit     string
	quiet     bool
	noSummary bool
	cluster   *clusterFlags // --agents: a distributed run
	dashboard string        // --dashboard ADDR
	live      *liveFlags    // --metrics-listen, --out prometheus-rw=URL
}

// outputs are the files and the summary o asks for.
func (o execOptions) outputs(st *state) reports.Outputs {
	out := reports.Outputs{JSON: o.out, HTML: o.report, JUnit: o.junit, Notices: st.stderr, Write: cli.WriteAtomic}
	if !o.noSummary {
		out.Summary = st.stdout
	}
	return out
}

// keepIntervals is how many closed seconds a run holds in memory (between
// it and twice it), the rest being in the intervals file.
const keepIntervals = 300

// intervalsPath is the intervals file of the run result out; "" (a
// temporary file) without one.
func intervalsPath(out string) string {
	if out == "" {
		return ""
	}
	return reports.IntervalsPath(out)
}

// openIntervalStream starts the intervals file at path (a temporary one
// for ""); nil, said on stderr, when it cannot be created or written: the
// run then keeps every second in memory.
func openIntervalStream(st *state, path string) *reports.IntervalStream {
	stream, err := reports.CreateIntervalStream(path)
	if err == nil {
		err = stream.Err()
	}
	if err != nil {
		fmt.Fprintf(st.stderr, "loadcap: %v: every second stays in memory instead\n", err)
		if stream != nil {
			stream.Discard()
		}
		return nil
	}
	return stream
}

// chainInterval calls first and then next (when set) with every interval.
func chainInterval(first, next func(loadgen.Interval)) func(loadgen.Interval) {
	if next == nil {
		return first
	}
	return func(iv loadgen.Interval) { first(iv); next(iv) }
}

// runGraceful says what the first signal lets a run finish.
const runGraceful = "in-flight requests get their gracefulStop"

// forward hands the stopper's signals to a run's Stop and Kill (an
// engine, a coordinator, k6) as loadgen.CauseSignal: the first signal
// stops it gracefully, the second kills it; either way the result is
// written, marked aborted.
func forward(s *cli.Stopper, stop, kill func(cause, reason string)) {
	s.Forward(func(r string) { stop(loadgen.CauseSignal, r) }, func(r string) { kill(loadgen.CauseSignal, r) })
}

// execute runs the load rc describes (a scenario file or a k6 script,
// here or on o's agents), writes the result and the summary, and maps the
// outcome to an exit code: 99 when a threshold failed, 105 when
// interrupted, k6's own code when k6 ended otherwise (107 a script
// exception, ...), 111 when a distributed run lost an agent. When several
// hold, the first of these wins: 1 (a recording that stopped reading),
// 99 (an abortOnFail threshold stopped a script), k6's code, 105, 99, 111:
// a partial result fails the run only when nothing else already did, the
// summary and run.json saying it is partial either way.
func execute(ctx context.Context, st *state, rc runner.Config, o execOptions) (err error) {
	graceful := runGraceful
	if rc.Script != "" {
		// The child's stdout and stderr, progress and signal notices reach
		// stderr from different goroutines.
		locked := *st
		locked.stderr = &runner.SyncWriter{W: st.stderr}
		st = &locked
		graceful = "k6 interrupts iterations and runs teardown"
	}
	rc.Stderr = st.stderr
	if !o.quiet {
		rc.Progress, rc.Live = st.stderr, st.tty
	}
	if o.cluster != nil && len(o.cluster.agents) > 0 {
		cc := o.cluster.coordinatorConfig(st, o.quiet)
		rc.Agents = &cc
	}
	if o.live != nil {
		sess, err := o.live.start(st)
		if err != nil {
			return err
		}
		defer o.live.stop(st, sess)
		rc.Metrics = sess.Metrics()
	}
	stop := st.stopper(ctx, graceful)
	defer stop.Close()
	// A signal before the load started (agents preparing) leaves no
	// result: the signal is the reason, not what it cut short.
	interrupted := func(err error) error {
		if stop.Interrupted() {
			return cli.WithCode(cli.ExitAborted, fmt.Errorf("%s before the load started, no result: %w", stop.Reason(), err))
		}
		return err
	}
	title := rc.Script
	if f := rc.File; f != nil {
		title = cmp.Or(f.Path, f.Target)
	}
	dash, err := startDashboard(st, o.dashboard, "run "+title, false)
	if err != nil {
		return err
	}
	if dash != nil {
		rc.OnInterval = dash.observe(rc.OnInterval)
		defer func() { dash.end("", err, o.report) }()
	}
	// Every second goes to the intervals file as it closes, and the engine
	// keeps only the last few: a run of any length costs flat memory, and
	// a run of over an hour's run.json references the file (reports'
	// InlineIntervals). Without --out the file is a temporary one, read
	// back for the summary and --report.
	// A file that cannot be created or written (a full disk) costs the
	// run its flat memory, not its result: the engine then keeps every
	// second, and run.json embeds them (or says why it cannot be written).
	stream := openIntervalStream(st, intervalsPath(o.out))
	attached := false
	defer func() {
		if stream != nil && !attached {
			stream.Discard()
		}
	}()
	if stream != nil {
		rc.OnInterval = chainInterval(stream.Write, rc.OnInterval)
		rc.KeepIntervals = keepIntervals
	}
	r, err := runner.New(stop.Context(), rc)
	if err != nil {
		return interrupted(err)
	}
	defer r.Close()
	forward(stop, r.Stop, r.Kill)
	res, err := r.Run(ctx)
	if err != nil && res == nil {
		return interrupted(err)
	}
	runErr := err // the run happened but went wrong (a recording that stopped reading): results first
	var m reports.Meta
	k6Code := 0 // the reports show k6's exit code unless a threshold decided it
	if rc.Script != "" {
		m = k6Meta(rc.Script, res)
		if out := r.K6(); out != nil && out.ExitCode != 0 && res.AbortCause != loadgen.CauseThreshold {
			k6Code = out.ExitCode
		}
	} else {
		m = meta(rc.File)
	}
	run := reports.NewRun(res, m)
	attached = true
	if stream != nil {
		run.AttachIntervals(stream, res.Earlier)
	}
	if err := o.outputs(st).WriteRun(run, r.Cluster(), k6Code); err != nil {
		return err
	}
	reports.RemoveStaleIntervals(o.out, run)
	if runErr != nil {
		return runErr
	}
	switch {
	case res.AbortCause == loadgen.CauseThreshold && rc.Script != "":
		// One of loadcap's abortOnFail thresholds stopped k6 (which then
		// says 105), or one of the script's (k6 says 99).
		return cli.WithCode(cli.ExitThresholds, errors.New(res.AbortReason))
	case k6Code != 0:
		return cli.WithCode(cli.Code(k6Code), errors.New(r.K6().Err))
	case run.Status == loadgen.StatusAborted && res.AbortCause == loadgen.CauseSignal:
		return cli.WithCode(cli.ExitAborted, cli.ErrSilent)
	case run.ThresholdFailed():
		return cli.WithCode(cli.ExitThresholds, errors.New("thresholds failed"))
	case run.Partial:
		return cli.WithCode(cli.ExitPartial, partialErr(res.Lost))
	}
	return nil
}

// partialErr says which agents a distributed run lost, when, and the load
// they did not send.
func partialErr(lost []loadgen.Lost) error {
	var b strings.Builder
	b.WriteString("partial result: the run lost ")
	for i, l := range lost {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "agent %s at %.1fs (%d planned arrivals not reported sent)", l.Agent, l.At.Seconds(), l.Unsent)
	}
	return errors.New(b.String())
}

func meta(f *scenarios.File) reports.Meta {
	m := reports.Meta{Version: versionString(), File: f.Path, Target: f.Target}
	for _, s := range f.Scenarios {
		m.Scenarios = append(m.Scenarios, s.Name)
	}
	return m
}
