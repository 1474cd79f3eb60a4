package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	k6cmd "go.k6.io/k6/cmd"

	"github.com/loadcap/loadcap/capacity"
	"github.com/loadcap/loadcap/internal/cli"
	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/loadgen/cluster"
	"github.com/loadcap/loadcap/loadgen/k6"
	"github.com/loadcap/loadcap/reports"
	"github.com/loadcap/loadcap/scenarios"
)

// k6Flags are run's flags for a k6 script.
type k6Flags struct {
	args    []string // --k6-arg, passed through to "k6 run"
	drillID string   // --drill-id
}

// addK6Flags registers the k6-only flags of run.
func addK6Flags(cmd *cobra.Command, k *k6Flags) {
	fl := cmd.Flags()
	fl.StringArrayVar(&k.args, "k6-arg", nil, `a k6 script: one more "k6 run" argument, passed through (repeatable, e.g. --k6-arg=--env=HOST=127.0.0.1)`)
	fl.StringVar(&k.drillID, "drill-id", "", "a k6 script: the shadow tag, as __ENV.LOADCAP_DRILL_ID and from the k6/x/loadcap module")
}

// isK6Script reports whether run's file is a k6 script (or k6 archive)
// rather than a scenario file.
func isK6Script(file string) bool {
	switch strings.ToLower(filepath.Ext(file)) {
	case ".js", ".mjs", ".cjs", ".ts", ".tar":
		return true
	}
	return false
}

// k6RunArgs maps run's ad hoc flags that k6 has too onto "k6 run"
// arguments, and refuses the others.
func k6RunArgs(cmd *cobra.Command, c *runConfig, k *k6Flags) ([]string, error) {
	var out []string
	fl := cmd.Flags()
	for _, n := range []string{"url", "target", "rate", "max-vus", "pre-allocated-vus", "method", "body", "header", "http2", "timeout"} {
		if f := fl.Lookup(n); f != nil && f.Changed {
			return nil, usageErr("--%s does not apply to a k6 script: set it in the script (or pass k6's own flags with --k6-arg)", n)
		}
	}
	if fl.Changed("vus") {
		out = append(out, "--vus", strconv.Itoa(c.quick.VUs))
	}
	if fl.Changed("duration") {
		out = append(out, "--duration", c.duration.String())
	}
	if fl.Changed("insecure") && c.quick.Insecure {
		out = append(out, "--insecure-skip-tls-verify")
	}
	if c.noSumm {
		out = append(out, "--summary-mode=disabled")
	}
	out = append(out, k.args...)
	if err := k6.CheckArgs(out); err != nil {
		return nil, cli.WithCode(cli.ExitUsage, err)
	}
	return out, nil
}

