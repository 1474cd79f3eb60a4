package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/loadcap/loadcap/loadgen/target"
	"github.com/loadcap/loadcap/test/testkit"
)

// process is loadcap running as a process of its own.
type process struct {
	cmd            *exec.Cmd
	stdout, stderr testkit.SyncBuffer
	done           chan struct{}
	code           int // valid once done is closed; -1 when a signal killed it
}

// startLoadcap starts the loadcap executable (this test binary as main)
// with args; it is killed when the test ends.
func startLoadcap(t *testing.T, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(os.Args[0], args...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), asLoadcapEnv+"=1") // TestMain runs main: real signal handling
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := p.cmd.Wait()
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee):
			p.code = ee.ExitCode()
		default:
			p.code = -2
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// signal sends sig to the process, unless it has exited.
func (p *process) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// exit waits up to d for the process's exit code.
func (p *process) exit(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(d):
		t.Fatalf("still running after %v\nstderr:\n%s", d, p.stderr.String())
		return 0
	}
}

// waitFor waits up to d until the process's stderr holds s.
func (p *process) waitFor(t *testing.T, s string, d time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(d); !strings.Contains(p.stderr.String(), s); time.Sleep(20 * time.Millisecond) {
		select {
		case <-p.done:
			t.Fatalf("exited %d before saying %q\nstderr:\n%s", p.code, s, p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("did not say %q within %v\nstderr:\n%s", s, d, p.stderr.String())
		}
	}
}

// endlessRecording is a FIFO fed nginx log lines, one every millisecond,
// until the test ends: a recording that a command reads for ever (a
// `tail -f`, a slow network file system). opened is closed once the
// command has opened it.
func endlessRecording(t *testing.T, dir string) (path string, opened <-chan struct{}) {
	t.Helper()
	return recordingFIFO(t, dir, -1)
}

// recordingFIFO is a FIFO fed lines nginx log lines (-1: for ever), then
// held open without a byte more until the test ends: a pipe whose writer
// went quiet.
func recordingFIFO(t *testing.T, dir string, lines int) (path string, opened <-chan struct{}) {
	t.Helper()
	path = filepath.Join(dir, "access.log")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("no FIFO here: %v", err)
	}
	stop := make(chan struct{})
	fed := make(chan struct{})
	isOpen := make(chan struct{})
	go func() {
		defer close(fed)
		f, err := os.OpenFile(path, os.O_WRONLY, 0) // blocks until the command opens it
		if err != nil {
			return
		}
		defer f.Close()
		close(isOpen)
		w := bufio.NewWriter(f)
		for i := 0; i != lines; i++ {
			fmt.Fprintf(w, "127.0.0.1 - - [07/Dec/2026:05:00:%02d +0000] \"GET /item/%d HTTP/1.1\" 200 12 \"-\" \"curl\"\n", i%60, i)
			if w.Flush() != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
		<-stop
	}()
	t.Cleanup(func() {
		close(stop)
		// Unblock a writer still waiting for a reader.
		if f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
			defer f.Close()
		}
		<-fed
	})
	return path, isOpen
}

// reading waits until the command has opened the recording, and reads it.
func reading(t *testing.T, opened <-chan struct{}) {
	t.Helper()
	select {
	case <-opened:
		time.Sleep(200 * time.Millisecond)
	case <-time.After(20 * time.Second):
		t.Fatal("the command did not open the recording")
	}
}

// noTemporaryFiles fails when dir holds an atomic write's leftovers.
func noTemporaryFiles(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") || strings.HasPrefix(e.Name(), ".loadcap-check-") {
			t.Errorf("left behind in %s: %s", dir, e.Name())
		}
	}
}

