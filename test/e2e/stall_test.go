package e2e

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A generator that is not run for 300 ms (SIGSTOP: what a starved host
// does to it) says so: the run's figures name the stall and the second it
// happened in, and the summary tells the user the latency of that second
// describes the generator's host. The latency itself includes the stall:
// the arrivals it held back are timed from when they were due.
func TestGeneratorStallIsReported(t *testing.T) {
	url := startTarget(t)
	out := filepath.Join(t.TempDir(), "run.json")
	p := start(t, "run", "--url", url+"/", "--rate", "100", "--duration", "4s", "--out", out)
	time.Sleep(1500 * time.Millisecond)
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	p.cmd.Process.Signal(syscall.SIGCONT)
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.stderr.String())
	}
	run := readRun(t, out)
	if s := run.Totals.MaxStallMs; s < 250 || s > 2000 {
		t.Errorf("max_generator_stall_ms %.1f, want ≈300", s)
	}
	stalled := 0
	for _, iv := range run.Intervals {
		if iv.StallMs >= 250 {
			stalled++
		}
	}
	if stalled != 1 {
		t.Errorf("%d intervals hold the 300 ms stall, want 1: %+v", stalled, run.Intervals)
	}
	if p99 := run.LatencyMs.P99; p99 < 150 {
		t.Errorf("p99 %.1f ms: the arrivals held back by the stall are not timed from when they were due", p99)
	}
	if !strings.Contains(p.stdout.String(), "kept from running for up to") {
		t.Errorf("the summary does not mention the stall:\n%s", p.stdout.String())
	}
}
