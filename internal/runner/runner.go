// Package runner builds the one loadgen.Runner a run needs from its
// configuration: the engine in this process for a scenario file, a
// coordinator over agents (--agents), or k6 in a child process for a
// script, here or on the agents. Every command that generates load (run,
// drill, capacity find, demo) builds its load here, so that the policy of
// a run (the shadow tag on replays, untagged replays only to loopback,
// what runs on agents) and its accounting (a recording that stopped
// reading, malformed records, k6's own exit code) hold on every path.
//
// Signals are the caller's: it forwards them to Stop and Kill (see
// internal/cli's Stopper).
package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/loadcap/loadcap/internal/capture"
	"github.com/loadcap/loadcap/internal/cli"
	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/loadgen/cluster"
	"github.com/loadcap/loadcap/loadgen/k6"
	"github.com/loadcap/loadcap/loadgen/live"
	"github.com/loadcap/loadcap/scenarios"
)

// Config is what a run is built from. Exactly one of File and Script is
// set.
type Config struct {
	// File is the load of a scenario file (or of ad hoc flags).
	File *scenarios.File
	// Source is File as written, shipped to agents; nil reads File.Path.
	Source []byte
	// Script is a k6 script (.js) or k6 archive (.tar), run by k6 in a
	// child process; K6Args are more "k6 run" arguments, K6Options more
	// options of the child (k6.WithScenarios for a scenario file that
	// drives a script), DrillID the shadow tag its requests carry and
	// Thresholds loadcap's own thresholds, judged besides the script's.
	Script     string
	K6Args     []string
	K6Options  []k6.Option
	DrillID    string
	Thresholds []scenarios.Threshold

	// Agents runs the load on agents; nil (or no agents) runs it here.
	Agents *cluster.CoordinatorConfig
	// Target re-aims a scenario file run on agents at this base URL.
	Target string

	// NoTag replays a recording without the shadow tag: refused unless
	// the target and every host the rewrite rules send to are loopback.
	NoTag bool
	// Replay is a recording the caller opened (a drill's); nil opens
	// File's own.
	Replay loadgen.ReplaySource

	Progress io.Writer // the progress line or lines; nil for none
	Live     bool      // Progress is a terminal: one live line
	// Stderr gets notices (malformed records skipped, k6's own output and
	// log); nil discards them.
	Stderr io.Writer
	// OnStart is called once with the load's time zero, before the first
	// request; OnInterval after every closed 1-second interval (merged
	// over agents, for a k6 script too). Both optional.
	OnStart    func(time.Time)
	OnInterval func(loadgen.Interval)
	// Metrics, when set, get every closed interval (merged over agents)
	// and, on agents, the agents' count: the live metrics of
	// --metrics-listen and --out prometheus-rw (loadgen/live).
	Metrics *live.Metrics
	// KeepIntervals, when positive, keeps only about the last so many
	// closed intervals in the engine's memory (loadgen.WithIntervalRetention):
	// for a caller whose OnInterval streams them to disk, so that a run of
	// any length costs flat memory; a coordinator's merger keeps as few,
	// for a scenario file and a k6 script alike.
	KeepIntervals int
}

// Run is a built run: a loadgen.Runner, plus what its kind adds once it
// ran (the cluster's report, k6's outcome). Close it when done.
type Run struct {
	runner  loadgen.Runner
	onStart func(time.Time)
	replay  *capture.ReplaySource // opened here; nil otherwise
	stderr  io.Writer
	cleanup []func()

	coordinator *cluster.Runner
	script      *k6.ScriptRunner
	scriptPath  string // the script as the user named it
}

var _ loadgen.Runner = (*Run)(nil)

