package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/loadcap/loadcap/internal/capture"
	"github.com/loadcap/loadcap/internal/cli"
	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/loadgen/cluster"
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
percentiles. Exit codes: 0 passed, 99 a threshold failed, 104 invalid scenario, 105 aborted.`,
		Example: `  loadcap run scenarios/examples/checkout.yaml --out run.json
  loadcap run --url http://127.0.0.1:8080/ --rate 2000 --duration 30s --max-vus 500 --out run.json
  loadcap run --url http://127.0.0.1:8080/ --vus 50 --duration 30s --quiet
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
			o := execOptions{out: c.out, report: c.report, junit: c.junit, quiet: c.quiet, noSummary: c.noSumm, noTag: c.noTag,
				target: c.target, cluster: &c.cluster}
			if c.file != "" && isK6Script(c.file) {
				k6args, err := k6RunArgs(cmd, &c, &c.k6)
				if err != nil {
					return err
				}
				return executeK6(cmd.Context(), st, c.file, k6args, c.k6.drillID, nil, o)
			}
			f, err := c.load(cmd)
			if err != nil {
				return err
			}
			if f.K6Script != "" {
				return runK6File(cmd, st, &c, f, o)
			}
			return execute(cmd.Context(), st, f, o)
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
	fl.StringVarP(&c.out, "out", "o", "", "write the run result (JSON, loadcap.run/v1) to this file")
	fl.StringVar(&c.report, "report", "", "also write the HTML report (as loadcap report) to this file")
	fl.StringVar(&c.junit, "junit", "", "also write the thresholds as JUnit XML to this file")
	fl.BoolVarP(&c.quiet, "quiet", "q", false, "no progress line")
	fl.BoolVar(&c.noSumm, "no-summary", false, "do not print the summary table")
	c.cluster.add(cmd)
	addK6Flags(cmd, &c.k6)
	fl.BoolVar(&c.noTag, "no-tag", false, "replay without the shadow tag (refused unless the target is loopback)")
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
	noTag     bool
	target    string        // run --target (agents re-aim the file with it)
	cluster   *clusterFlags // --agents: a distributed run
}

