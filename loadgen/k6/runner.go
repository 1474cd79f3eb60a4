package k6

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/scenarios"
)

// exitExternalAbort is k6's exit code for a test stopped by a signal
// (go.k6.io/k6/errext/exitcodes).
const exitExternalAbort = 105

// DefaultKillAfter is how long Kill waits for k6 to exit after its second
// SIGINT before it kills the child outright.
const DefaultKillAfter = 5 * time.Second

// Outcome is how a k6 run ended.
type Outcome struct {
	// Result is what loadcap measured, as for a YAML scenario: series per
	// scenario and request name (k6's name tag, the URL by default),
	// intervals, histograms, and the thresholds: the caller's
	// (WithThresholds) evaluated by loadcap, then each of the script's
	// with k6's own verdict and value. nil when k6 stopped before the test
	// started (a syntax error, invalid options): see ExitCode and Err.
	Result *loadgen.Result
	// ExitCode is k6's exit code: 0, 99 thresholds failed, 104 invalid
	// configuration, 105 aborted by a signal, 107 script exception, 108
	// test.abort(), 110 marked as failed, ...
	ExitCode int
	// Err is k6's error when ExitCode is not 0, as k6 logged it.
	Err string
	// Iterations are per scenario (setup and teardown apart).
	Iterations []Iterations
	// Checks are k6's checks by group and name, sorted.
	Checks []Check
}

// Iterations counts one scenario's completed iterations.
type Iterations struct {
	Scenario string
	Count    int64
	Duration *hdr.Histogram // iteration_duration, µs
}

// Check is one of the script's checks.
type Check struct {
	Group, Name   string
	Passes, Fails int64
}

type options struct {
	args       []string
	drillID    string
	segment    string
	sequence   string
	thresholds []scenarios.Threshold
	progress   io.Writer
	live       bool
	stdout     io.Writer
	stderr     io.Writer
	command    []string
	env        []string
	hook       func(loadgen.Interval)
	keep       int
	killAfter  time.Duration
	scenarios  json.RawMessage
	frames     func(line []byte)
	noSysEnv   bool
	noBrowser  bool
	noRemote   bool
}

// Option tunes a Runner.
type Option func(*options)

// WithArgs passes more "k6 run" flags through (--vus, --duration, -e K=V,
// --summary-export FILE, --out json=FILE, ...). The REST API, the usage
// report and automatic extension resolution stay off whatever they say.
func WithArgs(args ...string) Option {
	return func(o *options) { o.args = append(o.args, args...) }
}

// WithDrillID tags the run: the script sees the id as
// __ENV.LOADCAP_DRILL_ID and gets the tag headers from the k6/x/loadcap
// module (ModuleName). Without it the run is untagged.
func WithDrillID(id string) Option { return func(o *options) { o.drillID = id } }

// WithSegment runs only an execution segment of the test (k6's
// --execution-segment and --execution-segment-sequence), so that N agents
// run one test exactly once.
func WithSegment(segment, sequence string) Option {
	return func(o *options) { o.segment, o.sequence = segment, sequence }
}

// WithThresholds adds loadcap's own thresholds, evaluated on the merged
// result like a scenario file's (abortOnFail stops the child); k6 still
// enforces the script's.
func WithThresholds(t []scenarios.Threshold) Option {
	return func(o *options) { o.thresholds = t }
}

// WithProgress writes loadcap's progress line to w after every interval,
// as loadgen.WithProgress does.
func WithProgress(w io.Writer, live bool) Option {
	return func(o *options) { o.progress, o.live = w, live }
}

// WithIntervalHook calls fn after every merged interval, on the goroutine
// that reads the child.
func WithIntervalHook(fn func(loadgen.Interval)) Option {
	return func(o *options) { o.hook = fn }
}

// WithIntervalRetention keeps only about the last n merged intervals in
// the result, as loadgen.WithIntervalRetention does, for a caller whose
// interval hook streams them to disk; n ≤ 0 keeps them all.
func WithIntervalRetention(n int) Option {
	return func(o *options) { o.keep = n }
}

// WithOutput sends the child's stdout (k6's end-of-test summary) and
// stderr (k6's log, console.log) to these writers; nil discards.
func WithOutput(stdout, stderr io.Writer) Option {
	return func(o *options) { o.stdout, o.stderr = stdout, stderr }
}

