package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loadcap/loadcap/loadgen/target"
	"github.com/loadcap/loadcap/loadgen/target/targettest"
	"github.com/loadcap/loadcap/reports"
	"github.com/loadcap/loadcap/test/quiet"
)

type result struct {
	code           int
	stdout, stderr string
}

// loadcap runs the CLI in-process. signals, when non-nil, is delivered as
// interrupts.
func loadcap(t *testing.T, signals chan os.Signal, tty bool, a ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	if signals == nil {
		signals = make(chan os.Signal)
	}
	st := &state{stdout: &out, stderr: &errb, args: a, getenv: func(string) string { return "" }, signals: signals, tty: tty}
	code := run(context.Background(), st)
	return result{code, out.String(), errb.String()}
}

func testTarget(t *testing.T, c target.Config) string { return targettest.Start(t, c).URL() }

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
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

func TestRunExitCodes(t *testing.T) {
	url := testTarget(t, target.Config{ServiceTime: 2 * time.Millisecond})
	scenario := func(threshold string) string {
		return writeFile(t, "s.yaml", `target: `+url+`
scenarios:
  s:
    executor: constant-arrival-rate
    rate: 100
    duration: 1s
    preAllocatedVUs: 10
requests:
  - name: home
    path: /
thresholds:
  http_req_duration: ["`+threshold+`"]
`)
	}
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr []string
		timed  []string // in stdout when the machine kept pace: a stall at the end drops arrivals
	}{
		{"thresholds pass", []string{"run", "-q", scenario("p(99)<1000")}, 0,
			[]string{"home", "p99", "ok   http_req_duration p(99)<1000", "status: passed"}, nil, nil},
		{"threshold fails: exit 99", []string{"run", "-q", scenario("p(99)<1")}, 99,
			[]string{"FAIL http_req_duration p(99)<1", "status: failed"}, []string{"thresholds failed"}, nil},
		{"invalid file: exit 104 with position", []string{"run", writeFile(t, "bad.yaml", "target: "+url+"\nscenarios: {}\nrequestz: []\n")}, 104,
			nil, []string{"bad.yaml:3:1"}, nil},
		{"missing file: exit 104", []string{"run", filepath.Join(t.TempDir(), "nope.yaml")}, 104, nil, []string{"nope.yaml"}, nil},
		{"unknown flag: exit 2", []string{"run", "--bogus"}, 2, nil, []string{"unknown flag: --bogus"}, nil},
		{"nothing to run: exit 2", []string{"run"}, 2, nil, []string{"give a scenario file or --url"}, nil},
		{"rate and vus: exit 2", []string{"run", "--url", url, "--rate", "10", "--vus", "2"}, 2, nil, []string{"exclude each other"}, nil},
		{"ad hoc open model", []string{"run", "-q", "--url", url + "/", "--rate", "50", "--duration", "1s"}, 0,
			[]string{"scheduled 50 = sent "}, nil, []string{"scheduled 50 = sent 50 + dropped 0"}},
		{"ad hoc closed model", []string{"run", "-q", "--url", url + "/", "--vus", "2", "--duration", "1s"}, 0,
			[]string{"default", "status: passed"}, nil, nil},
		{"version", []string{"version"}, 0, []string{"loadcap "}, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Only a timed miss runs the case again.
			quiet.Retry(t, 3, func(a *quiet.A) {
				r := loadcap(t, nil, false, tc.args...)
				if r.code != tc.code {
					t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, tc.code, r.stdout, r.stderr)
				}
				for _, s := range tc.stdout {
					if !strings.Contains(r.stdout, s) {
						t.Errorf("stdout lacks %q:\n%s", s, r.stdout)
					}
				}
				for _, s := range tc.timed {
					if !strings.Contains(r.stdout, s) {
						a.Errorf("stdout lacks %q:\n%s", s, r.stdout)
					}
				}
				for _, s := range tc.stderr {
					if !strings.Contains(r.stderr, s) {
						t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
					}
				}
			})
		})
	}
}