// writeRunOutputs attaches the cluster report (when distributed) and
// writes what o asks for: run.json, the summary, the HTML report and JUnit.
// exitCode, when not 0, is the exit code the reports show instead of the
// thresholds' verdict (k6's own, e.g. 107).
func writeRunOutputs(st *state, run *reports.Run, rep *cluster.Report, o execOptions, exitCode int) error {
	if rep != nil {
		var err error
		if run.Cluster, err = json.Marshal(rep); err != nil {
			return err
		}
		for _, p := range rep.Problems() {
			fmt.Fprintln(st.stderr, "cluster:", p)
		}
	}
	var werr error
	if o.out != "" {
		werr = cli.WriteAtomic(o.out, run.WriteJSON)
	}
	if !o.noSummary {
		if err := reports.WriteSummary(st.stdout, run); err != nil {
			return err
		}
	}
	if werr != nil {
		return werr
	}
	if o.report != "" || o.junit != "" {
		in := reports.HTMLInput{Run: run}
		in.ExitCode = verdictCode(in)
		if exitCode != 0 {
			in.ExitCode = exitCode
		}
		return writeReports(st, in, o.report, o.junit)
	}
	return nil
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

// execute runs f, writes the result and the summary, and maps the outcome
// to an exit code: 99 when a threshold failed, 105 when interrupted.
func execute(ctx context.Context, st *state, f *scenarios.File, o execOptions) error {
	stop := st.stopper(ctx, runGraceful)
	defer stop.Close()
	var res *loadgen.Result
	var clusterReport *cluster.Report
	var err error
	if o.cluster != nil && len(o.cluster.agents) > 0 {
		res, clusterReport, err = runDistributed(ctx, st, f, o.target, o.cluster, o, stop)
	} else {
		res, err = runLocal(ctx, st, f, o, stop)
	}
	if err != nil && res == nil {
		return err
	}
	runErr := err // the run happened but went wrong (a recording that stopped reading): results first
	run := reports.NewRun(res, meta(f))
	if err := writeRunOutputs(st, run, clusterReport, o, 0); err != nil {
		return err
	}
	if runErr != nil {
		return runErr
	}
	switch {
	case run.Status == loadgen.StatusAborted && res.AbortCause == loadgen.CauseSignal:
		return cli.WithCode(cli.ExitAborted, cli.ErrSilent)
	case thresholdFailed(run):
		return cli.WithCode(cli.ExitThresholds, errors.New("thresholds failed"))
	}
	return nil
}

// runLocal runs f in this process; stop's signals stop the engine, which
// runs with ctx (the first signal must not kill it).
func runLocal(ctx context.Context, st *state, f *scenarios.File, o execOptions, stop *cli.Stopper) (_ *loadgen.Result, runErr error) {
	var opts []loadgen.Option
	if !o.quiet {
		opts = append(opts, loadgen.WithProgress(st.stderr, st.tty))
	}
	if f.Replay != nil {
		src, err := replaySource(st, f, o)
		if err != nil {
			return nil, err
		}
		defer src.Close()
		opts = append(opts, loadgen.WithReplay(src))
		defer func() {
			if m := src.Malformed(); m.Count > 0 {
				fmt.Fprintf(st.stderr, "replay: %d malformed records skipped:\n%v\n", m.Count, m.Err())
			}
		}()
		defer func() {
			if err := src.Err(); err != nil && runErr == nil {
				runErr = cli.WithCode(cli.ExitToolError, fmt.Errorf("replay: reading the recording stopped early: %w", err))
			}
		}()
	}
	eng, err := loadgen.New(f, opts...)
	if err != nil {
		return nil, cli.WithCode(cli.ExitInvalid, err)
	}
	forward(stop, eng.Stop, eng.Kill)
	res, err := eng.Run(ctx)
	if err != nil {
		return nil, err
	}
	return res, nil
}

func thresholdFailed(r *reports.Run) bool {
	for _, t := range r.Thresholds {
		if !t.Passed {
			return true
		}
	}
	return false
}

func meta(f *scenarios.File) reports.Meta {
	m := reports.Meta{Version: versionString(), File: f.Path, Target: f.Target}
	for _, s := range f.Scenarios {
		m.Scenarios = append(m.Scenarios, s.Name)
	}
	return m
}

// replaySource opens a file's recording. Every replayed request carries
// the drill's shadow tag; --no-tag is refused unless the target is
// loopback.
func replaySource(st *state, f *scenarios.File, o execOptions) (*capture.ReplaySource, error) {
	if err := checkTag(f, o); err != nil {
		return nil, err
	}
	var progress io.Writer
	if !o.quiet {
		progress = st.stderr
	}
	src, err := capture.NewReplaySource(f, capture.ReplayConfig{Progress: progress})
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, cli.WithCode(cli.ExitInvalid, err)
		}
		return nil, err
	}
	if o.noTag {
		// Rewrite rules may send requests elsewhere than the target.
		for _, h := range src.Hosts() {
			if !loopbackURL("http://" + h) {
				src.Close()
				return nil, usageErr("--no-tag replays production traffic untagged: refused, the rewrite rules send requests to %s (only loopback)", h)
			}
		}
	}
	return src, nil
}

// checkTag enforces the shadow tag on a replay: drill_id is required, and
// --no-tag (which removes it) is refused unless the target is loopback.
func checkTag(f *scenarios.File, o execOptions) error {
	switch {
	case o.noTag && !loopbackURL(f.Target):
		return usageErr("--no-tag replays production traffic untagged: refused for %s (only against loopback)", f.Target)
	case o.noTag:
		f.DrillID = ""
		f.Headers = slices.DeleteFunc(f.Headers, func(h scenarios.Header) bool {
			return strings.EqualFold(h.Name, scenarios.ShadowHeader) || strings.EqualFold(h.Name, "Baggage")
		})
	case f.DrillID == "":
		return cli.WithCode(cli.ExitInvalid, &scenarios.Error{File: f.Path, Pos: f.Replay.Pos, Path: "drill_id",
			Msg: "is required with replay: every replayed request carries the drill's shadow tag (--no-tag only against loopback)"})
	}
	return nil
}

// loopbackURL reports whether u's host is a loopback address or localhost.
func loopbackURL(u string) bool {
	p, err := url.Parse(u)
	if err != nil {
		return false
	}
	h := p.Hostname()
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