// WithCommand sets how the child starts: argv runs Child with the k6
// arguments appended. The default is FindChild's: this executable's
// ChildCommand.
func WithCommand(argv ...string) Option { return func(o *options) { o.command = argv } }

// WithoutSystemEnv hides the environment of this process from the script:
// __ENV holds only what the k6 arguments (--env) and an archive declare,
// and LOADCAP_DRILL_ID (k6's --include-system-env-vars=false, placed after
// the caller's arguments so that it wins). An agent runs a coordinator's
// script this way.
func WithoutSystemEnv() Option { return func(o *options) { o.noSysEnv = true } }

// WithoutBrowser makes k6's browser modules (k6/browser,
// k6/experimental/browser) fail to load in the child, however the script
// names them: k6 resolves the name to a module that throws. An agent runs
// a coordinator's script this way, as the browser's own connections are
// not bound by --blacklist-ip.
func WithoutBrowser() Option { return func(o *options) { o.noBrowser = true } }

// WithoutRemoteModules makes the child fetch no module over the network:
// a script's imports come from its archive (k6 archive fetches remote
// imports it sees when it is made); a require() of an https URL computed
// at run time fails instead of reaching a host with Go's default client,
// which --blacklist-ip does not bind.
func WithoutRemoteModules() Option { return func(o *options) { o.noRemote = true } }

// WithEnv adds "KEY=value" entries to the child's environment.
func WithEnv(kv ...string) Option { return func(o *options) { o.env = append(o.env, kv...) } }

// WithScenarios replaces the script's scenarios with these, in k6's JSON
// form (name → executor config, as a scenarios.Scenario's Config
// marshals): a scenario file's workload driving a k6 script's functions.
// The child runs a wrapper module that re-exports the script with the
// options changed; the script's execution shortcuts (vus, duration,
// iterations, stages) are dropped. Not for archives (.tar).
func WithScenarios(scenarios json.RawMessage) Option {
	return func(o *options) { o.scenarios = scenarios }
}

// WithFrames calls fn with every frame of the child's stream (one JSON
// line, without its newline) before the Runner merges it, on the goroutine
// that reads the child: an agent forwards them to its coordinator, whose
// Merge takes them. fn must not keep line after it returns.
func WithFrames(fn func(line []byte)) Option { return func(o *options) { o.frames = fn } }

// WithKillAfter sets how long Kill waits before killing the child
// outright (DefaultKillAfter).
func WithKillAfter(d time.Duration) Option { return func(o *options) { o.killAfter = d } }

// Runner runs one k6 script in a child process (ChildCommand) and merges
// what the child streams back into a loadgen.Result. Create it with New, run it once with Run; Stop and Kill
// may be called from any goroutine.
type Runner struct {
	script string
	o      options
	argv   []string
	env    []string

	mu      sync.Mutex
	proc    *os.Process
	exited  bool
	signals int // SIGINTs sent
	want    int // SIGINTs asked for
	cause   string
	reason  string
}

// New checks the script and options and prepares the child's command line.
func New(script string, opts ...Option) (*Runner, error) {
	o := options{killAfter: DefaultKillAfter}
	for _, fn := range opts {
		fn(&o)
	}
	if script == "" || script == "-" {
		return nil, errors.New("k6: no script to run")
	}
	if err := CheckArgs(o.args); err != nil {
		return nil, err
	}
	if o.drillID != "" && !scenarios.ValidDrillID(o.drillID) {
		return nil, fmt.Errorf("k6: invalid drill id %q", o.drillID)
	}
	if o.scenarios != nil {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(o.scenarios, &m); err != nil || len(m) == 0 {
			return nil, fmt.Errorf("k6: scenarios: want a non-empty JSON object of executor configs, got %.80s", o.scenarios)
		}
		if strings.HasSuffix(strings.ToLower(script), ".tar") {
			return nil, errors.New("k6: scenarios cannot replace an archive's")
		}
	}
	if o.segment != "" || o.sequence != "" {
		if _, err := loadgen.NewSegment(o.segment, o.sequence); err != nil {
			return nil, fmt.Errorf("k6: %w", err)
		}
	}
	if len(o.command) == 0 {
		argv, err := FindChild()
		if err != nil {
			return nil, err
		}
		o.command = argv
	}
	r := &Runner{script: script, o: o}
	// loadcap shows its own progress: k6's bars would only repeat it.
	r.argv = append(append([]string{}, o.command...), "--quiet")
	r.argv = append(r.argv, o.args...)
	if o.noSysEnv {
		r.argv = append(r.argv, "--include-system-env-vars=false")
	}
	r.argv = append(r.argv, "--env", EnvDrillID+"="+o.drillID)
	if o.segment != "" {
		r.argv = append(r.argv, "--execution-segment", o.segment)
	}
	if o.sequence != "" {
		r.argv = append(r.argv, "--execution-segment-sequence", o.sequence)
	}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != EnvDrillID && k != EnvFD && k != EnvNoBrowser && k != EnvNoRemoteModules {
			r.env = append(r.env, kv)
		}
	}
	r.env = append(r.env, o.env...)
	if o.noBrowser {
		r.env = append(r.env, EnvNoBrowser+"=1")
	}
	if o.noRemote {
		r.env = append(r.env, EnvNoRemoteModules+"=1")
	}
	for k, v := range childEnv {
		r.env = append(r.env, k+"="+v)
	}
	r.env = append(r.env, EnvFD+"=3", EnvDrillID+"="+o.drillID)
	return r, nil
}

