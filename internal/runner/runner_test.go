package runner

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loadcap/loadcap/internal/cli"
	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/loadgen/cluster"
	"github.com/loadcap/loadcap/loadgen/k6"
	"github.com/loadcap/loadcap/scenarios"
)

// The non-loopback addresses in these tests are only parsed, never dialed:
// a documentation range (192.0.2.0/24) and a reserved name (.invalid).

func TestLoopbackURL(t *testing.T) {
	for u, want := range map[string]bool{
		"http://127.0.0.1:8080/": true, "http://localhost/": true, "http://[::1]:9/": true, "http://127.9.9.9/": true,
		"http://192.0.2.1/": false, "http://shop.invalid/": false, "::bad": false,
	} {
		if got := LoopbackURL(u); got != want {
			t.Errorf("LoopbackURL(%q) = %v, want %v", u, got, want)
		}
	}
}

// The shadow tag policy of a replay: drill_id required; --no-tag only
// against loopback, and then it strips the tag from the file.
func TestCheckTag(t *testing.T) {
	replay := func(target, drill string) *scenarios.File {
		return &scenarios.File{Path: "f.yaml", Target: target, DrillID: drill, Replay: &scenarios.Replay{File: "t.jsonl"},
			Headers: []scenarios.Header{{Name: scenarios.ShadowHeader}, {Name: "Baggage"}, {Name: "X-Other"}}}
	}
	if err := CheckTag(replay("http://shop.invalid", ""), false); cli.ExitCode(err) != int(cli.ExitInvalid) {
		t.Errorf("replay without drill_id: %v (exit %d), want 104", err, cli.ExitCode(err))
	}
	if err := CheckTag(replay("http://shop.invalid", "d1"), true); cli.ExitCode(err) != int(cli.ExitUsage) {
		t.Errorf("--no-tag off loopback: %v, want a usage error", err)
	}
	f := replay("http://127.0.0.1:9", "d1")
	if err := CheckTag(f, true); err != nil {
		t.Fatal(err)
	}
	if f.DrillID != "" || len(f.Headers) != 1 || f.Headers[0].Name != "X-Other" {
		t.Errorf("--no-tag on loopback left the tag: drill %q, headers %+v", f.DrillID, f.Headers)
	}
	if err := CheckTag(replay("http://shop.invalid", "d1"), false); err != nil {
		t.Errorf("a tagged replay was refused: %v", err)
	}
}

func TestNewRefusesWhatCannotRun(t *testing.T) {
	quick, err := scenarios.Quick(scenarios.QuickOptions{URL: "http://127.0.0.1:9/", RatePerSec: 1, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
		code cli.Code
	}{
		{"nothing", Config{}, cli.ExitUsage},
		{"ad hoc flags on agents", Config{File: quick, Agents: &cluster.CoordinatorConfig{Agents: []string{"127.0.0.1:1"}}}, cli.ExitUsage},
		{"script with a file's scenarios on agents", Config{Script: "s.js", K6Options: []k6.Option{k6.WithScenarios([]byte("{}"))}, Agents: &cluster.CoordinatorConfig{Agents: []string{"127.0.0.1:1"}}}, cli.ExitUsage},
		{"script with k6 output flags on agents", Config{Script: "s.js", Agents: &cluster.CoordinatorConfig{Agents: []string{"127.0.0.1:1"}}, K6Args: []string{"--out", "json=x"}}, cli.ExitUsage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(context.Background(), tc.cfg)
			if err == nil {
				r.Close()
				t.Fatal("built")
			}
			if got := cli.ExitCode(err); got != int(tc.code) {
				t.Errorf("exit %d (%v), want %d", got, err, tc.code)
			}
		})
	}
}

// A scenario file runs on the engine here: every hook is called, and Stop
// ends it early with the cause given.
func TestNewRunsAFileHere(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer srv.Close()
	f, err := scenarios.Quick(scenarios.QuickOptions{URL: srv.URL + "/", RatePerSec: 50, Duration: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var started atomic.Bool
	var intervals atomic.Int64
	r, err := New(context.Background(), Config{File: f,
		OnStart:    func(time.Time) { started.Store(true) },
		OnInterval: func(loadgen.Interval) { intervals.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	time.AfterFunc(1500*time.Millisecond, func() { r.Stop(loadgen.CauseSignal, "test") })
	res, err := r.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !started.Load() || intervals.Load() == 0 {
		t.Errorf("hooks: started %v, %d intervals", started.Load(), intervals.Load())
	}
	if res.Status != loadgen.StatusAborted || res.AbortCause != loadgen.CauseSignal {
		t.Errorf("status %s cause %q, want aborted by the signal", res.Status, res.AbortCause)
	}
	if n := res.Totals.Completed; n == 0 || n > 200 || hits.Load() != n {
		t.Errorf("%d completed, the target saw %d; want the same, a second or two of 50/s", n, hits.Load())
	}
	if r.Cluster() != nil || r.K6() != nil {
		t.Error("a local scenario run has a cluster report or a k6 outcome")
	}
}
