package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
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

// counter is a loopback server that counts requests by path and keeps
// their arrival times.
type counter struct {
	mu    sync.Mutex
	paths map[string]int
	times []time.Time
	srv   *http.Server
	url   string
}

func newCounter(t *testing.T, ip string) *counter {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	c := &counter{paths: map[string]int{}, url: "http://" + ln.Addr().String()}
	c.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.paths[r.URL.Path]++
		c.times = append(c.times, time.Now())
		c.mu.Unlock()
		if r.URL.Path == "/slow" {
			time.Sleep(100 * time.Millisecond)
		}
	})}
	go c.srv.Serve(ln)
	t.Cleanup(func() { c.srv.Close() })
	return c
}

func (c *counter) count(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.paths[path]
}

// A k6 script over two agents: the coordinator archives it, each agent's
// k6 child runs its execution segment, the merged run.json matches what the
// server counted, each agent did a share, a request outside the agents'
// allow list is refused by their k6, and a signal stops every agent's k6
// within a second.
func TestDistributedK6Script(t *testing.T) {
	srv := newCounter(t, "127.0.0.1")
	far := newCounter(t, "127.0.0.2") // loopback, but outside the agents' allow list
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	if p := start(t, "certs", "--out", certs); p.wait(t, 30*time.Second) != 0 {
		t.Fatalf("certs: %s", p.stderr.String())
	}
	var addrs []string
	for i := 0; i < 2; i++ {
		addr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
		a := start(t, "agent", "--listen", addr, "--allow-target", "127.0.0.1/32", "--tls-cert", filepath.Join(certs, "agent.pem"),
			"--tls-key", filepath.Join(certs, "agent-key.pem"), "--client-ca", filepath.Join(certs, "ca.pem"))
		t.Cleanup(func() { a.cmd.Process.Signal(syscall.SIGTERM); a.wait(t, 10*time.Second) })
		addrs = append(addrs, addr)
	}
	waitListening(t, addrs...)
	tls := []string{"--agents", strings.Join(addrs, ","), "--tls-cert", filepath.Join(certs, "coordinator.pem"),
		"--tls-key", filepath.Join(certs, "coordinator-key.pem"), "--ca", filepath.Join(certs, "ca.pem")}

	os.WriteFile(filepath.Join(dir, "paths.js"), []byte("export const shared = '/shared';\n"), 0o644)
	script := filepath.Join(dir, "dist.js")
	os.WriteFile(script, []byte(`import http from 'k6/http';
import { check } from 'k6';
import { shared as sharedPath } from './paths.js';

export const options = {
  scenarios: {
    rate: { executor: 'constant-arrival-rate', rate: 100, timeUnit: '1s', duration: '3s', preAllocatedVUs: 20, exec: 'rate' },
    shared: { executor: 'shared-iterations', vus: 4, iterations: 300, maxDuration: '20s', exec: 'shared' },
    far: { executor: 'shared-iterations', vus: 1, iterations: 1, exec: 'far' },
  },
  thresholds: {
    'http_reqs{scenario:shared}': ['count==300'],
    checks: ['rate==1'],
  },
};

export function rate() { http.get(__ENV.BASE + '/rate', { tags: { name: 'rate' } }); }
export function shared() {
  const r = http.get(__ENV.BASE + sharedPath, { tags: { name: 'shared' } });
  check(r, { 'status 200': (x) => x.status === 200 });
}
export function far() { http.get(__ENV.FAR + '/far', { tags: { name: 'far' } }); }
`), 0o644)
	out := filepath.Join(dir, "run.json")
	dash := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	p := start(t, append([]string{"run", "-q", script, "--out", out, "--dashboard", dash,
		"--k6-arg=--env=BASE=" + srv.url, "--k6-arg=--env=FAR=" + far.url}, tls...)...)
	// The live dashboard charts the merged seconds of a k6 script on
	// agents as it does a scenario's.
	points := make(chan int, 1)
	go func() { points <- countEvents(dash, "point", 30*time.Second) }()
	if code := p.wait(t, time.Minute); code != 0 {
		t.Fatalf("distributed k6 run: exit %d\n%s\n%s", code, p.stdout.String(), p.stderr.String())
	}
	run := readRun(t, out)
	if n := <-points; n < 2 {
		t.Errorf("the dashboard sent %d seconds of the distributed k6 run, want one a second", n)
	}
	if n := srv.count("/shared"); n != 300 {
		t.Errorf("server saw %d shared iterations, want exactly 300 across the agents", n)
	}
	if n := srv.count("/rate"); n < 294 || n > 306 {
		t.Errorf("server saw %d arrival-rate requests, want 300 ± 2%%", n)
	}
	for name, path := range map[string]string{"shared": "/shared", "rate": "/rate"} {
		q, ok := run.Requests[name]
		if !ok {
			t.Errorf("run.json has no %s requests", name)
			continue
		}
		if got := q.Totals.Completed + q.Totals.Failed; got != int64(srv.count(path)) || q.Totals.Failed != 0 {
			t.Errorf("run.json counts %d %s requests (%d failed), the server %d", got, name, q.Totals.Failed, srv.count(path))
		}
	}
	if n := far.count("/far"); n != 0 {
		t.Errorf("the request to 127.0.0.2 reached it (%d): the agents' k6 must refuse addresses outside their allow list", n)
	}
	if q, ok := run.Requests["far"]; !ok || q.Totals.Failed != 1 || !strings.Contains(fmt.Sprint(q.ErrorSamples), "blacklist") {
		t.Errorf("far request in run.json: %+v, want one failure naming k6's blacklist", q)
	}
	var rep struct {
		Agents []struct {
			Addr   string `json:"addr"`
			Status string `json:"status"`
			Sent   int64  `json:"sent"`
		} `json:"agents"`
	}
	if err := json.Unmarshal(run.Cluster, &rep); err != nil || len(rep.Agents) != 2 {
		t.Fatalf("cluster report %s: %v", run.Cluster, err)
	}
	t.Logf("server: shared %d, rate %d; agents %+v; merged sent %d", srv.count("/shared"), srv.count("/rate"), rep.Agents, run.Totals.Sent)
	var sum int64
	for _, a := range rep.Agents {
		if a.Status != "done" || a.Sent < 200 {
			t.Errorf("agent %s: %s, sent %d: want done with about half of ~601", a.Addr, a.Status, a.Sent)
		}
		sum += a.Sent
	}
	if sum != run.Totals.Sent {
		t.Errorf("agents sent %d, the merged run %d", sum, run.Totals.Sent)
	}
	// The script's thresholds, judged on the merged data: each agent alone
	// made about 150 shared requests.
	if !strings.Contains(p.stdout.String(), "ok   http_reqs{scenario:shared} count==300") {
		t.Errorf("summary lacks the merged threshold verdict:\n%s", p.stdout.String())
	}

	// A signal to the coordinator stops every agent's k6 within a second.
	long := filepath.Join(dir, "long.js")
	os.WriteFile(long, []byte(`import http from 'k6/http';
export const options = { scenarios: { s: { executor: 'constant-vus', vus: 4, duration: '40s' } } };
export default function () { http.get(__ENV.BASE + '/slow'); }
`), 0o644)
	p = start(t, append([]string{"run", "-q", "--no-summary", long, "--k6-arg=--env=BASE=" + srv.url}, tls...)...)
	deadline := time.Now().Add(20 * time.Second)
	for srv.count("/slow") < 20 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	sig := time.Now()
	p.cmd.Process.Signal(syscall.SIGINT)
	if code := p.wait(t, 20*time.Second); code != 105 {
		t.Errorf("stopped run: exit %d, want 105\n%s", code, p.stderr.String())
	}
	srv.mu.Lock()
	last := srv.times[len(srv.times)-1]
	srv.mu.Unlock()
	t.Logf("last request %v after the signal", last.Sub(sig))
	if d := last.Sub(sig); d > time.Second {
		t.Errorf("a request arrived %v after the signal: want every agent's k6 stopped within 1s", d)
	}
}

// countEvents reads the dashboard's event stream at addr (retrying until
// it is up) and counts the events of one name until the stream ends or
// the time is up.
func countEvents(addr, name string, within time.Duration) int {
	deadline := time.Now().Add(within)
	var resp *http.Response
	for {
		r, err := http.Get("http://" + addr + "/events")
		if err == nil {
			resp = r
			break
		}
		if time.Now().After(deadline) {
			return 0
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer resp.Body.Close()
	time.AfterFunc(time.Until(deadline), func() { resp.Body.Close() })
	n := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if sc.Text() == "event: "+name {
			n++
		}
	}
	return n
}
