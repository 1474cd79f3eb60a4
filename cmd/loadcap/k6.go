package main

import (
	"fmt"
	"os"
	"slices"
	"strconv"

	"github.com/spf13/cobra"
	k6cmd "go.k6.io/k6/cmd"

	"github.com/loadcap/loadcap/internal/cli"
	"github.com/loadcap/loadcap/internal/runner"
	"github.com/loadcap/loadcap/loadgen"
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
	drill := f.DrillID
	if drill == "" {
		drill = c.k6.drillID
	}
	rc, err := runner.ScriptFile(f, drill, c.k6.args)
	if err != nil {
		return err
	}
	return execute(cmd.Context(), st, rc, o)
}