// executeK6 runs a k6 script in loadcap's k6 child (loadcap k6-child) and
// reports it like execute reports a scenario file: progress, run.json,
// summary, HTML and JUnit. thresholds are loadcap's own, evaluated besides
// the script's; extra adds Runner options (k6.WithScenarios for a scenario
// file that drives a script). The exit code is k6's (105 aborted, 107
// script exception, ...), 99 when a threshold failed or aborted the run.
func executeK6(ctx context.Context, st *state, script string, args []string, drillID string, thresholds []scenarios.Threshold, o execOptions, extra ...k6.Option) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The child's stdout and stderr, progress and signal notices reach
	// stderr from different goroutines.
	locked := *st
	locked.stderr = &syncWriter{w: st.stderr}
	st = &locked
	opts := []k6.Option{
		k6.WithArgs(args...),
		k6.WithDrillID(drillID),
		k6.WithThresholds(thresholds),
		// k6's end-of-test summary and log go to stderr: stdout keeps
		// loadcap's summary alone.
		k6.WithOutput(st.stderr, st.stderr),
	}
	if !o.quiet {
		opts = append(opts, k6.WithProgress(st.stderr, st.tty))
	}
	// The first signal stops gracefully (k6 runs teardown and its
	// thresholds), the second at once; both go to the child, or to every
	// agent's child.
	stop := st.stopper(ctx, "k6 interrupts iterations and runs teardown")
	defer stop.Close()
	var (
		out *k6.Outcome
		rep *cluster.Report
		err error
	)
	if o.cluster != nil && len(o.cluster.agents) > 0 {
		if len(extra) > 0 {
			return usageErr("--agents runs a k6 script as written: not with a scenario file's scenarios")
		}
		out, rep, err = runK6Distributed(ctx, st, script, args, drillID, thresholds, o, stop)
	} else {
		var r *k6.Runner
		if r, err = k6.New(script, append(opts, extra...)...); err != nil {
			return cli.WithCode(cli.ExitUsage, err)
		}
		forward(stop, r.Stop, r.Kill)
		out, err = r.Run(ctx)
	}
	if err != nil {
		return err
	}
	if out.Result == nil {
		return cli.WithCode(cli.Code(out.ExitCode), fmt.Errorf("k6 exited with code %d: %s", out.ExitCode, out.Err))
	}
	run := reports.NewRun(out.Result, k6Meta(script, out.Result))
	code := 0 // the reports show k6's exit code unless a threshold decided it
	if out.ExitCode != 0 && out.Result.AbortCause != loadgen.CauseThreshold {
		code = out.ExitCode
	}
	if err := writeRunOutputs(st, run, rep, o, code); err != nil {
		return err
	}
	switch {
	case out.Result.AbortCause == loadgen.CauseThreshold:
		// One of loadcap's abortOnFail thresholds stopped k6 (which then
		// says 105), or one of the script's (k6 says 99).
		return cli.WithCode(cli.ExitThresholds, errors.New(out.Result.AbortReason))
	case out.ExitCode != 0:
		return cli.WithCode(cli.Code(out.ExitCode), errors.New(out.Err))
	case thresholdFailed(run):
		return cli.WithCode(cli.ExitThresholds, errors.New("thresholds failed"))
	}
	return nil
}

// runK6Distributed archives the script (k6 archive, in the child) and runs
// the archive over the agents of o.cluster, each with its execution
// segment; the agents' k6 streams are merged into one Outcome.
func runK6Distributed(ctx context.Context, st *state, script string, args []string, drillID string, thresholds []scenarios.Threshold, o execOptions, stop *cli.Stopper) (*k6.Outcome, *cluster.Report, error) {
	c := o.cluster
	if err := cluster.CheckK6Args(args); err != nil {
		return nil, nil, usageErr("--agents: %v", err)
	}
	archive := script
	if !strings.EqualFold(filepath.Ext(script), ".tar") {
		dir, err := os.MkdirTemp("", "loadcap-k6-archive-")
		if err != nil {
			return nil, nil, err
		}
		defer os.RemoveAll(dir)
		archive = filepath.Join(dir, "test.tar")
		if err := k6.Archive(stop.Context(), script, archive, k6.WithArgs(args...), k6.WithOutput(io.Discard, st.stderr)); err != nil {
			return nil, nil, cli.WithCode(cli.ExitInvalid, err)
		}
	}
	data, err := os.ReadFile(archive)
	if err != nil {
		return nil, nil, cli.WithCode(cli.ExitInvalid, err)
	}
	cfg := c.coordinatorConfig(st, o.quiet)
	co, err := cluster.NewK6Coordinator(&cluster.K6Plan{
		Name: filepath.Base(script), Archive: data, Args: args, DrillID: drillID, Thresholds: thresholds,
	}, cfg)
	if err != nil {
		return nil, nil, cli.WithCode(cli.ExitUsage, err)
	}
	forward(stop, co.Stop, co.Kill)
	return co.RunK6(ctx)
}

// k6Meta describes a k6 run for its result.
func k6Meta(script string, res *loadgen.Result) reports.Meta {
	m := reports.Meta{Version: versionString(), File: script, Engine: reports.EngineK6}
	for _, s := range res.Series {
		if !slices.Contains(m.Scenarios, s.Scenario) {
			m.Scenarios = append(m.Scenarios, s.Scenario)
		}
	}
	return m
}

// k6ChildMain is the body of the hidden subcommand `loadcap k6-child`
// (k6.ChildCommand), which main dispatches to before cobra sees the
// arguments: they are k6's. It returns only when args are refused.
func k6ChildMain(args []string) int {
	if err := k6.Child(args, k6cmd.Execute); err != nil {
		fmt.Fprintln(os.Stderr, "loadcap k6-child:", err)
		return int(cli.ExitInvalid)
	}
	return int(cli.ExitOK)
}

