package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loadcap/loadcap/internal/demo/shop"
	"github.com/loadcap/loadcap/test/testkit"
)

// startNginx starts Debian's nginx as a reverse proxy on a free loopback
// port in front of backends (host:port), with its own configuration,
// prefix, pid file, logs and temporary paths in a temporary directory,
// in the foreground; it returns nginx's base URL and its directory. It
// skips the test without the binary unless LOADCAP_REQUIRE_NGINX=1.
func startNginx(t *testing.T, backends ...string) (url, dir string) {
	t.Helper()
	bin := "/usr/sbin/nginx"
	if _, err := os.Stat(bin); err != nil {
		if p, lerr := exec.LookPath("nginx"); lerr == nil {
			bin = p
		} else if os.Getenv("LOADCAP_REQUIRE_NGINX") == "1" {
			t.Fatalf("LOADCAP_REQUIRE_NGINX=1 but no nginx binary: %v", err)
		} else {
			t.Skip("no nginx binary (nginx-light; LOADCAP_REQUIRE_NGINX=1 makes this a failure)")
		}
	}
	dir = t.TempDir()
	var servers strings.Builder
	for _, b := range backends {
		fmt.Fprintf(&servers, "    server %s max_fails=0;\n", b)
	}
	// The master runs as whoever runs the test; as root, its workers would
	// be nobody, who cannot write into the test's directory.
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;\n"
	}
	for attempt := 1; ; attempt++ {
		addr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
		conf := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(conf, fmt.Appendf(nil, `%sworker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 1024; }
http {
  access_log %[2]s/access.log;
  client_body_temp_path %[2]s/client_body;
  proxy_temp_path %[2]s/proxy;
  fastcgi_temp_path %[2]s/fastcgi;
  uwsgi_temp_path %[2]s/uwsgi;
  scgi_temp_path %[2]s/scgi;
  upstream gateways {
%[3]s    keepalive 32;
  }
  server {
    listen %[4]s;
    location / {
      proxy_pass http://gateways;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`, user, dir, servers.String(), addr), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"), "-g", "daemon off;")
		out := &testkit.SyncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		// Its own process group: should the master die without stopping its
		// workers, they are killed with the group.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.WaitDelay = 2 * time.Second
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		pgid := cmd.Process.Pid
		bound := time.AfterFunc(3*time.Minute, func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })
		t.Cleanup(func() {
			bound.Stop()
			_ = cmd.Process.Signal(syscall.SIGTERM) // fast shutdown: the master stops its workers
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
			}
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-exited
			if t.Failed() {
				log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
				t.Logf("nginx output:\n%s\nerror.log:\n%s", out.String(), log)
			}
		})
		if poll(10*time.Second, func() bool {
			select {
			case <-exited:
				return true
			default:
			}
			return listening(addr)
		}) {
			select {
			case <-exited:
				if attempt < 3 { // the port was taken between the probe and the bind
					continue
				}
				log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
				t.Fatalf("nginx exited:\n%s\n%s", out.String(), log)
			default:
				return "http://" + addr, dir
			}
		}
		t.Fatalf("nginx on %s did not come up:\n%s", addr, out.String())
	}
}

// listening reports whether addr accepts a TCP connection.
func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// A tagged drill through nginx in front of two gateway replicas: the
// shadow tag crosses nginx (the drill's orders are in the shadow table,
// tagged, production tables empty, the provider never charged, the audit
// clean) and nginx spread the drill over both replicas.
func TestDrillThroughNginx(t *testing.T) {
	s := drillShopE2E(t, nil) // every service, with gateway A
	up := map[string]string{}
	for _, name := range []string{shop.Product, shop.Cart, shop.Order, shop.User} {
		ep, _ := s.Endpoint(name)
		up[name] = ep.Addr
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	b, err := shop.Start(ctx, shop.Config{Dir: t.TempDir(), Upstreams: up}, shop.Spec{Name: shop.Gateway}) // gateway B
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(); cancel() })
	ga, _ := s.Endpoint(shop.Gateway)
	gb, _ := b.Endpoint(shop.Gateway)
	proxy, dir := startNginx(t, ga.Addr, gb.Addr)

	recording, err := filepath.Abs("../../scenarios/examples/shop-traffic.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	orderEp, _ := s.Endpoint(shop.Order)
	plan := filepath.Join(t.TempDir(), "drill.yaml")
	if err := os.WriteFile(plan, fmt.Appendf(nil, `drill_id: e2e-nginx
target: %s
traffic: {replay: %q}
stages:
  - {name: steady, multiplier: 1, ramp: 1s, hold: 4s}
guard:
  rules:
    - {name: drill-errors, drill: "error<1%%"}
    - {name: proxy-health, health: "%s/healthz"}
services:
  gateway-a: {metrics: %q}
  gateway-b: {metrics: %q}
  order: {metrics: %q}
isolation: {dsn: %q, tables: [orders, payments], id_offset: %d, audit: true}
`, proxy, recording, proxy, ga.MetricsURL, gb.MetricsURL, orderEp.MetricsURL, s.DSN(), s.IDOffset()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	p := start(t, "drill", plan, "--out-dir", out, "-q")
	if code := p.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("exit %d, want 0\n%s\n%s", code, p.stdout.String(), p.stderr.String())
	}
	if !strings.Contains(p.stdout.String(), "ok: no leak") {
		t.Errorf("audit not clean:\n%s", p.stdout.String())
	}
	// The tag crossed nginx: every order the drill placed is a tagged row
	// of the shadow table; nothing reached production.
	orders := len(rowsOf(t, s.DB(), "shadow_orders"))
	if orders == 0 {
		t.Fatalf("the drill placed no order through nginx:\n%s", p.stdout.String())
	}
	checkRows(t, s, "shadow_orders", orders, "e2e-nginx")
	checkRows(t, s, "orders", 0, "")
	checkRows(t, s, "payments", 0, "")
	if n := s.Provider().Charges(); n != 0 {
		t.Errorf("the payment provider was charged %d times by a drill", n)
	}
	// Both replicas served tagged traffic, and nginx logged it.
	ta, tb := taggedRequests(t, s), taggedOf(t, gb.MetricsURL)
	total := ta + tb
	if ta < 0.2*total || tb < 0.2*total {
		t.Errorf("tagged requests: gateway A %v, gateway B %v; want both replicas serving", ta, tb)
	}
	run := readRun(t, filepath.Join(out, "run.json"))
	answered := run.Totals.Completed + run.Totals.Failed
	if float64(answered) != total {
		t.Errorf("the drill had %d requests answered, the gateways served %v tagged ones", answered, total)
	}
	access, _ := os.ReadFile(filepath.Join(dir, "access.log"))
	if n := strings.Count(string(access), "\n"); int64(n) < answered {
		t.Errorf("nginx logged %d requests, the drill had %d answered", n, answered)
	}
	t.Logf("%d tagged orders in shadow_orders; gateway A served %v, B %v tagged requests through nginx", orders, ta, tb)
}
