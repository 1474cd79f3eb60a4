package loadgen_test

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/loadgen/target"
	"github.com/loadcap/loadcap/loadgen/target/targettest"
	"github.com/loadcap/loadcap/scenarios"
)

// engines are the two ways a scenario of plain HTTP runs (closed, or open
// as a file's only scenario): on event loops (the default) and on a
// goroutine per VU.
var engines = []engine{
	{"event loops", nil, true},
	{"goroutines", []loadgen.Option{loadgen.WithoutEventLoops()}, false},
}

// protocols are the two that event loops carry: HTTP/1.1 and h2c, each
// with the file's http block (extra is more of it, indented).
var protocols = []struct {
	name string
	h2c  bool
	http string
}{
	{"HTTP/1.1", false, "http:\n  http2: false\n"},
	{"HTTP/2", true, "http:\n  http2: true\n"},
}

type engine struct {
	name  string
	opts  []loadgen.Option
	loops bool
}

// runOn runs f as eng, checking that it used event loops exactly when it
// should.
func runOn(t *testing.T, f *scenarios.File, eng engine) *loadgen.Result {
	t.Helper()
	before := loadgen.PollLoopsStarted.Load()
	res := run(t, f, eng.opts...)
	if used := loadgen.PollLoopsStarted.Load() > before; used != eng.loops {
		t.Errorf("%s: event loops used: %v", eng.name, used)
	}
	return res
}

// A closed mix of statuses and sizes measures the same on event loops as
// on goroutines: every request accounted for, each response's status and
// size, and the error samples.
func TestEventLoopsMeasureAsGoroutines(t *testing.T) {
	for _, proto := range protocols {
		t.Run(proto.name, func(t *testing.T) { measureAsGoroutines(t, proto.h2c, proto.http, closedMix) })
	}
}

// The same for an open mix, whose arrivals the event loop paces itself:
// every arrival of the schedule is sent, none dropped.
func TestOpenEventLoopsMeasureAsGoroutines(t *testing.T) {
	for _, proto := range protocols {
		t.Run(proto.name, func(t *testing.T) { measureAsGoroutines(t, proto.h2c, proto.http, openMix) })
	}
}

const (
	closedMix = "{executor: constant-vus, vus: 12, duration: 1s, requests: [ok, missing, broken, empty]}"
	openMix   = "{executor: constant-arrival-rate, rate: 300, duration: 1s, preAllocatedVUs: 4, maxVUs: 50, requests: [ok, missing, broken, empty]}"
)

func measureAsGoroutines(t *testing.T, h2c bool, http, scenario string) {
	srv := targettest.Start(t, target.Config{H2C: h2c})
	f := parse(t, `
target: %s
%sscenarios:
  mix: %s
requests:
  - {name: ok, path: /bytes/3000, weight: 4}
  - {name: missing, path: /status/404}
  - {name: broken, path: /status/503}
  - {name: empty, path: /status/204}
`, srv.URL(), http, scenario)
	type perRequest struct {
		status string
		recv   int64 // bytes per response
		sent   int64 // bytes per request
		failed bool  // every one a failure (4xx, 5xx)
		sample string
	}
	got := map[string]map[string]perRequest{}
	for _, eng := range engines {
		res := runOn(t, f, eng)
		if res.Totals.Completed < 100 {
			t.Fatalf("%s: only %d requests completed", eng.name, res.Totals.Completed)
		}
		if tt := res.Totals; scenario == openMix && (tt.Scheduled != 300 || tt.Sent != 300 || tt.Completed+tt.Failed != 300 || tt.Dropped != 0) {
			t.Errorf("%s: scheduled %d, sent %d, done %d, dropped %d: want all 300 arrivals sent and done",
				eng.name, tt.Scheduled, tt.Sent, tt.Completed+tt.Failed, tt.Dropped)
		}
		m := map[string]perRequest{}
		for _, name := range []string{"ok", "missing", "broken", "empty"} {
			r := res.Request(name)
			n := r.Completed + r.Failed
			if n == 0 {
				t.Fatalf("%s: no %s requests", eng.name, name)
			}
			m[name] = perRequest{
				status: fmt.Sprint(keys(r.StatusCodes)), recv: r.BytesRecv / n, sent: r.BytesSent / n,
				failed: r.Failed == n, sample: fmt.Sprint(r.ErrorSamples),
			}
			if r.Failed != 0 && r.Failed != n {
				t.Errorf("%s: %s: %d of %d failed", eng.name, name, r.Failed, n)
			}
			if r.BytesRecv%n != 0 || r.BytesSent%n != 0 {
				t.Errorf("%s: %s: %d bytes received, %d sent over %d requests: not the same for each", eng.name, name, r.BytesRecv, r.BytesSent, n)
			}
		}
		got[eng.name] = m
	}
	if a, b := got["event loops"], got["goroutines"]; fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("event loops measured\n %v\ngoroutines\n %v", a, b)
	}
}

func keys(m map[int]int64) []int {
	var ks []int
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// At the end of a closed scenario, requests still in flight after the
// graceful stop are abandoned and counted as in flight at the stop, on
// event loops as on goroutines.
func TestClosedHardStop(t *testing.T) {
	for _, proto := range protocols {
		t.Run(proto.name, func(t *testing.T) { closedHardStop(t, proto.h2c, proto.http) })
	}
}

func closedHardStop(t *testing.T, h2c bool, http string) {
	srv := targettest.Start(t, target.Config{H2C: h2c})
	f := parse(t, `
target: %s
%sscenarios:
  slow:
    executor: constant-vus
    vus: 5
    duration: 1s
    gracefulStop: 200ms
requests:
  - name: a
    path: /sleep?ms=5000
`, srv.URL(), http)
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			start := time.Now()
			res := runOn(t, f, eng)
			if el := time.Since(start); el > 3*time.Second {
				t.Errorf("run took %v: the graceful stop should have cut it near 1.2 s", el)
			}
			if tt := res.Totals; tt.InflightAtStop != 5 || tt.Completed+tt.Failed != 0 {
				t.Errorf("inflight_at_stop %d, completed %d, failed %d; want 5, 0, 0", tt.InflightAtStop, tt.Completed, tt.Failed)
			}
		})
	}
}

