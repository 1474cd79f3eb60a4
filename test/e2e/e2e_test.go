// Package e2e runs the loadcap binary as a user does: built from source,
// against a `loadcap target` process on loopback, with real signals.
package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loadcap/loadcap/reports"

	"github.com/loadcap/loadcap/test/testkit"
)

var bin string // the loadcap binary under test

// Tests that call t.Parallel (exit codes, files, signals, counts: the
// fault matrix, the pushes to Prometheus) run together, two at a time,
// after the others have run one by one. A test that judges latency (the
// drills' guards), measures a capacity, or tolerates a stall of its host
// stays sequential, so that it never shares the machine with another test
// of this package.

// TestMain builds the loadcap binary once for every test in the package.
// It is built into a directory kept between runs (one per checkout, in the
// user's cache directory), so that `go build` finds it up to date and does
// not link the k6-sized executable again when nothing changed: the go
// command compares the file's build ID with the sources', so a stale
// binary is always rebuilt.
func TestMain(m *testing.M) {
	var err error
	if bin, err = binPath(); err == nil {
		build := exec.Command("go", "build", "-o", bin, "../../cmd/loadcap")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		err = build.Run()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "build loadcap:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// binPath is where TestMain builds loadcap: a directory of the user's
// cache (else the temporary directory) named after this checkout's
// absolute path, so that two checkouts never share a binary.
func binPath() (string, error) {
	root, err := filepath.Abs("../..")
	if err != nil {
		return "", err
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	sum := sha256.Sum256([]byte(root))
	dir := filepath.Join(base, "loadcap-e2e", hex.EncodeToString(sum[:8]))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	return filepath.Join(dir, "loadcap"), nil
}

// startTarget runs `loadcap target` and waits until it answers.
func startTarget(t *testing.T, args ...string) string {
	t.Helper()
	port := testkit.FreePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, bin, append([]string{"target", "--listen", fmt.Sprintf("127.0.0.1:%d", port)}, args...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		cancel()
	})
	for i := 0; i < 100; i++ {
		if resp, err := http.Get(url + "/stats"); err == nil {
			resp.Body.Close()
			return url
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("target did not come up")
	return ""
}

type proc struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
}

func start(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...)}
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return p
}

// wait returns the exit code, failing the test if it takes longer than d.
func (p *proc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(d):
		p.cmd.Process.Kill()
		<-done
		t.Fatalf("still running after %v\nstdout:\n%s\nstderr:\n%s", d, p.stdout.String(), p.stderr.String())
	}
	return p.cmd.ProcessState.ExitCode()
}

func readRun(t *testing.T, path string) *reports.Run {
	t.Helper()
	r, err := reports.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.CheckTotals(); err != nil {
		t.Error(err)
	}
	return r
}

func TestCheckoutExampleInterrupted(t *testing.T) {
	t.Parallel()
	url := startTarget(t, "--workers", "8", "--service-time", "5ms")
	out := filepath.Join(t.TempDir(), "run.json")
	p := start(t, "run", "../../scenarios/examples/checkout.yaml", "--target", url, "--out", out)
	time.Sleep(3 * time.Second)
	p.cmd.Process.Signal(syscall.SIGINT)
	if code := p.wait(t, 15*time.Second); code != 105 {
		t.Fatalf("exit %d, want 105 (aborted)\n%s\n%s", code, p.stdout.String(), p.stderr.String())
	}
	run := readRun(t, out)
	if run.Status != "aborted" || run.Totals.Completed < 100 || run.Totals.Failed != 0 {
		t.Errorf("status %s, completed %d, failed %d", run.Status, run.Totals.Completed, run.Totals.Failed)
	}
	for _, name := range []string{"home", "search", "product", "add-to-cart", "checkout"} {
		if _, ok := run.Requests[name]; !ok {
			t.Errorf("no %s requests in the result", name)
		}
	}
	if !strings.Contains(p.stdout.String(), "status: aborted") || !strings.Contains(p.stderr.String(), "interrupt") {
		t.Errorf("summary or notice missing:\nstdout:\n%s\nstderr:\n%s", p.stdout.String(), p.stderr.String())
	}
}

func TestSecondSignalStopsAtOnce(t *testing.T) {
	t.Parallel()
	url := startTarget(t)
	out := filepath.Join(t.TempDir(), "run.json")
	// Requests take 20 s and gracefulStop would wait 30 s for them.
	p := start(t, "run", "--url", url+"/sleep?ms=20000", "--rate", "20", "--duration", "60s", "--out", out, "-q")
	time.Sleep(1500 * time.Millisecond)
	p.cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(500 * time.Millisecond)
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 10*time.Second); code != 105 {
		t.Fatalf("exit %d, want 105\n%s", code, p.stderr.String())
	}
	run := readRun(t, out)
	if run.Totals.InflightAtStop < 20 || run.Totals.Completed != 0 {
		t.Errorf("in flight at stop %d (want ≥20), completed %d", run.Totals.InflightAtStop, run.Totals.Completed)
	}
}

func TestThresholdFailureFailsCI(t *testing.T) {
	t.Parallel()
	// A 4-worker target at 10 ms holds 400 req/s; offering 600 builds a
	// queue that the p(95)<50 threshold must catch.
	url := startTarget(t, "--workers", "4", "--service-time", "10ms")
	scenario := filepath.Join(t.TempDir(), "over.yaml")
	os.WriteFile(scenario, []byte(`target: `+url+`
scenarios:
  over:
    executor: constant-arrival-rate
    rate: 600
    duration: 2s
    preAllocatedVUs: 50
    maxVUs: 600
requests:
  - {name: api, path: /api}
thresholds:
  http_req_duration: ["p(95)<50"]
`), 0o644)
	p := start(t, "run", scenario, "-q")
	if code := p.wait(t, 40*time.Second); code != 99 {
		t.Fatalf("exit %d, want 99 (threshold failed)\n%s\n%s", code, p.stdout.String(), p.stderr.String())
	}
	if !strings.Contains(p.stdout.String(), "FAIL http_req_duration p(95)<50") {
		t.Errorf("summary lacks the failed threshold:\n%s", p.stdout.String())
	}
}

func TestValidateExamples(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob("../../scenarios/examples/*.yaml")
	p := start(t, append([]string{"validate"}, files...)...)
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.stderr.String())
	}
}