// TestProcessCapacityFindSignals: the first SIGINT or SIGTERM ends the
// step in progress and writes what the steps done found, marked partial
// (exit 105); the second stops at once (exit 105).
func TestProcessCapacityFindSignals(t *testing.T) {
	t.Parallel()
	url := testTarget(t, target.Config{Workers: 2, ServiceTime: 2 * time.Millisecond})
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run("first "+sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "find.json")
			p := startLoadcap(t, findArgs(url, out)...)
			p.waitFor(t, "step  1 ramp", 20*time.Second) // into the second step
			start := time.Now()
			p.signal(t, sig)
			if code := p.exit(t, 15*time.Second); code != 105 {
				t.Fatalf("exit %d, want 105\nstderr:\n%s", code, p.stderr.String())
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v to stop: the step in progress went on", d)
			}
			if e := p.stderr.String(); !strings.Contains(e, "stopping gracefully") || !strings.Contains(e, "a partial result of") {
				t.Errorf("stderr:\n%s", e)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatalf("no partial result: %v", err)
			}
			if !bytes.Contains(b, []byte(`"partial": true`)) || !bytes.Contains(b, []byte("partial: the search was interrupted by "+sig.String())) {
				t.Errorf("find.json does not say it is partial:\n%.600s", b)
			}
			if steps, _ := readFind(t, out); steps < 1 {
				t.Errorf("find.json holds %d steps, want the steps done", steps)
			}
			if !strings.Contains(p.stdout.String(), "PARTIAL: the search was interrupted") {
				t.Errorf("the summary does not say it is partial:\n%s", p.stdout.String())
			}
			noTemporaryFiles(t, dir)
		})
	}
	t.Run("before the first step ended", func(t *testing.T) {
		// Nothing to keep: the previous find.json stays, byte for byte.
		var requests atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { requests.Add(1) }))
		t.Cleanup(srv.Close)
		dir := t.TempDir()
		out := filepath.Join(dir, "find.json")
		before := []byte("{\"max_qps\": 1234}\n")
		if err := os.WriteFile(out, before, 0o644); err != nil {
			t.Fatal(err)
		}
		args := append(findArgs(srv.URL, out), "--window", "30s")
		p := startLoadcap(t, args...)
		for deadline := time.Now().Add(20 * time.Second); requests.Load() < 5; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the first step sent nothing\n%s", p.stderr.String())
			}
		}
		p.signal(t, syscall.SIGINT)
		if code := p.exit(t, 15*time.Second); code != 105 {
			t.Fatalf("exit %d, want 105\nstderr:\n%s", code, p.stderr.String())
		}
		if !strings.Contains(p.stderr.String(), "a partial result of 0 steps; "+out+" is left as it was") {
			t.Errorf("stderr:\n%s", p.stderr.String())
		}
		if after, _ := os.ReadFile(out); !bytes.Equal(after, before) {
			t.Errorf("find.json changed: %.80q", after)
		}
		noTemporaryFiles(t, dir)
	})
	t.Run("second signal: at once", func(t *testing.T) {
		dir := t.TempDir()
		out := filepath.Join(dir, "find.json")
		p := startLoadcap(t, findArgs(url, out)...)
		p.waitFor(t, "step  1 ramp", 20*time.Second)
		p.signal(t, syscall.SIGTERM)
		p.waitFor(t, "stopping gracefully", 5*time.Second)
		p.signal(t, syscall.SIGTERM)
		if code := p.exit(t, 5*time.Second); code != 105 {
			t.Fatalf("exit %d, want 105\nstderr:\n%s", code, p.stderr.String())
		}
	})
}

// TestShadowImportSignalKeepsOutput: a signal stops the reading of a
// recording that never ends; the previous output is left byte for byte.
func TestShadowImportSignalKeepsOutput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "traffic.jsonl")
	before := []byte("{\"previous\":\"import\"}\n")
	if err := os.WriteFile(out, before, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		lines   int // -1: a recording that never ends; else a pipe that goes quiet after them
		signals []syscall.Signal
	}{
		{"one signal", -1, []syscall.Signal{syscall.SIGINT}},
		{"two signals", -1, []syscall.Signal{syscall.SIGTERM, syscall.SIGTERM}},
		{"one signal, a read waiting for data", 50, []syscall.Signal{syscall.SIGINT}},
	} {
		signals := tc.signals
		t.Run(tc.name, func(t *testing.T) {
			rec, opened := recordingFIFO(t, t.TempDir(), tc.lines)
			p := startLoadcap(t, "shadow", "import", rec, "--format", "nginx", "--out", out)
			reading(t, opened) // it cannot end by itself
			// Back to back, as a user presses Ctrl-C twice.
			for _, sig := range signals {
				p.signal(t, sig)
			}
			if code := p.exit(t, 5*time.Second); code != 105 {
				t.Fatalf("exit %d, want 105\nstderr:\n%s", code, p.stderr.String())
			}
			if !strings.Contains(p.stderr.String(), out+" is left as it was") {
				t.Errorf("stderr does not say the output was kept:\n%s", p.stderr.String())
			}
			if len(signals) == 1 && !strings.Contains(p.stderr.String(), "shadow import interrupted by "+signals[0].String()+" after ") {
				t.Errorf("the first signal did not stop the import gracefully:\n%s", p.stderr.String())
			}
			if after, _ := os.ReadFile(out); !bytes.Equal(after, before) {
				t.Errorf("--out changed: %.80q", after)
			}
			noTemporaryFiles(t, dir)
		})
	}
}

// TestProcessShortCommandsStopAtOnce: a command with no partial result to
// keep still stops on the first signal (it used to ignore it), at once;
// here validate of a file that never ends.
func TestProcessShortCommandsStopAtOnce(t *testing.T) {
	t.Parallel()
	rec, opened := endlessRecording(t, t.TempDir())
	p := startLoadcap(t, "validate", rec)
	reading(t, opened)
	p.signal(t, syscall.SIGINT)
	if code := p.exit(t, 5*time.Second); code != 105 {
		t.Fatalf("exit %d, want 105\nstderr:\n%s", code, p.stderr.String())
	}
	if !strings.Contains(p.stderr.String(), "interrupted by interrupt: stopped at once") {
		t.Errorf("stderr:\n%s", p.stderr.String())
	}
}