// New builds the run cfg describes. Its errors carry exit codes
// (internal/cli): 2 for flags that do not fit together, 104 for files
// that cannot be read or parsed.
func New(ctx context.Context, cfg Config) (*Run, error) {
	r := &Run{stderr: cfg.Stderr, onStart: cfg.OnStart}
	if r.stderr == nil {
		r.stderr = io.Discard
	}
	distributed := cfg.Agents != nil && len(cfg.Agents.Agents) > 0
	var err error
	switch {
	case cfg.Script != "" && distributed:
		err = r.k6Agents(ctx, cfg)
	case cfg.Script != "":
		err = r.k6Here(cfg)
	case cfg.File == nil:
		err = cli.WithCode(cli.ExitUsage, errors.New("nothing to run: no scenario and no script"))
	case distributed:
		err = r.fileAgents(cfg)
	default:
		err = r.fileHere(cfg)
	}
	if err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// fileHere runs a scenario file with the engine in this process.
func (r *Run) fileHere(cfg Config) error {
	f := cfg.File
	var opts []loadgen.Option
	if cfg.Progress != nil {
		opts = append(opts, loadgen.WithProgress(cfg.Progress, cfg.Live))
	}
	if hook := cfg.Metrics.Hook(cfg.OnInterval); hook != nil {
		opts = append(opts, loadgen.WithIntervalHook(hook))
	}
	if cfg.KeepIntervals > 0 {
		opts = append(opts, loadgen.WithIntervalRetention(cfg.KeepIntervals))
	}
	switch {
	case cfg.Replay != nil:
		opts = append(opts, loadgen.WithReplay(cfg.Replay))
	case f.Replay != nil:
		src, err := OpenReplay(f, cfg.NoTag, cfg.Progress)
		if err != nil {
			return err
		}
		r.replay = src
		r.cleanup = append(r.cleanup, func() { src.Close() })
		opts = append(opts, loadgen.WithReplay(src))
	}
	eng, err := loadgen.New(f, opts...)
	if err != nil {
		return cli.WithCode(cli.ExitInvalid, err)
	}
	r.runner = eng
	return nil
}

// fileAgents runs a scenario file on agents.
func (r *Run) fileAgents(cfg Config) error {
	f := cfg.File
	if f.Path == "" {
		return cli.WithCode(cli.ExitUsage, errors.New("--agents needs a scenario file: agents run the file, not ad hoc flags"))
	}
	if f.K6Script != "" {
		return cli.WithCode(cli.ExitUsage, errors.New("--agents: a scenario file driving a k6 script runs locally only; run the script itself with --agents"))
	}
	if f.Replay != nil {
		if cfg.NoTag {
			return cli.WithCode(cli.ExitUsage, errors.New("--no-tag applies to local runs: agents replay the file as written, tagged"))
		}
		if err := CheckTag(f, false); err != nil {
			return err
		}
		if err := capture.PrepareReplay(f, capture.ReplayConfig{}); err != nil {
			return err
		}
	}
	var plan *cluster.Plan
	var err error
	if cfg.Source != nil {
		plan, err = cluster.NewPlanSource(f, cfg.Source, cfg.Target)
	} else {
		plan, err = cluster.NewPlan(f, cfg.Target)
	}
	if err != nil {
		return cli.WithCode(cli.ExitInvalid, err)
	}
	cc := *cfg.Agents
	cc.OnStart, cc.OnInterval = cfg.OnStart, cfg.OnInterval
	cc.KeepIntervals = cfg.KeepIntervals
	if cfg.Metrics != nil {
		cc.Metrics = cfg.Metrics
	}
	if cfg.Progress != nil {
		cc.Progress, cc.Live = cfg.Progress, cfg.Live
	}
	co, err := cluster.NewCoordinator(f, plan, cc)
	if err != nil {
		return cli.WithCode(cli.ExitUsage, err)
	}
	r.coordinator = &cluster.Runner{Coordinator: co}
	r.runner = r.coordinator
	r.onStart = nil // the coordinator calls it when the agents start together
	return nil
}

// k6Opts are the child's options common to every script run.
func k6Opts(cfg Config) []k6.Option {
	opts := []k6.Option{
		k6.WithArgs(cfg.K6Args...),
		k6.WithDrillID(cfg.DrillID),
		k6.WithThresholds(cfg.Thresholds),
		k6.WithIntervalRetention(cfg.KeepIntervals),
	}
	if cfg.Progress != nil {
		opts = append(opts, k6.WithProgress(cfg.Progress, cfg.Live))
	}
	if on, m := cfg.OnInterval, cfg.Metrics; on != nil || m != nil {
		opts = append(opts, k6.WithIntervalHook(func(iv loadgen.Interval) {
			if m != nil {
				m.Observe(iv)
			}
			if on != nil {
				on(iv)
			}
		}))
	}
	return opts
}

// k6Here runs a script in a k6 child of this process. k6's end-of-test
// summary and log go to Stderr, so stdout keeps loadcap's summary alone.
func (r *Run) k6Here(cfg Config) error {
	opts := append(k6Opts(cfg), k6.WithOutput(r.stderr, r.stderr))
	opts = append(opts, cfg.K6Options...)
	kr, err := k6.New(cfg.Script, opts...)
	if err != nil {
		return cli.WithCode(cli.ExitUsage, err)
	}
	r.script = &k6.ScriptRunner{Runner: kr}
	r.runner = r.script
	r.scriptPath = cfg.Script
	return nil
}

// k6Agents archives a script (k6 archive, in the child) and runs the
// archive over the agents, each with its execution segment; their k6
// streams merge into one outcome.
func (r *Run) k6Agents(ctx context.Context, cfg Config) error {
	if len(cfg.K6Options) > 0 {
		return cli.WithCode(cli.ExitUsage, errors.New("--agents runs a k6 script as written: not with a scenario file's scenarios"))
	}
	if err := cluster.CheckK6Args(cfg.K6Args); err != nil {
		return cli.WithCode(cli.ExitUsage, fmt.Errorf("--agents: %w", err))
	}
	archive := cfg.Script
	if !strings.EqualFold(filepath.Ext(cfg.Script), ".tar") {
		dir, err := os.MkdirTemp("", "loadcap-k6-archive-")
		if err != nil {
			return err
		}
		r.cleanup = append(r.cleanup, func() { os.RemoveAll(dir) })
		archive = filepath.Join(dir, "test.tar")
		if err := k6.Archive(ctx, cfg.Script, archive, k6.WithArgs(cfg.K6Args...), k6.WithOutput(io.Discard, r.stderr)); err != nil {
			return cli.WithCode(cli.ExitInvalid, err)
		}
	}
	data, err := os.ReadFile(archive)
	if err != nil {
		return cli.WithCode(cli.ExitInvalid, err)
	}
	cc := *cfg.Agents
	if cfg.Progress != nil {
		cc.Progress, cc.Live = cfg.Progress, cfg.Live
	}
	if cfg.Metrics != nil {
		cc.Metrics = cfg.Metrics
	}
	cc.OnInterval = cfg.OnInterval
	cc.KeepIntervals = cfg.KeepIntervals
	co, err := cluster.NewK6Coordinator(&cluster.K6Plan{
		Name: filepath.Base(cfg.Script), Archive: data, Args: cfg.K6Args, DrillID: cfg.DrillID, Thresholds: cfg.Thresholds,
	}, cc)
	if err != nil {
		return cli.WithCode(cli.ExitUsage, err)
	}
	r.coordinator = &cluster.Runner{Coordinator: co}
	r.runner = r.coordinator
	return nil
}

// exitScriptException is k6's exit code for a script that threw
// (go.k6.io/k6/errext/exitcodes.ScriptException).
const exitScriptException = 107

// Run generates the load (see loadgen.Runner). A recording that stopped
// reading early fails the run after it returned its result (exit 1); a
// k6 that ended before its test started returns no result and k6's exit
// code, but for a script k6 could not load: that is invalid input (104),
// as validate finds it.
func (r *Run) Run(ctx context.Context) (_ *loadgen.Result, runErr error) {
	if r.replay != nil {
		defer func() {
			if m := r.replay.Malformed(); m.Count > 0 {
				fmt.Fprintf(r.stderr, "replay: %d malformed records skipped:\n%v\n", m.Count, m.Err())
			}
			if err := r.replay.Err(); err != nil && runErr == nil {
				runErr = cli.WithCode(cli.ExitToolError, fmt.Errorf("replay: reading the recording stopped early: %w", err))
			}
		}()
	}
	if r.onStart != nil {
		r.onStart(time.Now())
	}
	res, err := r.runner.Run(ctx)
	if r.script != nil && err != nil && r.script.Outcome != nil && r.script.Outcome.Result == nil {
		o := r.script.Outcome
		if o.ExitCode == exitScriptException {
			// k6 could not load the script (a syntax error, an import
			// that does not resolve, an exception in its init code): the
			// file is invalid input, as validate says. k6's 107 stays for
			// an exception once the test started (setup, teardown).
			return nil, cli.WithCode(cli.ExitInvalid, fmt.Errorf("%s: k6 could not load the script: %s", r.scriptPath, o.Err))
		}
		return nil, cli.WithCode(cli.Code(o.ExitCode), fmt.Errorf("k6 exited with code %d: %s", o.ExitCode, o.Err))
	}
	if r.coordinator != nil && err == nil && res == nil && r.coordinator.Outcome != nil {
		o := r.coordinator.Outcome
		return nil, cli.WithCode(cli.Code(o.ExitCode), fmt.Errorf("k6 exited with code %d: %s", o.ExitCode, o.Err))
	}
	return res, err
}

// Stop ends the run gracefully.
func (r *Run) Stop(cause, reason string) { r.runner.Stop(cause, reason) }

// Kill ends the run at once.
func (r *Run) Kill(cause, reason string) { r.runner.Kill(cause, reason) }

// Cluster is the agents' report of a distributed run, once Run returned;
// nil for a run in this process.
func (r *Run) Cluster() *cluster.Report {
	if r.coordinator == nil {
		return nil
	}
	return r.coordinator.Report
}

// K6 is k6's own ending of a script run (its exit code, error and
// iterations), once Run returned; nil for a scenario file.
func (r *Run) K6() *k6.Outcome {
	switch {
	case r.script != nil:
		return r.script.Outcome
	case r.coordinator != nil:
		return r.coordinator.Outcome
	}
	return nil
}

// Close releases what New opened: the recording, a script's archive.
func (r *Run) Close() {
	for _, c := range slices.Backward(r.cleanup) {
		c()
	}
	r.cleanup = nil
}

// OpenReplay opens a file's recording in this process. Every replayed
// request carries the drill's shadow tag; noTag (untagged) is refused
// unless the target and every host the rewrite rules send to are loopback.
func OpenReplay(f *scenarios.File, noTag bool, progress io.Writer) (*capture.ReplaySource, error) {
	if err := CheckTag(f, noTag); err != nil {
		return nil, err
	}
	src, err := capture.NewReplaySource(f, capture.ReplayConfig{Progress: progress})
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, cli.WithCode(cli.ExitInvalid, err)
		}
		return nil, err
	}
	if noTag {
		// Rewrite rules may send requests elsewhere than the target.
		for _, h := range src.Hosts() {
			if !LoopbackURL("http://" + h) {
				src.Close()
				return nil, cli.WithCode(cli.ExitUsage, fmt.Errorf("--no-tag replays production traffic untagged: refused, the rewrite rules send requests to %s (only loopback)", h))
			}
		}
	}
	return src, nil
}

