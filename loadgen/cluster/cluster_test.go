package cluster

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/loadgen/target"
	"github.com/loadcap/loadcap/loadgen/target/targettest"
	"github.com/loadcap/loadcap/test/israce"
)

const steadyScenario = `
target: %s
data:
  users: data/users.csv
scenarios:
  steady:
    executor: constant-arrival-rate
    rate: %d
    timeUnit: 1s
    duration: %s
    preAllocatedVUs: 10
    maxVUs: 200
    gracefulStop: 2s
requests:
  - name: home
    path: /
    weight: 2
  - name: user
    path: /users/{{users.id}}
    headers:
      Authorization: Bearer {{users.token}}
thresholds:
  http_req_duration: ["p(99)<5000"]
  http_req_failed: ["rate<0.01"]
`

const usersCSV = "id,token\n1,tok-a\n2,tok-b\n3,tok-c\n"

func steady(url string, rate int, dur string) string {
	return fmt.Sprintf(steadyScenario, url, rate, dur)
}

func TestThreeAgentProcesses(t *testing.T) {
	srv := targettest.Start(t, target.Config{})
	certs := newCerts(t)
	var addrs, metrics []string
	for range 3 {
		_, a, m := agentProcess(t, certs)
		addrs, metrics = append(addrs, a), append(metrics, m)
	}
	f := scenario(t, steady(srv.URL(), 300, "3s"), map[string]string{"data/users.csv": usersCSV})
	var progress bytes.Buffer
	cfg := certs.coordinatorConfig(addrs...)
	cfg.Progress, cfg.Live = &progress, true
	// The coordinator's metrics, scraped mid-run.
	coordMetrics := make(chan string, 1)
	cfg.MetricsListen, cfg.OnListen = "127.0.0.1:0", func(a string) { coordMetrics <- a }
	midRun := make(chan string, 1)
	go func() {
		addr := <-coordMetrics
		waitArrivals(t, srv, 450)
		midRun <- scrape(t, addr)
	}()
	res, rep := runCluster(t, f, cfg)

	checkInvariants(t, res)
	for _, a := range rep.Agents {
		t.Logf("agent %s segment %s: clock offset %v (rtt %v), sent %d, late %d, max lag %v", a.Addr, a.Segment, a.ClockOffset, a.ClockRTT, a.Sent, a.Late, a.MaxLag)
	}
	t.Logf("merged: scheduled %d, target counted %d, p50 %.2fms p99 %.2fms", res.Totals.Scheduled, srv.Stats().Arrived,
		loadgen.Summarize(res.Latency).P50, loadgen.Summarize(res.Latency).P99)
	const want = 900 // 300/s for 3 s, as one process schedules it
	if res.Totals.Scheduled != want {
		t.Errorf("the agents scheduled %d arrivals, the scenario %d", res.Totals.Scheduled, want)
	}
	// An agent its host kept from running sends late, and may cut off
	// arrivals at the end: the run says so, and then only its counts must
	// add up.
	timed := t.Errorf
	if n := res.Disturbed(); n > 0 {
		timed = t.Logf
		t.Logf("the agents' host stalled them in %d seconds (up to %v): counts near the end are not judged", n, res.Totals.MaxStall)
	}
	if got := srv.Stats().Arrived; math.Abs(float64(got-want)) > want/100 {
		timed("the target counted %d requests, want %d ±1%%", got, want)
	}
	if res.Status != loadgen.StatusPassed || res.Partial() || len(res.Thresholds) != 2 {
		t.Errorf("status %s partial %v thresholds %+v: want passed, complete, both thresholds evaluated", res.Status, res.Partial(), res.Thresholds)
	}
	if res.Request("user") == nil || res.Request("user").Completed == 0 || res.Request("home").Completed == 0 {
		t.Errorf("both requests must have run (the CSV shipped with the plan): %+v", res.Requests)
	}
	var sent int64
	segs := []string{"0:1/3", "1/3:2/3", "2/3:1"}
	for i, a := range rep.Agents {
		if a.Status != AgentDone || a.Error != "" || a.Segment != segs[i] || a.Addr != addrs[i] {
			t.Errorf("agent %d: %+v, want done with segment %s", i, a, segs[i])
		}
		if a.ClockOffset.Abs() > 50*time.Millisecond || a.ClockRTT <= 0 {
			t.Errorf("agent %d on this host: clock offset %v (rtt %v), want ≈0", i, a.ClockOffset, a.ClockRTT)
		}
		sent += a.Sent
	}
	if sent != res.Totals.Sent {
		t.Errorf("agents sent %d, the merged result says %d", sent, res.Totals.Sent)
	}
	if !strings.Contains(progress.String(), "rate") {
		t.Errorf("no progress line from the merged intervals: %q", progress.String())
	}
	for _, a := range rep.Agents {
		// A busy CI box may dispatch some arrivals late; none may be lost.
		if a.Dropped != 0 {
			timed("agent %s dropped %d arrivals", a.Addr, a.Dropped)
		}
	}
	for name, body := range map[string]string{"agent": scrape(t, metrics[0]), "coordinator": <-midRun} {
		if !strings.Contains(body, `loadcap_requests_total{name="home"}`) || !strings.Contains(body, "loadcap_request_duration_seconds_bucket") {
			t.Errorf("%s metrics lack request counts or the latency histogram:\n%s", name, body)
		}
		if name == "coordinator" && !strings.Contains(body, "loadcap_cluster_agents_connected 3") {
			t.Errorf("coordinator metrics lack the agents connected:\n%s", body)
		}
	}
}

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// waitArrivals waits until the target has seen n requests.
func waitArrivals(t *testing.T, srv *target.Server, n int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for srv.Stats().Arrived < n {
		if time.Now().After(deadline) {
			t.Fatalf("the target saw %d requests, waiting for %d", srv.Stats().Arrived, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAgentKilledMidRunGivesPartialResult(t *testing.T) {
	srv := targettest.Start(t, target.Config{})
	certs := newCerts(t)
	var addrs []string
	var procs []*os.Process
	for range 3 {
		cmd, a, _ := agentProcess(t, certs)
		addrs = append(addrs, a)
		procs = append(procs, cmd.Process)
	}
	f := scenario(t, steady(srv.URL(), 300, "4s"), map[string]string{"data/users.csv": usersCSV})
	go func() {
		waitArrivals(t, srv, 450) // about 1.5 s in: the first second reported
		_ = procs[1].Signal(syscall.SIGKILL)
	}()
	res, rep := runCluster(t, f, certs.coordinatorConfig(addrs...))

	if !res.Partial() || len(res.Lost) != 1 {
		t.Fatalf("want a partial result with one agent lost, got %+v", res.Lost)
	}
	l := res.Lost[0]
	if l.Agent != addrs[1] || math.Abs(l.Share-1.0/3) > 1e-9 || l.At < time.Second || l.At > 3500*time.Millisecond {
		t.Errorf("lost %+v, want agent %s with share 1/3 about 1.5 s in", l, addrs[1])
	}
	for i, a := range rep.Agents {
		want := AgentDone
		if i == 1 {
			want = AgentLost
		}
		if a.Status != want {
			t.Errorf("agent %d status %s, want %s", i, a.Status, want)
		}
	}
	named := false
	for _, p := range rep.Problems() {
		named = named || strings.Contains(p, "agent "+addrs[1]+" lost") && strings.Contains(p, "33.3% of the load")
	}
	if !named {
		t.Errorf("problems %q must name the lost agent and its share", rep.Problems())
	}
	// 300/s for 4 s plans 1200 arrivals, 400 per agent: the lost one's
	// unsent ones are counted lost, and scheduled holds them all.
	tt := res.Totals
	if tt.Scheduled != 1200 || tt.Scheduled != tt.Sent+tt.Dropped+tt.Lost {
		t.Errorf("totals %+v: want scheduled 1200 = sent + dropped + lost", tt)
	}
	if l.Unsent != tt.Lost || l.Unsent < 100 || l.Unsent > 300 || rep.Agents[1].Unsent != l.Unsent {
		t.Errorf("lost agent: %d unsent (report %d, totals %d), want the 2 to 3 s of its 100/s it did not report", l.Unsent, rep.Agents[1].Unsent, tt.Lost)
	}
	if tt.Sent != tt.Completed+tt.Failed+tt.InflightAtStop || res.Latency.TotalCount() != tt.Completed+tt.Failed {
		t.Errorf("inconsistent totals %+v", tt)
	}
}

// lastArrival is the offset of the last request the target saw since its
// reset, to 10 ms.
func lastArrival(srv *target.Server) time.Duration {
	b := srv.ArrivalsPer(10 * time.Millisecond)
	return time.Duration(len(b)) * 10 * time.Millisecond
}

func TestCoordinatorLostStopsAgents(t *testing.T) {
	tests := []struct {
		name string
		sig  syscall.Signal
	}{
		{"killed", syscall.SIGKILL},
		{"frozen", syscall.SIGSTOP}, // no FIN: only the missing heartbeat tells
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := targettest.Start(t, target.Config{})
			certs := newCerts(t)
			var addrs []string
			for range 2 {
				addrs = append(addrs, localAgent(t, certs.agentConfig()))
			}
			f := scenario(t, steady(srv.URL(), 100, "30s"), map[string]string{"data/users.csv": usersCSV})
			srv.Reset()
			reset := time.Now()
			cmd, _ := child(t, coordinatorEnv, childCoordinator{
				Scenario: f.Path, Agents: addrs,
				Cert: certs.path(CoordinatorCertFile), Key: certs.path(CoordinatorKeyFile), CA: certs.path(CAFile),
			}, "")
			waitArrivals(t, srv, 100)
			if err := cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			lost := time.Since(reset)
			// Wait until the target has been quiet for a second.
			deadline := time.Now().Add(15 * time.Second)
			for {
				time.Sleep(250 * time.Millisecond)
				if time.Since(reset)-lastArrival(srv) > time.Second || time.Now().After(deadline) {
					break
				}
			}
			_ = cmd.Process.Kill()
			stopped := lastArrival(srv) - lost
			t.Logf("agents stopped %v after the coordinator was %s", stopped, tc.name)
			if stopped > 10*time.Second || time.Since(reset)-lastArrival(srv) < time.Second {
				t.Fatalf("agents still sending %v after the coordinator was %s", stopped, tc.name)
			}
			if !israce.Enabled && stopped > 5*time.Second {
				t.Errorf("agents stopped %v after the coordinator was %s, want within 5 s", stopped, tc.name)
			}
		})
	}
}

func TestStopStopsAgentsWithinASecond(t *testing.T) {
	tests := []struct {
		name string
		stop func(c *Coordinator, cancel context.CancelFunc)
	}{
		{"Stop", func(c *Coordinator, _ context.CancelFunc) { c.Stop(loadgen.CauseSignal, "interrupted by interrupt") }},
		{"context canceled", func(_ *Coordinator, cancel context.CancelFunc) { cancel() }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := targettest.Start(t, target.Config{})
			certs := newCerts(t)
			var addrs []string
			for range 2 {
				addrs = append(addrs, localAgent(t, certs.agentConfig()))
			}
			f := scenario(t, steady(srv.URL(), 100, "30s"), map[string]string{"data/users.csv": usersCSV})
			plan, err := NewPlan(f, "")
			if err != nil {
				t.Fatal(err)
			}
			c, err := NewCoordinator(f, plan, certs.coordinatorConfig(addrs...))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			srv.Reset()
			reset := time.Now()
			var stopAt time.Duration
			go func() {
				waitArrivals(t, srv, 100)
				stopAt = time.Since(reset)
				tc.stop(c, cancel)
			}()
			res, rep, err := c.Run(ctx)
			if err != nil {
				t.Fatal(err)
			}
			took := lastArrival(srv) - stopAt
			t.Logf("agents stopped %v after the stop", took)
			if !israce.Enabled && took > time.Second {
				t.Errorf("agents sent requests for %v after the stop, want under 1 s", took)
			}
			if res.Status != loadgen.StatusAborted || res.AbortCause != loadgen.CauseSignal || res.Partial() {
				t.Errorf("status %s cause %s partial %v: want aborted by the signal, complete", res.Status, res.AbortCause, res.Partial())
			}
			for _, a := range rep.Agents {
				if a.Status != AgentDone {
					t.Errorf("agent %s: %s %s, want done", a.Addr, a.Status, a.Error)
				}
			}
			checkInvariants(t, res)
		})
	}
}

func TestClockOffsetsAlignTheStart(t *testing.T) {
	srv := targettest.Start(t, target.Config{})
	var addrs []string
	for _, skew := range []time.Duration{30 * time.Second, -30 * time.Second} {
		cfg := AgentConfig{Insecure: true, now: func() time.Time { return time.Now().Add(skew) }}
		addrs = append(addrs, localAgent(t, cfg))
	}
	f := scenario(t, steady(srv.URL(), 100, "1s"), map[string]string{"data/users.csv": usersCSV})
	srv.Reset()
	reset := time.Now()
	res, rep := runCluster(t, f, CoordinatorConfig{Agents: addrs, Insecure: true})
	for i, want := range []time.Duration{30 * time.Second, -30 * time.Second} {
		if d := (rep.Agents[i].ClockOffset - want).Abs(); d > 20*time.Millisecond {
			t.Errorf("agent %d: measured offset %v, its clock is %v off", i, rep.Agents[i].ClockOffset, want)
		}
	}
	b := srv.ArrivalsPer(10 * time.Millisecond)
	first := 0
	for first < len(b) && b[first] == 0 {
		first++
	}
	start := rep.Start.Sub(reset)
	firstAt, lastAt := time.Duration(first)*10*time.Millisecond, time.Duration(len(b))*10*time.Millisecond
	// An agent that ignored its offset would start a second early (its
	// clock 30 s behind: the start long passed) or 30 s late (and be lost).
	// The slack after the end absorbs a starved CI box.
	if firstAt < start-20*time.Millisecond || lastAt > start+3*time.Second {
		t.Errorf("requests from %v to %v; the agreed start was %v and the scenario lasts 1 s", firstAt, lastAt, start)
	}
	if res.Totals.Scheduled != 100 {
		t.Errorf("scheduled %d, want 100", res.Totals.Scheduled)
	}
}

func TestThresholdAbortStopsEveryAgent(t *testing.T) {
	srv := targettest.Start(t, target.Config{ErrorRate: 1})
	var addrs []string
	for range 2 {
		addrs = append(addrs, localAgent(t, AgentConfig{Insecure: true}))
	}
	f := scenario(t, `
target: `+srv.URL()+`
scenarios:
  s: {executor: constant-arrival-rate, rate: 100, duration: 30s, preAllocatedVUs: 5}
requests:
  - {name: a, path: /}
thresholds:
  http_req_failed:
    - threshold: rate<0.01
      abortOnFail: true
`, nil)
	begin := time.Now()
	res, rep := runCluster(t, f, CoordinatorConfig{Agents: addrs, Insecure: true})
	if res.Status != loadgen.StatusAborted || res.AbortCause != loadgen.CauseThreshold || !strings.Contains(res.AbortReason, "http_req_failed") {
		t.Errorf("status %s cause %s reason %q: want aborted by the http_req_failed threshold", res.Status, res.AbortCause, res.AbortReason)
	}
	if took := time.Since(begin); took > 10*time.Second {
		t.Errorf("the run took %v: the crossed threshold did not stop the agents", took)
	}
	for _, a := range rep.Agents {
		if a.Status != AgentDone {
			t.Errorf("agent %s: %s %s, want done (stopped by the coordinator)", a.Addr, a.Status, a.Error)
		}
	}
	if th := res.Thresholds; len(th) != 1 || th[0].Passed {
		t.Errorf("thresholds %+v, want http_req_failed failed", th)
	}
}