// FindChild returns the command line that starts the child: this
// executable (loadcap) with ChildCommand.
func FindChild() ([]string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("k6: cannot find loadcap's own executable to run k6 in: %w", err)
	}
	return []string{exe, ChildCommand}, nil
}

// Args returns the child's command line, the script last (with
// WithScenarios, Run replaces it with its wrapper).
func (r *Runner) Args() []string { return append(append([]string{}, r.argv...), scriptArg(r.script)) }

// scriptArg keeps a script named "-x.js" from reading as a flag.
func scriptArg(script string) string {
	if strings.HasPrefix(script, "-") {
		return "./" + script
	}
	return script
}

// wrap writes the module that runs the script with the scenarios of
// WithScenarios into dir and returns its path.
func (r *Runner) wrap(dir string) (string, error) {
	abs, err := filepath.Abs(r.script)
	if err != nil {
		return "", err
	}
	u := (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String()
	q, _ := json.Marshal(u)
	src := fmt.Sprintf(`// Written by loadcap: %[1]s with a scenario file's scenarios.
import * as user from %[1]s;
export * from %[1]s;
export default user.default;
const o = Object.assign({}, user.options);
for (const k of ['vus', 'duration', 'iterations', 'stages']) delete o[k];
o.scenarios = %[2]s;
export const options = o;
`, q, r.o.scenarios)
	p := filepath.Join(dir, "loadcap-"+strings.TrimSuffix(filepath.Base(abs), filepath.Ext(abs))+".js")
	if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
		return "", fmt.Errorf("k6: write the scenarios wrapper: %w", err)
	}
	return p, nil
}

// Stop ends the run early and gracefully: the child gets SIGINT, which k6
// takes as Ctrl+C (iterations are interrupted, teardown runs, thresholds
// and outputs are finalized). The result is aborted with cause and reason.
func (r *Runner) Stop(cause, reason string) { r.interrupt(1, cause, reason) }

// Kill ends the run at once: a second SIGINT, on which k6 exits without
// finishing, then SIGKILL if the child is still there after the kill delay.
func (r *Runner) Kill(cause, reason string) { r.interrupt(2, cause, reason) }

func (r *Runner) interrupt(n int, cause, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cause == "" {
		r.cause, r.reason = cause, reason
	}
	r.want = max(r.want, n)
	r.signalLocked()
}

// signalLocked sends the SIGINTs asked for and not sent yet, once the
// child runs; with the second it arms the kill timer.
func (r *Runner) signalLocked() {
	if r.proc == nil || r.exited {
		return
	}
	for r.signals < r.want {
		_ = interrupt(r.proc)
		r.signals++
		if r.signals == 2 {
			p := r.proc
			time.AfterFunc(r.o.killAfter, func() {
				r.mu.Lock()
				defer r.mu.Unlock()
				if !r.exited {
					_ = p.Kill()
				}
			})
		}
		if r.signals < r.want {
			// k6 counts signals as they reach its handler: give the
			// first one time to arrive before the second.
			r.mu.Unlock()
			time.Sleep(50 * time.Millisecond)
			r.mu.Lock()
		}
	}
}

