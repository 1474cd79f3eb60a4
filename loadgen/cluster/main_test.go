package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/scenarios"
)

// The test binary doubles as an agent and as a coordinator process: the
// process tests start it again with one of these variables holding a
// JSON config, and TestMain runs that role instead of the tests.
const (
	agentEnv       = "LOADCAP_CLUSTER_TEST_AGENT"
	coordinatorEnv = "LOADCAP_CLUSTER_TEST_COORDINATOR"
)

type childAgent struct {
	Listen, Metrics string
	Cert, Key, CA   string
	Insecure        bool
	Allow           []string
}

type childCoordinator struct {
	Scenario      string
	Agents        []string
	Cert, Key, CA string
}

func TestMain(m *testing.M) {
	if cfg := os.Getenv(agentEnv); cfg != "" {
		os.Exit(agentMain(cfg))
	}
	if cfg := os.Getenv(coordinatorEnv); cfg != "" {
		os.Exit(coordinatorMain(cfg))
	}
	os.Exit(m.Run())
}

func agentMain(js string) int {
	var c childAgent
	if err := json.Unmarshal([]byte(js), &c); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	err := ServeAgent(ctx, AgentConfig{
		Listen: c.Listen, MetricsListen: c.Metrics, CertFile: c.Cert, KeyFile: c.Key, ClientCAFile: c.CA,
		Insecure: c.Insecure, AllowTargets: c.Allow,
		OnListen: func(agent, metrics string) { fmt.Printf("LISTEN %s %s\n", agent, metrics) },
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func coordinatorMain(js string) int {
	var c childCoordinator
	if err := json.Unmarshal([]byte(js), &c); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	f, err := scenarios.Load(c.Scenario)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	plan, err := NewPlan(f, "")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	res, _, err := Run(context.Background(), f, plan, CoordinatorConfig{Agents: c.Agents, CertFile: c.Cert, KeyFile: c.Key, CAFile: c.CA, PrepareTimeout: 10 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("DONE %s sent %d\n", res.Status, res.Totals.Sent)
	return 0
}

// child starts the test binary in a role and returns its first stdout
// line starting with prefix. The process is killed when the test ends.
func child(t *testing.T, env string, cfg any, prefix string) (*exec.Cmd, string) {
	t.Helper()
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env+"="+string(js))
	cmd.Stderr = &prefixWriter{t: t, prefix: filepath.Base(env) + ": "}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	if prefix == "" {
		return cmd, ""
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), prefix) {
				lines <- sc.Text()
				break
			}
		}
		for sc.Scan() {
		}
	}()
	select {
	case l := <-lines:
		return cmd, l
	case <-time.After(20 * time.Second):
		t.Fatalf("child %s did not print %q", env, prefix)
	}
	return nil, ""
}

type prefixWriter struct {
	t      *testing.T
	prefix string
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.t.Log(w.prefix + l)
	}
	return len(p), nil
}

// certs writes a quick-start PKI for the test.
type testCerts struct{ dir string }

func newCerts(t *testing.T) testCerts {
	t.Helper()
	dir := t.TempDir()
	if err := WriteCerts(dir); err != nil {
		t.Fatal(err)
	}
	return testCerts{dir}
}

func (c testCerts) path(name string) string { return filepath.Join(c.dir, name) }

// agentProcess starts an agent process with mutual TLS on a free loopback
// port; it returns the process and its gRPC and metrics addresses.
func agentProcess(t *testing.T, c testCerts) (*exec.Cmd, string, string) {
	t.Helper()
	cmd, line := child(t, agentEnv, childAgent{
		Listen: "127.0.0.1:0", Metrics: "127.0.0.1:0",
		Cert: c.path(AgentCertFile), Key: c.path(AgentKeyFile), CA: c.path(CAFile),
	}, "LISTEN ")
	f := strings.Fields(line)
	return cmd, f[1], f[2]
}

// localAgent serves an agent in this process until the test ends.
func localAgent(t *testing.T, cfg AgentConfig) string {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	addr := make(chan string, 1)
	cfg.OnListen = func(a, _ string) { addr <- a }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeAgent(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	select {
	case a := <-addr:
		return a
	case err := <-done:
		t.Fatalf("agent: %v", err)
	}
	return ""
}

func (c testCerts) agentConfig() AgentConfig {
	return AgentConfig{CertFile: c.path(AgentCertFile), KeyFile: c.path(AgentKeyFile), ClientCAFile: c.path(CAFile)}
}

func (c testCerts) coordinatorConfig(agents ...string) CoordinatorConfig {
	return CoordinatorConfig{Agents: agents, CertFile: c.path(CoordinatorCertFile), KeyFile: c.path(CoordinatorKeyFile), CAFile: c.path(CAFile),
		PrepareTimeout: 10 * time.Second}
}

// scenario writes a scenario file (and extra files beside it) and loads it.
func scenario(t *testing.T, yaml string, files map[string]string) *scenarios.File {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "scenario.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := scenarios.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func runCluster(t *testing.T, f *scenarios.File, cfg CoordinatorConfig) (*loadgen.Result, *Report) {
	t.Helper()
	plan, err := NewPlan(f, "")
	if err != nil {
		t.Fatal(err)
	}
	res, rep, err := Run(context.Background(), f, plan, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return res, rep
}

// checkInvariants asserts docs/ARCHITECTURE.md's totals contract on a merged result.
func checkInvariants(t *testing.T, res *loadgen.Result) {
	t.Helper()
	tt := res.Totals
	if tt.Scheduled != tt.Sent+tt.Dropped {
		t.Errorf("scheduled %d != sent %d + dropped %d", tt.Scheduled, tt.Sent, tt.Dropped)
	}
	if tt.Sent != tt.Completed+tt.Failed+tt.InflightAtStop {
		t.Errorf("sent %d != completed %d + failed %d + inflight_at_stop %d", tt.Sent, tt.Completed, tt.Failed, tt.InflightAtStop)
	}
	if n := res.Latency.TotalCount(); n != tt.Completed+tt.Failed {
		t.Errorf("latency histogram holds %d values, want completed+failed = %d", n, tt.Completed+tt.Failed)
	}
	var sent int64
	for _, iv := range res.Intervals {
		sent += iv.Sent
	}
	if sent != tt.Sent {
		t.Errorf("intervals add up to %d sent, totals say %d", sent, tt.Sent)
	}
}
