package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/loadcap/loadcap/test/testkit"
)

// agentProc is a `loadcap agent` with mutual TLS and live metrics.
type agentProc struct {
	addr, metrics string
}

// startAgents writes certificates with `loadcap certs` and starts n agents
// on loopback; it returns them and the coordinator's TLS flags.
func startAgents(t *testing.T, n int) ([]agentProc, []string) {
	t.Helper()
	certs := filepath.Join(t.TempDir(), "certs")
	if p := start(t, "certs", "--out", certs); p.wait(t, 30*time.Second) != 0 {
		t.Fatalf("certs: %s", p.stderr.String())
	}
	var agents []agentProc
	for i := 0; i < n; i++ {
		a := agentProc{addr: fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t)), metrics: fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))}
		p := start(t, "agent", "--listen", a.addr, "--metrics-listen", a.metrics,
			"--tls-cert", filepath.Join(certs, "agent.pem"), "--tls-key", filepath.Join(certs, "agent-key.pem"),
			"--client-ca", filepath.Join(certs, "ca.pem"))
		t.Cleanup(func() {
			p.cmd.Process.Signal(syscall.SIGTERM)
			p.wait(t, 10*time.Second)
			if t.Failed() {
				t.Logf("agent %s:\n%s", a.addr, p.stderr.String())
			}
		})
		agents = append(agents, a)
		waitListening(t, a.addr, a.metrics)
	}
	return agents, []string{"--tls-cert", filepath.Join(certs, "coordinator.pem"),
		"--tls-key", filepath.Join(certs, "coordinator-key.pem"), "--ca", filepath.Join(certs, "ca.pem")}
}

// agentRunning reads an agent's loadcap_agent_running gauge: 1 while its
// engine runs a plan.
func agentRunning(a agentProc) (bool, error) {
	c := http.Client{Timeout: 500 * time.Millisecond}
	resp, err := c.Get("http://" + a.metrics + "/metrics")
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return false, err
	}
	return metricValue(string(body), "loadcap_agent_running") == 1, nil
}

