package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/loadcap/loadcap/loadgen/target"
	"github.com/loadcap/loadcap/test/testkit"
)

// stuckWriter blocks every write until the test ends: a terminal or pipe
// nobody reads, which holds up a command's graceful path.
type stuckWriter struct{ release chan struct{} }

func (w stuckWriter) Write(p []byte) (int, error) { <-w.release; return len(p), nil }

// started runs the CLI in-process in the background; its result arrives
// on the channel.
func started(t *testing.T, sig chan os.Signal, stdout, stderr interface{ Write([]byte) (int, error) }, a ...string) <-chan int {
	t.Helper()
	st := &state{stdout: stdout, stderr: stderr, args: a, getenv: func(string) string { return "" }, signals: sig}
	done := make(chan int, 1)
	go func() { done <- run(context.Background(), st) }()
	return done
}

// exited waits up to d for the command's exit code.
func exited(t *testing.T, done <-chan int, d time.Duration, stderr fmt.Stringer) int {
	t.Helper()
	select {
	case code := <-done:
		return code
	case <-time.After(d):
		t.Fatalf("still running %v after the signal\nstderr:\n%s", d, stderr)
		return 0
	}
}

// findArgs is a bounded search on loopback: steps of 1 s from 50 req/s,
// never above 400 req/s; uninterrupted it ends (exit 0) in about 8 s.
func findArgs(url, out string) []string {
	return []string{"capacity", "find", "--url", url + "/", "--slo", "p(99)<1000ms,error<50%",
		"--start-rate", "50", "--factor", "2", "--max-rate", "400", "--warmup", "0s", "--window", "1s", "--soak", "1s", "--out", out}
}

func readFind(t *testing.T, path string) (steps int, notes []string) {
	t.Helper()
	var res struct {
		Steps []json.RawMessage `json:"steps"`
		Notes []string          `json:"notes"`
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the partial result: %v", err)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return len(res.Steps), res.Notes
}

func TestCapacityFindSignal(t *testing.T) {
	t.Parallel()
	url := testTarget(t, target.Config{Workers: 2, ServiceTime: 2 * time.Millisecond})

	t.Run("first signal: partial result, exit 105", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "find.json")
		sig := make(chan os.Signal, 2)
		var stdout, stderr testkit.SyncBuffer
		done := started(t, sig, &stdout, &stderr, findArgs(url, out)...)
		time.Sleep(1500 * time.Millisecond) // into the second step
		sig <- syscall.SIGINT
		if code := exited(t, done, 15*time.Second, &stderr); code != 105 {
			t.Fatalf("exit %d, want 105\nstderr:\n%s", code, stderr.String())
		}
		if !strings.Contains(stderr.String(), "stopping gracefully") || !strings.Contains(stderr.String(), "partial result") {
			t.Errorf("stderr:\n%s", stderr.String())
		}
		steps, notes := readFind(t, out)
		if steps < 1 || !strings.Contains(strings.Join(notes, "\n"), "partial: the search was interrupted by interrupt") {
			t.Errorf("find.json: %d steps, notes %q", steps, notes)
		}
		if !strings.Contains(stdout.String(), "partial: ") {
			t.Errorf("the summary does not say it is partial:\n%s", stdout.String())
		}
	})

	t.Run("second signal: at once", func(t *testing.T) {
		// stdout that nobody reads holds the graceful path at the summary,
		// after find.json is written: only the second signal can end it.
		out := filepath.Join(t.TempDir(), "find.json")
		stuck := stuckWriter{release: make(chan struct{})}
		t.Cleanup(func() { close(stuck.release) })
		sig := make(chan os.Signal, 2)
		var stderr testkit.SyncBuffer
		done := started(t, sig, stuck, &stderr, findArgs(url, out)...)
		time.Sleep(1500 * time.Millisecond)
		sig <- syscall.SIGTERM
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if _, err := os.Stat(out); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no partial result after the first signal\nstderr:\n%s", stderr.String())
			}
		}
		select {
		case code := <-done:
			t.Fatalf("exit %d with stdout stuck: the summary was not written", code)
		case <-time.After(200 * time.Millisecond):
		}
		sig <- syscall.SIGTERM
		if code := exited(t, done, 10*time.Second, &stderr); code != 105 {
			t.Fatalf("exit %d, want 105\nstderr:\n%s", code, stderr.String())
		}
		if !strings.Contains(stderr.String(), "stopping at once") || !strings.Contains(stderr.String(), "stopped at once by a second signal") {
			t.Errorf("stderr:\n%s", stderr.String())
		}
		if steps, _ := readFind(t, out); steps < 1 {
			t.Errorf("find.json: %d steps", steps)
		}
	})
}

