package main

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loadcap/loadcap/loadgen/target"
	"github.com/loadcap/loadcap/loadgen/target/targettest"
)

// loadcapProc starts this test binary as loadcap with args.
func loadcapProc(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), asLoadcapEnv+"=1")
	return cmd
}

// agentProc starts a loadcap agent process (this test binary as loadcap)
// on a loopback port and returns it with its address.
func agentProc(t *testing.T, args ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := loadcapProc(t, append([]string{"agent", "--listen", "127.0.0.1:0"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "agent serving on "); ok {
				addr <- strings.SplitN(a, ",", 2)[0]
			}
		}
	}()
	select {
	case a := <-addr:
		return cmd, a
	case <-time.After(20 * time.Second):
		t.Fatal("the agent did not start serving")
	}
	return nil, ""
}

// Two agent processes, one killed mid-run: the run fails with 111, says
// which agent it lost, when and how much, and run.json's totals count the
// lost arrivals (scheduled = sent + dropped + lost).
func TestRunLostAgentExitsPartial(t *testing.T) {
	srv := targettest.Start(t, target.Config{})
	var agents []string
	var procs []*exec.Cmd
	for range 2 {
		cmd, a := agentProc(t, "--insecure")
		agents, procs = append(agents, a), append(procs, cmd)
	}
	scenario := writeFile(t, "s.yaml", `target: `+srv.URL()+`
scenarios:
  s:
    executor: constant-arrival-rate
    rate: 100
    duration: 4s
    preAllocatedVUs: 5
requests:
  - name: home
    path: /
`)
	go func() {
		deadline := time.Now().Add(20 * time.Second)
		for srv.Stats().Arrived < 160 && time.Now().Before(deadline) { // about 1.6 s in
			time.Sleep(20 * time.Millisecond)
		}
		_ = procs[1].Process.Signal(syscall.SIGKILL)
	}()
	out := t.TempDir() + "/run.json"
	r := loadcap(t, nil, false, "run", scenario, "-q", "--agents", strings.Join(agents, ","), "--insecure-agents", "--out", out)
	if r.code != 111 {
		t.Fatalf("exit %d, want 111 (partial)\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "agent "+agents[1]+" at ") || !strings.Contains(r.stdout, "PARTIAL: agent "+agents[1]+" lost at") {
		t.Errorf("the lost agent %s must be named\nstdout:\n%s\nstderr:\n%s", agents[1], r.stdout, r.stderr)
	}
	run := readRun(t, out) // checks scheduled = sent + dropped + lost
	if !run.Partial || len(run.Lost) != 1 || run.Lost[0].Agent != agents[1] {
		t.Fatalf("run.json: partial %v, lost %+v; want agent %s", run.Partial, run.Lost, agents[1])
	}
	l, tt := run.Lost[0], run.Totals
	// Its first second reached the coordinator; its last two never did.
	if tt.Scheduled != 400 || tt.Lost != l.Unsent || l.Unsent < 100 || l.Unsent > 150 {
		t.Errorf("totals %+v, lost %+v: want 400 planned arrivals, 100 to 150 of the lost agent's 200 lost", tt, l)
	}
	if l.AtS <= 0 || l.AtS > 4 {
		t.Errorf("lost at %.3fs, want inside the 4 s run", l.AtS)
	}
}

// A coordinator's k6 script on an agent sees neither the agent's
// environment nor k6's browser module, whatever name it computes for it.
func TestAgentK6ScriptIsolation(t *testing.T) {
	srv := targettest.Start(t, target.Config{})
	t.Setenv("LOADCAP_TEST_AGENT_SECRET", "s3cret") // in the agents' environment (they run in this process)
	agents := inProcessAgents(t, 1)
	tests := []struct {
		name, script string
		code         int
		want         string
	}{
		{"environment", `import http from 'k6/http';
if (__ENV.LOADCAP_TEST_AGENT_SECRET !== undefined) { throw new Error('read the agent environment: ' + __ENV.LOADCAP_TEST_AGENT_SECRET); }
export const options = { iterations: 2, vus: 1 };
export default function () { http.get(__ENV.BASE + '/'); }
`, 0, ""},
		{"computed browser module", `const b = require(['k6', 'brow' + 'ser'].join('/'));
export const options = { iterations: 1, vus: 1 };
export default function () {}
`, 107, "k6/browser is refused here"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			script := writeFile(t, "s.js", tt.script)
			r := loadcap(t, nil, false, "run", script, "-q", "--no-summary", "--k6-arg=--env=BASE="+srv.URL(),
				"--agents", strings.Join(agents, ","), "--insecure-agents")
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) || strings.Contains(r.stderr+r.stdout, "s3cret") {
				t.Errorf("exit %d, want %d with %q\nstdout:\n%s\nstderr:\n%s", r.code, tt.code, tt.want, r.stdout, r.stderr)
			}
		})
	}
}

// A coordinator frozen (SIGSTOP) mid-run loses every agent (they stop on
// their own within 5 s, before the run's end): resumed, it fails with 111, and run.json places the losses
// inside the run and counts the load that was never sent.
func TestRunFrozenCoordinatorExitsPartial(t *testing.T) {
	t.Parallel()
	srv := targettest.Start(t, target.Config{})
	var agents []string
	for range 2 {
		_, a := agentProc(t, "--insecure")
		agents = append(agents, a)
	}
	scenario := writeFile(t, "s.yaml", `target: `+srv.URL()+`
scenarios:
  s:
    executor: constant-arrival-rate
    rate: 40
    duration: 10s
    preAllocatedVUs: 5
requests:
  - name: home
    path: /
`)
	out := t.TempDir() + "/run.json"
	var stdout, stderr strings.Builder
	co := loadcapProc(t, "run", scenario, "-q", "--agents", strings.Join(agents, ","), "--insecure-agents", "--out", out)
	co.Stdout, co.Stderr = &stdout, &stderr
	if err := co.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = co.Process.Kill() })
	for deadline := time.Now().Add(20 * time.Second); srv.Stats().Arrived < 60 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	_ = co.Process.Signal(syscall.SIGSTOP)
	time.Sleep(8 * time.Second) // the agents give up on it within 5 s
	_ = co.Process.Signal(syscall.SIGCONT)
	done := make(chan error, 1)
	go func() { done <- co.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the resumed coordinator did not exit")
	}
	if code := co.ProcessState.ExitCode(); code != 111 {
		t.Fatalf("exit %d, want 111\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	run := readRun(t, out) // checks scheduled = sent + dropped + lost
	if !run.Partial || len(run.Lost) != 2 {
		t.Fatalf("run.json: partial %v, lost %+v; want both agents", run.Partial, run.Lost)
	}
	t.Logf("lost %+v, totals %+v", run.Lost, run.Totals)
	for _, l := range run.Lost {
		if l.AtS < 1 || l.AtS > 8 || l.Unsent <= 0 {
			t.Errorf("lost %+v: want a loss inside the 10 s run, after its first second, before the agents gave up, with unsent arrivals", l)
		}
	}
	if tt := run.Totals; tt.Scheduled != 400 || tt.Lost == 0 {
		t.Errorf("totals %+v: want the 400 planned arrivals, some lost", tt)
	}
}