// A drill on two agents: its stages run on both, each stage and every
// service are measured from the shop's metrics as locally, and the hot
// switch stops both agents within 1 s: each agent's engine has ended by
// then, the merged result holds nothing sent after it, and the shop
// received no tagged request after it.
func TestDrillOnAgentsHotSwitch(t *testing.T) {
	s := drillShopE2E(t, nil)
	agents, tls := startAgents(t, 2)
	recording, err := filepath.Abs("../../scenarios/examples/shop-traffic.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	guardAddr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	out := t.TempDir()
	plan := writeDrill(t, s, drillOpts{
		traffic: fmt.Sprintf("{replay: %q}", recording),
		stages: `  - {name: warm, multiplier: 1, ramp: 1s, hold: 3s}
  - {name: steady, multiplier: 2, ramp: 1s, hold: 40s}`,
		guard: fmt.Sprintf(`  rules:
    - {name: drill-errors, drill: "error<5%%"}
  hot_switch: {listen: %q}`, guardAddr),
	})
	var addrs []string
	for _, a := range agents {
		addrs = append(addrs, a.addr)
	}
	p := start(t, append([]string{"drill", plan, "--out-dir", out, "-q", "--agents", strings.Join(addrs, ",")}, tls...)...)
	waitListening(t, guardAddr)
	waitTagged(t, s, p)
	for _, a := range agents {
		if on, err := agentRunning(a); err != nil || !on {
			p.cmd.Process.Kill()
			t.Fatalf("agent %s not running the drill (%v)\n%s", a.addr, err, p.stderr.String())
		}
	}
	// Into the second stage's hold (it starts at 5 s), so that the stop
	// cuts a stage the drill has measured for a few seconds.
	time.Sleep(7 * time.Second)

	// Watch both agents from the flip on.
	stopped := make([]time.Time, len(agents))
	var wg sync.WaitGroup
	flipped := time.Now()
	for i, a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(flipped) < 5*time.Second {
				if on, err := agentRunning(a); err == nil && !on {
					stopped[i] = time.Now()
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	resp, err := http.Post("http://"+guardAddr+"/stop?reason=e2e+agents", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	time.Sleep(time.Until(flipped.Add(1200 * time.Millisecond)))
	taggedAtStop := taggedRequests(t, s)
	wg.Wait()
	code := p.wait(t, 30*time.Second)
	if code != 105 {
		t.Fatalf("exit %d, want 105\n%s\n%s", code, p.stdout.String(), p.stderr.String())
	}
	run := readRun(t, filepath.Join(out, "run.json"))
	started, err := time.Parse(time.RFC3339Nano, run.Started)
	if err != nil {
		t.Fatal(err)
	}
	stopAt := flipped.Sub(started)
	// A stall of the machine after the switch delays the stop by as long:
	// the merged intervals say how long the agents were kept from running.
	stall := stallSince(run, stopAt)
	limit := time.Second + stall
	for i, at := range stopped {
		switch {
		case at.IsZero():
			t.Errorf("agent %s still ran its plan 5 s after the switch", agents[i].addr)
		case at.Sub(flipped) > limit:
			t.Errorf("agent %s ran its plan until %v after the switch, want ≤ 1 s (+ the agents' stall, %v)", agents[i].addr, at.Sub(flipped).Round(time.Millisecond), stall)
		default:
			t.Logf("agent %s: engine ended %v after the switch", agents[i].addr, at.Sub(flipped).Round(time.Millisecond))
		}
	}
	if n := taggedRequests(t, s); n != taggedAtStop {
		if limit > 1200*time.Millisecond {
			t.Logf("the shop received %v tagged requests more than 1.2 s after the switch, the agents stalled %v", n-taggedAtStop, stall)
		} else {
			t.Errorf("the shop received %v tagged requests more than 1.2 s after the switch", n-taggedAtStop)
		}
	}

	// The merged result: aborted by the switch, the cluster's report with
	// both agents, nothing sent in an interval after the stop + 1 s.
	if run.Status != "aborted" || !strings.Contains(run.AbortReason, "e2e agents") {
		t.Errorf("run.json: status %s, reason %q; want aborted by the hot switch", run.Status, run.AbortReason)
	}
	ended, _ := time.Parse(time.RFC3339Nano, run.Ended)
	if d := ended.Sub(flipped); d > limit {
		t.Errorf("the drill's load ended %v after the switch, want ≤ 1 s (+ the agents' stall, %v)", d.Round(time.Millisecond), stall)
	}
	for _, iv := range run.Intervals {
		if time.Duration(iv.T)*time.Second >= stopAt+limit && iv.Sent > 0 {
			t.Errorf("interval %d s sent %d requests; the switch was at %v", iv.T, iv.Sent, stopAt.Round(time.Millisecond))
		}
	}
	var cl struct {
		Agents []struct {
			Addr, Status string
			Sent         int64
		}
	}
	if err := json.Unmarshal(run.Cluster, &cl); err != nil || len(cl.Agents) != 2 {
		t.Fatalf("run.json cluster %s: %v", run.Cluster, err)
	}
	for _, a := range cl.Agents {
		if a.Status != "done" || a.Sent < 50 {
			t.Errorf("agent %s: status %s, sent %d; want done after sending its share", a.Addr, a.Status, a.Sent)
		}
	}

	// Stages and services measured as locally: both stages, the second
	// cut by the stop, every listed service with a rate in each.
	var stages struct {
		Steps []struct {
			Phase    string
			Achieved float64
			Services []struct {
				Name        string
				RequestRate float64 `json:"request_rate"`
				Error       string
			}
		}
	}
	b, err := os.ReadFile(filepath.Join(out, "stages.json"))
	if err != nil || json.Unmarshal(b, &stages) != nil || len(stages.Steps) != 2 {
		t.Fatalf("stages.json: %v\n%s", err, b)
	}
	// A stall of the machine next to a hold moves its arrivals into or
	// out of it: the run says so.
	timed := t.Errorf
	if d := stallSince(run, 0); d >= 100*time.Millisecond {
		timed = t.Logf
		t.Logf("the agents' host stalled them for up to %v: the stages' rates are not judged", d)
	}
	for i, want := range []float64{62, 124} {
		st := stages.Steps[i]
		if st.Achieved < 0.9*want || st.Achieved > 1.1*want {
			timed("stage %s achieved %.1f req/s over the two agents, want ≈%.0f", st.Phase, st.Achieved, want)
		}
		if len(st.Services) != 3 {
			t.Errorf("stage %s: services %+v", st.Phase, st.Services)
		}
		for _, sv := range st.Services {
			if sv.Error != "" || sv.RequestRate <= 0 {
				t.Errorf("stage %s: service %+v not measured", st.Phase, sv)
			}
		}
	}
	got := readServices(t, out)
	if g := got["gateway"]; g.Method != "utilization" || g.PerReplicaQPS < 3600 || g.PerReplicaQPS > 4400 {
		t.Errorf("gateway: %+v; want the utilization law's 4000 req/s ±10%%", g)
	}
	stdout := p.stdout.String()
	for _, want := range []string{"STOPPED at", "in stage steady", "last healthy stage: warm", "ok: no leak"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "report.html")); err != nil {
		t.Errorf("no report: %v", err)
	}
}