// TestShadowImportStrictKeepsOutput: --strict with malformed records
// fails and keeps the previous file byte for byte (a signal's case is
// TestShadowImportSignalKeepsOutput).
func TestShadowImportStrictKeepsOutput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "traffic.jsonl")
	before := []byte("{\"previous\":\"import\"}\n")
	if err := os.WriteFile(out, before, 0o644); err != nil {
		t.Fatal(err)
	}
	small := recording(t, t.TempDir(), 20)
	r := loadcap(t, nil, false, "shadow", "import", small, "--format", "nginx", "--out", out, "--strict")
	if r.code != 104 || !strings.Contains(r.stderr, "left as it was") {
		t.Errorf("--strict: exit %d\n%s", r.code, r.stderr)
	}
	if after, _ := os.ReadFile(out); !bytes.Equal(after, before) {
		t.Errorf("--strict changed --out: %.80q", after)
	}
	noTemporaryFiles(t, dir)
}

func TestOutputCheckedBeforeWork(t *testing.T) {
	t.Parallel()
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { requests.Add(1) }))
	t.Cleanup(srv.Close)
	missing := filepath.Join(t.TempDir(), "missing-dir")
	tests := []struct {
		name string
		args []string
		flag string
	}{
		{"run --out", []string{"run", "-q", "--url", srv.URL + "/", "--rate", "20", "--duration", "1s", "--out", filepath.Join(missing, "run.json")}, "--out"},
		{"run --report", []string{"run", "-q", "--url", srv.URL + "/", "--rate", "20", "--duration", "1s", "--report", filepath.Join(missing, "r.html")}, "--report"},
		{"run --junit", []string{"run", "-q", "--url", srv.URL + "/", "--rate", "20", "--duration", "1s", "--junit", filepath.Join(missing, "j.xml")}, "--junit"},
		{"capacity find --out", append(findArgs(srv.URL, filepath.Join(missing, "find.json")), "--max-steps", "1"), "--out"},
		{"shadow import --out", []string{"shadow", "import", recording(t, t.TempDir(), 4), "--out", filepath.Join(missing, "t.jsonl")}, "--out"},
	}
	tests = append(tests, struct {
		name string
		args []string
		flag string
	}{"demo --report", []string{"demo", "-q", "--out-dir", t.TempDir(), "--report", filepath.Join(missing, "r.html")}, "--report"})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := loadcap(t, nil, false, tc.args...)
			if r.code != 2 || !strings.Contains(r.stderr, tc.flag+": cannot write") || !strings.Contains(r.stderr, "missing-dir does not exist") {
				t.Errorf("exit %d, want 2 naming %s and the directory\n%s", r.code, tc.flag, r.stderr)
			}
			if strings.Contains(r.stdout, "demo: the shop runs") {
				t.Errorf("the demo started before its output was checked:\n%s", r.stdout)
			}
		})
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("the target saw %d requests: the output was checked after the work", n)
	}

	// Manifest directories too: plan.json is not written when --hpa or
	// --keda cannot be.
	for _, flag := range []string{"--hpa", "--keda"} {
		t.Run("capacity plan "+flag, func(t *testing.T) {
			dir := t.TempDir()
			file := writeFile(t, "not-a-dir", "")
			out := filepath.Join(dir, "plan.json")
			r := loadcap(t, nil, false, "capacity", "plan", "../../scenarios/examples/presale-plan.yaml", "--out", out, flag, file)
			if r.code != 2 || !strings.Contains(r.stderr, flag+": cannot write into "+file) {
				t.Errorf("exit %d, want 2 naming %s\n%s", r.code, flag, r.stderr)
			}
			if _, err := os.Stat(out); err == nil {
				t.Error("plan.json was written before the manifests' directory was checked")
			}
		})
	}
}