// Run starts the child, merges what it streams until it exits, and returns
// how the run ended. k6 failing (a syntax error, failed thresholds, an
// exception) is not an error: it is in the Outcome. The error is for
// loadcap's own failures (the child cannot start, its stream is corrupt).
// Canceling ctx kills the run.
func (r *Runner) Run(ctx context.Context) (*Outcome, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("k6: pipe: %w", err)
	}
	defer pr.Close()
	tail := &tailWriter{w: r.o.stderr, max: 16 << 10}
	script := scriptArg(r.script)
	if r.o.scenarios != nil {
		dir, err := os.MkdirTemp("", "loadcap-k6-")
		if err != nil {
			return nil, fmt.Errorf("k6: %w", err)
		}
		defer os.RemoveAll(dir)
		if script, err = r.wrap(dir); err != nil {
			return nil, err
		}
	}
	argv := append(append([]string{}, r.argv...), script)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = r.env
	cmd.ExtraFiles = []*os.File{pw} // fd 3
	cmd.Stdout = r.o.stdout
	if cmd.Stdout == nil {
		cmd.Stdout = io.Discard
	}
	cmd.Stderr = tail
	cmd.SysProcAttr = sysProcAttr()

	col := &collector{
		path: r.script, thresholds: r.o.thresholds, live: r.o.live, hook: r.o.hook, stop: r.Stop, keep: r.o.keep,
		iters: map[string]*Iterations{}, checks: map[checkKey]*Check{}, frameHook: r.o.frames,
	}
	if r.o.progress != nil {
		col.progress = &muteWriter{w: r.o.progress}
	}

	// The child is started and waited for on one locked OS thread: the
	// parent-death signal fires when the thread that forked exits.
	started := make(chan error, 1)
	waited := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		waited <- cmd.Wait()
	}()
	err = <-started
	pw.Close() // the child holds its own copy
	if err != nil {
		return nil, fmt.Errorf("k6: start the child: %w", err)
	}
	r.mu.Lock()
	r.proc = cmd.Process
	r.signalLocked() // a Stop that came before the start
	r.mu.Unlock()

	read := make(chan error, 1)
	go func() {
		err := col.read(pr)
		if err != nil {
			r.Kill(CauseScript, err.Error())
			_, _ = io.Copy(io.Discard, pr) // let the child finish writing
		}
		read <- err
	}()
	var werr error
	select {
	case werr = <-waited:
	case <-ctx.Done():
		r.Kill(loadgen.CauseSignal, "context: "+context.Cause(ctx).Error())
		werr = <-waited
	}
	r.mu.Lock()
	r.exited = true
	sent, cause, reason := r.signals, r.cause, r.reason
	r.mu.Unlock()
	if rerr := <-read; rerr != nil {
		return nil, rerr
	}

	exit, k6err := 0, ""
	var ee *exec.ExitError
	switch {
	case werr == nil:
	case errors.As(werr, &ee):
		exit = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			exit = 1
			k6err = fmt.Sprintf("k6 child killed by %s", ws.Signal())
			if sent > 0 {
				exit = exitExternalAbort
			}
		}
	default:
		return nil, fmt.Errorf("k6: wait for the child: %w", werr)
	}
	if exit != 0 && k6err == "" {
		k6err = tail.lastError()
		if col.final != nil && col.final.Error != "" {
			k6err = col.final.Error
		}
		if k6err == "" {
			k6err = fmt.Sprintf("k6 exited with code %d", exit)
		}
	}
	return col.outcome(exit, cause, reason, k6err), nil
}

// tailWriter passes the child's stderr through and keeps its end, to find
// k6's last error message.
type tailWriter struct {
	w   io.Writer
	max int
	mu  sync.Mutex
	buf []byte
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	t.mu.Unlock()
	if t.w != nil {
		return t.w.Write(p)
	}
	return len(p), nil
}

var logfmtMsg = regexp.MustCompile(`\bmsg="((?:[^"\\]|\\.)*)"`)

// lastError returns the message of k6's last error log line (logfmt or
// JSON), "" when there is none.
func (t *tailWriter) lastError() string {
	t.mu.Lock()
	lines := strings.Split(string(t.buf), "\n")
	t.mu.Unlock()
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		var j struct{ Level, Msg string }
		if json.Unmarshal([]byte(l), &j) == nil && j.Level == "error" {
			return j.Msg
		}
		if !strings.Contains(l, "level=error") {
			continue
		}
		if m := logfmtMsg.FindStringSubmatch(l); m != nil {
			if s, err := strconv.Unquote(`"` + m[1] + `"`); err == nil {
				return s
			}
			return m[1]
		}
		return l
	}
	return ""
}