func TestRunWritesResult(t *testing.T) {
	url := testTarget(t, target.Config{})
	out := filepath.Join(t.TempDir(), "run.json")
	// 300 arrivals are all sent unless a stall of the machine holds
	// them back past the end.
	quiet.Retry(t, 3, func(a *quiet.A) {
		r := loadcap(t, nil, false, "run", "-q", "--url", url+"/x", "--rate", "200", "--duration", "1500ms", "--out", out)
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		run := readRun(t, out)
		if run.Schema != "loadcap.run/v1" || run.Status != "passed" || run.Totals.Scheduled != 300 {
			t.Errorf("schema %q status %q scheduled %d", run.Schema, run.Status, run.Totals.Scheduled)
		}
		if run.Totals.Completed != 300 {
			a.Errorf("completed %d of 300", run.Totals.Completed)
		}
		h, err := run.Histogram("default")
		if err != nil || h.TotalCount() != run.Totals.Completed {
			t.Errorf("histogram: %v, count %d", err, h.TotalCount())
		}
		if len(run.Intervals) < 2 || run.Intervals[0].Sent < 150 {
			a.Errorf("intervals: %+v", run.Intervals)
		}
	})
	// The raw JSON uses docs/ARCHITECTURE.md's field names.
	raw, _ := os.ReadFile(out)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"schema", "status", "abort_reason", "started", "ended", "totals", "latency_ms", "requests", "intervals", "thresholds", "histograms"} {
		if _, ok := m[k]; !ok {
			t.Errorf("run.json lacks %q", k)
		}
	}
	// A short run embeds its seconds: the intervals stream they went
	// through as they closed is gone.
	if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 1 {
		t.Errorf("files beside run.json after a short run: %v", ents)
	}
}

func TestSignalAbortsWithPartialResult(t *testing.T) {
	t.Parallel()
	url := testTarget(t, target.Config{})
	out := filepath.Join(t.TempDir(), "run.json")
	sig := make(chan os.Signal, 1)
	time.AfterFunc(700*time.Millisecond, func() { sig <- syscall.SIGINT })
	start := time.Now()
	r := loadcap(t, sig, false, "run", "-q", "--url", url+"/sleep?ms=10", "--vus", "4", "--duration", "60s", "--out", out)
	if r.code != 105 {
		t.Fatalf("exit %d, want 105\n%s", r.code, r.stderr)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("took %v to stop", time.Since(start))
	}
	run := readRun(t, out)
	if run.Status != "aborted" || !strings.Contains(run.AbortReason, "interrupt") || run.Totals.Completed == 0 {
		t.Errorf("status %q reason %q completed %d", run.Status, run.AbortReason, run.Totals.Completed)
	}
}

func TestProgress(t *testing.T) {
	t.Parallel()
	url := testTarget(t, target.Config{})
	t.Run("terminal: one line rewritten in place", func(t *testing.T) {
		t.Parallel()
		r := loadcap(t, nil, true, "run", "--url", url+"/", "--rate", "100", "--duration", "2500ms")
		if n := strings.Count(r.stderr, "\r\x1b[K"); n < 2 || strings.Count(r.stderr, "\n") > 0 {
			t.Errorf("want ≥2 in-place updates and no new lines, got %d:\n%q", n, r.stderr)
		}
		if !strings.Contains(r.stderr, "rate ") || !strings.Contains(r.stderr, "p99 ") {
			t.Errorf("progress lacks rate/p99: %q", r.stderr)
		}
	})
	t.Run("log: a plain line every 5s", func(t *testing.T) {
		t.Parallel()
		r := loadcap(t, nil, false, "run", "--url", url+"/", "--rate", "50", "--duration", "5500ms")
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if len(lines) != 1 || strings.Contains(r.stderr, "\r") || !strings.HasPrefix(lines[0], "5s/6s") {
			t.Errorf("want exactly one plain line at 5s, got %q", r.stderr)
		}
	})
	t.Run("quiet: nothing", func(t *testing.T) {
		t.Parallel()
		r := loadcap(t, nil, true, "run", "-q", "--url", url+"/", "--rate", "50", "--duration", "1200ms")
		if r.stderr != "" {
			t.Errorf("quiet run wrote %q", r.stderr)
		}
	})
}

func TestValidate(t *testing.T) {
	t.Parallel()
	examples, _ := filepath.Glob("../../scenarios/examples/*.yaml")
	if len(examples) == 0 {
		t.Fatal("no examples")
	}
	r := loadcap(t, nil, false, append([]string{"validate"}, examples...)...)
	if r.code != 0 || strings.Count(r.stdout, ": ok") != len(examples) {
		t.Errorf("examples: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	bad := writeFile(t, "bad.yaml", `target: ftp://127.0.0.1
scenarios:
  s:
    executor: constant-arrival-rate
    rate: -5
    duration: 10x
requests:
  - name: a
    path: /
    weight: 0
`)
	r = loadcap(t, nil, false, "validate", bad)
	if r.code != 104 {
		t.Errorf("exit %d, want 104", r.code)
	}
	for _, want := range []string{"bad.yaml:1:", "bad.yaml:10:", "weight"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if n := strings.Count(r.stderr, "bad.yaml:"); n < 3 {
		t.Errorf("want every problem reported (≥3), got %d:\n%s", n, r.stderr)
	}
}