// TestProcessShadowInspectSignal: inspect of a pipe whose writer went
// quiet (it ignored SIGINT and waited for ever) summarizes what it read,
// headed PARTIAL, on the first signal.
func TestProcessShadowInspectSignal(t *testing.T) {
	t.Parallel()
	rec, opened := recordingFIFO(t, t.TempDir(), 50)
	p := startLoadcap(t, "shadow", "inspect", rec, "--format", "nginx")
	reading(t, opened)
	p.signal(t, syscall.SIGTERM)
	if code := p.exit(t, 5*time.Second); code != 105 {
		t.Fatalf("exit %d, want 105\nstderr:\n%s", code, p.stderr.String())
	}
	out := p.stdout.String()
	if !strings.HasPrefix(out, "PARTIAL: interrupted by terminated after 50 requests") || !strings.Contains(out, "requests   50\n") {
		t.Errorf("stdout is not a partial summary of the requests read:\n%s", out)
	}
	if !strings.Contains(p.stderr.String(), "a partial summary of the first") {
		t.Errorf("stderr:\n%s", p.stderr.String())
	}
}

// TestProcessRunSignals: run writes what it measured, marked aborted, on
// the first signal, and also when a second one cuts the graceful stop short.
func TestProcessRunSignals(t *testing.T) {
	t.Parallel()
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		requests.Add(1)
		time.Sleep(200 * time.Millisecond)
	}))
	t.Cleanup(srv.Close)
	for _, signals := range [][]syscall.Signal{{syscall.SIGTERM}, {syscall.SIGINT, syscall.SIGINT}} {
		t.Run(fmt.Sprint(signals), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "run.json")
			n := requests.Load()
			p := startLoadcap(t, "run", "--url", srv.URL+"/", "--vus", "4", "--duration", "60s", "--out", out, "--no-summary")
			for deadline := time.Now().Add(20 * time.Second); requests.Load() < n+8; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("the run sent nothing\n%s", p.stderr.String())
				}
			}
			for _, sig := range signals {
				p.signal(t, sig)
			}
			if code := p.exit(t, 10*time.Second); code != 105 {
				t.Fatalf("exit %d, want 105\nstderr:\n%s", code, p.stderr.String())
			}
			run := readRun(t, out)
			if run.Status != "aborted" || !strings.Contains(run.AbortReason, signals[0].String()) {
				t.Errorf("run.json: status %q, reason %q; want aborted by %v", run.Status, run.AbortReason, signals[0])
			}
		})
	}
}

// TestProcessRunSignalWhileAgentsPrepare: a signal while the agents
// prepare (here one that accepts the connection and never answers) ends
// the run with 105 and the signal as the reason.
func TestProcessRunSignalWhileAgentsPrepare(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan struct{}, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case accepted <- struct{}{}:
			default:
			}
			go func() { io.Copy(io.Discard, c); c.Close() }() // silent until loadcap hangs up
		}
	}()
	scenario := writeFile(t, "s.yaml", "target: http://127.0.0.1:9\nscenarios:\n  a: {executor: constant-arrival-rate, rate: 10, duration: 5s, preAllocatedVUs: 2}\n"+
		"requests:\n  - {name: root, method: GET, path: /}\n")
	p := startLoadcap(t, "run", scenario, "-q", "--agents", ln.Addr().String(), "--insecure-agents", "--prepare-timeout", "60s")
	select {
	case <-accepted:
		time.Sleep(200 * time.Millisecond)
	case <-time.After(20 * time.Second):
		t.Fatalf("the coordinator did not connect\n%s", p.stderr.String())
	}
	p.signal(t, syscall.SIGINT)
	if code := p.exit(t, 10*time.Second); code != 105 {
		t.Fatalf("exit %d, want 105\nstderr:\n%s", code, p.stderr.String())
	}
	if !strings.Contains(p.stderr.String(), "interrupted by interrupt before the load started, no result") {
		t.Errorf("stderr does not give the signal as the reason:\n%s", p.stderr.String())
	}
}