// A request that outlives the file's timeout fails as a timeout on event
// loops too, and the VU goes on.
func TestEventLoopTimeouts(t *testing.T) {
	for _, proto := range protocols {
		t.Run(proto.name, func(t *testing.T) { eventLoopTimeouts(t, proto.h2c, proto.http) })
	}
}

func eventLoopTimeouts(t *testing.T, h2c bool, http string) {
	srv := targettest.Start(t, target.Config{H2C: h2c})
	f := parse(t, `
target: %s
%s  timeout: 100ms
scenarios:
  loop:
    executor: constant-vus
    vus: 2
    duration: 1s
requests:
  - name: slow
    path: /sleep?ms=1000
`, srv.URL(), http)
	res := runOn(t, f, engines[0])
	r := res.Request("slow")
	if r.Completed != 0 || r.Errors["timeout"] < 10 || r.Errors["timeout"] != r.Failed {
		t.Errorf("completed %d, errors %v: want only timeouts, about 20", r.Completed, r.Errors)
	}
	if p := r.Latency.Max(); p > 1000*(100+50) {
		t.Errorf("slowest timeout took %d µs, want about 100 ms", p)
	}
}

// With more processors, an open scenario's arrivals are split among its
// event loops (one per processor but one, and at most one per 64 of
// maxVUs, so that few VUs stay one pool), and the loops together send
// exactly the schedule.
func TestOpenScheduleSplitsAcrossLoops(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	srv := targettest.Start(t, target.Config{})
	for _, tt := range []struct {
		maxVUs, loops int
	}{{200, 3}, {130, 2}, {20, 1}} {
		t.Run(fmt.Sprintf("maxVUs=%d", tt.maxVUs), func(t *testing.T) {
			f := parse(t, `
target: %s
scenarios:
  ramp:
    executor: ramping-arrival-rate
    startRate: 100
    preAllocatedVUs: 1
    maxVUs: %d
    stages:
      - {target: 300, duration: 1s}
      - {target: 300, duration: 1s}
requests:
  - {name: a, path: /}
`, srv.URL(), tt.maxVUs)
			before := loadgen.PollLoopsStarted.Load()
			res := run(t, f)
			if n := loadgen.PollLoopsStarted.Load() - before; n != int64(tt.loops) {
				t.Errorf("%d event loops, want %d", n, tt.loops)
			}
			// The schedule: 200 arrivals in the ramp, 300 after.
			if tt := res.Totals; tt.Scheduled != 500 || tt.Sent != 500 || tt.Completed+tt.Failed != 500 {
				t.Errorf("scheduled %d, sent %d, dropped %d, done %d: want the 500 arrivals of the schedule sent",
					tt.Scheduled, tt.Sent, tt.Dropped, tt.Completed+tt.Failed)
			}
		})
	}
}

// At the hard stop, arrivals still waiting for a VU are counted dropped,
// on event loops as on goroutines: every arrival scheduled is sent or
// dropped.
func TestHardStopCountsTheBacklog(t *testing.T) {
	srv := targettest.Start(t, target.Config{})
	f := parse(t, `
target: %s
scenarios:
  stuck:
    executor: constant-arrival-rate
    rate: 50
    duration: 1s
    preAllocatedVUs: 1
    maxVUs: 1
    gracefulStop: 200ms
requests:
  - name: a
    path: /sleep?ms=3000
`, srv.URL())
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			res := runOn(t, f, eng) // checks scheduled = sent + dropped
			if tt := res.Totals; tt.Scheduled != 50 || tt.Sent != 1 || tt.Dropped != 49 || tt.InflightAtStop != 1 {
				t.Errorf("scheduled %d, sent %d, dropped %d, in flight at stop %d; want 50, 1, 49, 1",
					tt.Scheduled, tt.Sent, tt.Dropped, tt.InflightAtStop)
			}
		})
	}
}

// Event loops wait holding their processor, so the engines of one process
// (a capacity search's, parallel tests') never have more of them than
// processors but one: with two, one engine runs on a loop and a second one
// at the same time keeps goroutines. Each loop gives its processor back.
func TestLoopsLeaveAProcessorFree(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	srv := targettest.Start(t, target.Config{})
	open := parse(t, `
target: %s
scenarios:
  s: {executor: constant-arrival-rate, rate: 200, duration: 1s, preAllocatedVUs: 2, maxVUs: 20}
requests:
  - {name: a, path: /}
`, srv.URL())
	closed := parse(t, `
target: %s
scenarios:
  s: {executor: constant-vus, vus: 4, duration: 1s}
requests:
  - {name: a, path: /}
`, srv.URL())
	for _, f := range []*scenarios.File{open, closed} {
		before := loadgen.PollLoopsStarted.Load()
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() { run(t, f) })
		}
		wg.Wait()
		if n := loadgen.PollLoopsStarted.Load() - before; n != 1 {
			t.Errorf("%s: %d event loops for two engines at once, want 1", f.Scenarios[0].Workload.Model, n)
		}
		if n := loadgen.LoopsHolding.Load(); n != 0 {
			t.Errorf("%s: the loops still hold %d processors after their runs", f.Scenarios[0].Workload.Model, n)
		}
	}
}