// k6FindStep runs capacity find's steps with a k6 script: each step is a
// constant-arrival-rate scenario replacing the script's own, driving its
// default function. The rate is iterations per second, so the script must
// make one request per iteration; a step that does otherwise is an error.
func k6FindStep(script string, args []string, drillID string, stderr io.Writer) func(context.Context, capacity.StepLoad) (*loadgen.Result, error) {
	return func(ctx context.Context, load capacity.StepLoad) (*loadgen.Result, error) {
		rate, unit := int64(math.Round(load.Rate)), "1s"
		if math.Abs(load.Rate-math.Round(load.Rate)) > 1e-9 {
			rate, unit = int64(math.Round(load.Rate*100)), "100s"
		}
		step := map[string]any{"step": map[string]any{
			"executor": "constant-arrival-rate", "rate": rate, "timeUnit": unit,
			"duration":        load.Duration.String(),
			"preAllocatedVUs": load.PreAllocatedVUs, "maxVUs": max(load.MaxVUs, load.PreAllocatedVUs),
			"gracefulStop": load.GracefulStop.String(),
		}}
		js, err := json.Marshal(step)
		if err != nil {
			return nil, err
		}
		r, err := k6.New(script, k6.WithArgs(append(append([]string{}, args...), "--summary-mode=disabled")...),
			k6.WithDrillID(drillID), k6.WithScenarios(js), k6.WithOutput(io.Discard, stderr))
		if err != nil {
			return nil, cli.WithCode(cli.ExitUsage, err)
		}
		out, err := r.Run(ctx)
		if err != nil {
			return nil, err
		}
		if out.Result == nil || (out.ExitCode != 0 && out.ExitCode != int(cli.ExitThresholds)) {
			return nil, cli.WithCode(cli.Code(out.ExitCode), fmt.Errorf("k6 exited with code %d: %s", out.ExitCode, out.Err))
		}
		var iters int64
		for _, it := range out.Iterations {
			iters += it.Count
		}
		reqs := out.Result.Totals.Completed + out.Result.Totals.Failed
		if iters > 0 && math.Abs(float64(reqs)/float64(iters)-1) > 0.02 {
			return nil, cli.WithCode(cli.ExitUsage, fmt.Errorf("capacity find with a k6 script: %s made %d requests in %d iterations; "+
				"the step rate is iterations per second, so the script must make one request per iteration", script, reqs, iters))
		}
		return out.Result, nil
	}
}

// runK6File runs a scenario file whose requests come from a k6 script
// (k6: {script: ...}): the file's scenarios replace the script's, its
// thresholds are evaluated by loadcap besides the script's, and its
// drill_id is the shadow tag the script gets.
func runK6File(cmd *cobra.Command, st *state, c *runConfig, f *scenarios.File, o execOptions) error {
	if len(c.cluster.agents) > 0 {
		return usageErr("--agents: a scenario file driving a k6 script runs locally only; run the script itself with --agents")
	}
	if c.k6.drillID != "" && f.DrillID != "" && c.k6.drillID != f.DrillID {
		return usageErr("--drill-id %q differs from %s's drill_id %q", c.k6.drillID, f.Path, f.DrillID)
	}
	for _, th := range f.Thresholds {
		if th.Metric == "grpc_req_duration" {
			return cli.WithCode(cli.ExitInvalid, &scenarios.Error{File: f.Path, Pos: th.Pos, Path: "thresholds." + th.Key(),
				Msg: "grpc_req_duration of a k6 script is judged by k6: put the threshold in the script's options"})
		}
	}
	drill := f.DrillID
	if drill == "" {
		drill = c.k6.drillID
	}
	cfgs := map[string]any{}
	for _, sc := range f.Scenarios {
		cfgs[sc.Name] = sc.Config
	}
	js, err := json.Marshal(cfgs)
	if err != nil {
		return fmt.Errorf("%s: scenarios for k6: %w", f.Path, err)
	}
	if err := k6.CheckArgs(c.k6.args); err != nil {
		return cli.WithCode(cli.ExitUsage, err)
	}
	return executeK6(cmd.Context(), st, f.K6Script, c.k6.args, drill, f.Thresholds, o, k6.WithScenarios(js))
}

// syncWriter serializes writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
