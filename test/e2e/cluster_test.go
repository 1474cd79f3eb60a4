package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loadcap/loadcap/test/testkit"
)

// A user's distributed run: certificates from loadcap certs, two agents
// with mutual TLS, the coordinator's merged result exact in count, an
// agent refusing a coordinator without a certificate, and a plan aimed
// outside an agent's allow list refused with the host named.
func TestDistributedRunWithCerts(t *testing.T) {
	url := startTarget(t)
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	if p := start(t, "certs", "--out", certs); p.wait(t, 30*time.Second) != 0 {
		t.Fatalf("certs: %s", p.stderr.String())
	}
	var addrs []string
	for i := 0; i < 2; i++ {
		addr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
		a := start(t, "agent", "--listen", addr, "--tls-cert", filepath.Join(certs, "agent.pem"),
			"--tls-key", filepath.Join(certs, "agent-key.pem"), "--client-ca", filepath.Join(certs, "ca.pem"))
		t.Cleanup(func() { a.cmd.Process.Signal(syscall.SIGTERM); a.wait(t, 10*time.Second) })
		addrs = append(addrs, addr)
	}
	waitListening(t, addrs...)
	scen := filepath.Join(dir, "s.yaml")
	os.WriteFile(scen, []byte(`target: `+url+`
scenarios:
  s: {executor: constant-arrival-rate, rate: 300, duration: 2s, preAllocatedVUs: 10}
requests:
  - {name: home, path: /}
`), 0o644)
	out := filepath.Join(dir, "run.json")
	tls := []string{"--tls-cert", filepath.Join(certs, "coordinator.pem"), "--tls-key", filepath.Join(certs, "coordinator-key.pem"), "--ca", filepath.Join(certs, "ca.pem")}
	p := start(t, append([]string{"run", "-q", "--no-summary", scen, "--agents", strings.Join(addrs, ","), "--out", out}, tls...)...)
	if code := p.wait(t, time.Minute); code != 0 {
		t.Fatalf("distributed run: exit %d\n%s", code, p.stderr.String())
	}
	run := readRun(t, out)
	if run.Totals.Scheduled != 600 || run.Totals.Failed != 0 || len(run.Cluster) == 0 || run.Partial {
		t.Errorf("totals %+v partial %v cluster %s: want exactly 600 over two agents", run.Totals, run.Partial, run.Cluster)
	}
	// An agent its host kept from running in the last second cuts off the
	// arrivals it held back at the end (by design): the run says so, and
	// then only its counts (readRun) must add up.
	if n := stalledSeconds(run, time.Second); n > 0 {
		t.Logf("the agents' host stalled them in %d of the last seconds (up to %.0f ms): %d of 600 completed, %d dropped",
			n, run.Totals.MaxStallMs, run.Totals.Completed, run.Totals.Dropped)
	} else if run.Totals.Completed != 600 {
		t.Errorf("totals %+v: want all 600 completed", run.Totals)
	}

	// Without the coordinator's certificate the agents refuse the plan.
	p = start(t, "run", "-q", "--no-summary", scen, "--agents", addrs[0], "--ca", filepath.Join(certs, "ca.pem"))
	if code := p.wait(t, time.Minute); code == 0 {
		t.Errorf("a coordinator without a client certificate was served")
	}
	// A target outside the allow list (loopback by default) is refused
	// before anything is sent (.invalid never resolves).
	far := filepath.Join(dir, "far.yaml")
	os.WriteFile(far, []byte("target: http://shop.invalid:8080\nscenarios:\n  s: {executor: constant-vus, vus: 1, duration: 1s}\nrequests:\n  - {name: a, path: /}\n"), 0o644)
	p = start(t, append([]string{"run", "-q", "--no-summary", far, "--agents", addrs[0]}, tls...)...)
	if code := p.wait(t, time.Minute); code == 0 || !strings.Contains(p.stderr.String(), "shop.invalid") {
		t.Errorf("plan outside the allow list: exit %d\n%s", code, p.stderr.String())
	}
}

// waitListening waits until every address accepts TCP connections.
func waitListening(t *testing.T, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		ok := false
		for i := 0; i < 100 && !ok; i++ {
			if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
				c.Close()
				ok = true
			} else {
				time.Sleep(50 * time.Millisecond)
			}
		}
		if !ok {
			t.Fatalf("agent %s did not come up", a)
		}
	}
}