// CheckTag enforces the shadow tag on a replay: drill_id is required, and
// noTag (which removes the tag from f) is refused unless the target is
// loopback.
func CheckTag(f *scenarios.File, noTag bool) error {
	switch {
	case noTag && !LoopbackURL(f.Target):
		return cli.WithCode(cli.ExitUsage, fmt.Errorf("--no-tag replays production traffic untagged: refused for %s (only against loopback)", f.Target))
	case noTag:
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

// LoopbackURL reports whether u's host is a loopback address or localhost.
func LoopbackURL(u string) bool {
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

// SyncWriter serializes writes to W: a writer that the k6 child's output,
// progress and signal notices reach from different goroutines.
type SyncWriter struct {
	mu sync.Mutex
	W  io.Writer
}

// Write writes p to W, one call at a time.
func (s *SyncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.W.Write(p)
}

// ScriptFile is the run of a scenario file whose requests come from a k6
// script (k6: {script: ...}): the file's scenarios replace the script's,
// its thresholds are judged by loadcap besides the script's, and drillID
// is the shadow tag the script gets.
func ScriptFile(f *scenarios.File, drillID string, k6Args []string) (Config, error) {
	for _, th := range f.Thresholds {
		if th.Metric == "grpc_req_duration" {
			return Config{}, cli.WithCode(cli.ExitInvalid, &scenarios.Error{File: f.Path, Pos: th.Pos, Path: "thresholds." + th.Key(),
				Msg: "grpc_req_duration of a k6 script is judged by k6: put the threshold in the script's options"})
		}
	}
	cfgs := map[string]any{}
	for _, sc := range f.Scenarios {
		cfgs[sc.Name] = sc.Config
	}
	js, err := json.Marshal(cfgs)
	if err != nil {
		return Config{}, fmt.Errorf("%s: scenarios for k6: %w", f.Path, err)
	}
	if err := k6.CheckArgs(k6Args); err != nil {
		return Config{}, cli.WithCode(cli.ExitUsage, err)
	}
	return Config{Script: f.K6Script, K6Args: k6Args, DrillID: drillID, Thresholds: f.Thresholds,
		K6Options: []k6.Option{k6.WithScenarios(js)}}, nil
}