// TestProcessServersStop: serving is the work of target and agent, so the
// first signal ends it as their normal end (exit 0); a second one that
// cuts off open requests is 105.
func TestProcessServersStop(t *testing.T) {
	t.Parallel()
	t.Run("target, one signal", func(t *testing.T) {
		p := startLoadcap(t, "target", "--listen", testkit.FreeAddr(t))
		for deadline := time.Now().Add(10 * time.Second); !strings.Contains(p.stdout.String(), "target listening"); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("not listening\n%s", p.stderr.String())
			}
		}
		p.signal(t, syscall.SIGTERM)
		if code := p.exit(t, 10*time.Second); code != 0 || !strings.Contains(p.stdout.String(), "served 0 requests") {
			t.Errorf("exit %d, want 0 with the served count\n%s%s", code, p.stdout.String(), p.stderr.String())
		}
	})
	t.Run("target, a second signal cuts an open request", func(t *testing.T) {
		addr := testkit.FreeAddr(t)
		p := startLoadcap(t, "target", "--listen", addr)
		for deadline := time.Now().Add(10 * time.Second); !strings.Contains(p.stdout.String(), "target listening"); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("not listening\n%s", p.stderr.String())
			}
		}
		go func() { // open for 4 s: within the graceful 5 s
			if resp, err := http.Get("http://" + addr + "/sleep?ms=4000"); err == nil {
				resp.Body.Close()
			}
		}()
		time.Sleep(200 * time.Millisecond)
		p.signal(t, syscall.SIGINT)
		p.waitFor(t, "stopping gracefully", 5*time.Second)
		p.signal(t, syscall.SIGINT)
		if code := p.exit(t, 3*time.Second); code != 105 || !strings.Contains(p.stderr.String(), "open requests were cut off") {
			t.Errorf("exit %d, want 105 at once\n%s", code, p.stderr.String())
		}
	})
	t.Run("agent", func(t *testing.T) {
		p := startLoadcap(t, "agent", "--listen", testkit.FreeAddr(t), "--insecure")
		p.waitFor(t, "agent serving on", 10*time.Second)
		p.signal(t, syscall.SIGTERM)
		if code := p.exit(t, 10*time.Second); code != 0 {
			t.Errorf("exit %d, want 0\n%s", code, p.stderr.String())
		}
	})
}

// TestProcessDrillSignals: the first signal stops the drill's load at
// once; the audit, the plan and the report still run, and every file says
// the drill was stopped (exit 105). A signal before the load started
// (here the pre-flight waits for a guard signal that hangs) is 105 too.
func TestProcessDrillSignals(t *testing.T) {
	s := drillShop(t)
	t.Run("during the load", func(t *testing.T) {
		dir := t.TempDir()
		plan := drillPlan(t, s, "  - {name: one, multiplier: 1, hold: 30s}", "")
		p := startLoadcap(t, "drill", plan, "--out-dir", dir)
		p.waitFor(t, "one", 20*time.Second)
		time.Sleep(time.Second)
		start := time.Now()
		p.signal(t, syscall.SIGINT)
		if code := p.exit(t, 30*time.Second); code != 105 {
			t.Fatalf("exit %d, want 105\nstdout:\n%s\nstderr:\n%s", code, p.stdout.String(), p.stderr.String())
		}
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("took %v to stop", d)
		}
		run := readRun(t, filepath.Join(dir, "run.json"))
		if run.Status != "aborted" || !strings.Contains(run.AbortReason, "interrupt") {
			t.Errorf("run.json: status %q, reason %q", run.Status, run.AbortReason)
		}
		for _, f := range []string{"stages.json", "report.html"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Errorf("%s: %v", f, err)
			}
		}
		if !strings.Contains(p.stdout.String(), "ok: no leak") {
			t.Errorf("the audit did not run after the stop:\n%s", p.stdout.String())
		}
		noTemporaryFiles(t, dir)
	})
	t.Run("before the load", func(t *testing.T) {
		hang, probed := make(chan struct{}), make(chan struct{}, 1)
		srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
			select {
			case probed <- struct{}{}:
			default:
			}
			<-hang
		}))
		t.Cleanup(func() { close(hang); srv.Close() })
		dir := t.TempDir()
		plan := drillPlan(t, s, "  - {name: one, multiplier: 1, hold: 30s}", "guard:\n  rules:\n    - {name: slow, health: \""+srv.URL+"/healthz\"}\n")
		p := startLoadcap(t, "drill", plan, "--out-dir", dir)
		select {
		case <-probed: // the pre-flight waits for it
		case <-time.After(20 * time.Second):
			t.Fatalf("the pre-flight did not probe the guard's signal\n%s", p.stderr.String())
		}
		p.signal(t, syscall.SIGTERM)
		if code := p.exit(t, 15*time.Second); code != 105 {
			t.Fatalf("exit %d, want 105\nstdout:\n%s\nstderr:\n%s", code, p.stdout.String(), p.stderr.String())
		}
		if e := p.stderr.String(); !strings.Contains(e, "the drill was interrupted by terminated before its load ran") || strings.Contains(e, "does not answer") {
			t.Errorf("stderr does not give the signal as the reason:\n%s", e)
		}
	})
}
