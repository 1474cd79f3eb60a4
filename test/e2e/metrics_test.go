package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/loadcap/loadcap/reports"
	"github.com/loadcap/loadcap/test/testkit"
)

// startPromReceiver starts the installed Prometheus on a free loopback
// port as a remote-write receiver (--web.enable-remote-write-receiver),
// scraping nothing.
func startPromReceiver(t *testing.T) *promServer {
	t.Helper()
	return startPromWith(t, "global:\n  evaluation_interval: 1s\nscrape_configs: []\n", "--web.enable-remote-write-receiver")
}

// startPromWith starts the installed Prometheus on a free loopback port
// with this configuration and these flags, its storage in a temporary
// directory. It skips the test without the binary unless
// LOADCAP_REQUIRE_PROM=1.
func startPromWith(t *testing.T, config string, flags ...string) *promServer {
	t.Helper()
	path, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("LOADCAP_REQUIRE_PROM") == "1" {
			t.Fatalf("LOADCAP_REQUIRE_PROM=1 but no prometheus binary: %v", err)
		}
		t.Skip("no prometheus binary (LOADCAP_REQUIRE_PROM=1 makes this a failure)")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(conf, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	for attempt := 1; ; attempt++ {
		addr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
		out := &testkit.SyncBuffer{}
		cmd := exec.Command(path, append([]string{"--config.file=" + conf,
			"--storage.tsdb.path=" + filepath.Join(dir, fmt.Sprint("data", attempt)),
			"--web.listen-address=" + addr, "--log.level=warn"}, flags...)...)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		p := &promServer{url: "http://" + addr, cmd: cmd, exited: make(chan struct{})}
		go func() { _ = cmd.Wait(); close(p.exited) }()
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-p.exited
			if t.Failed() {
				t.Logf("prometheus output:\n%s", out.String())
			}
		})
		c, err := api.NewClient(api.Config{Address: p.url})
		if err != nil {
			t.Fatal(err)
		}
		p.api = v1.NewAPI(c)
		if p.ready(30 * time.Second) {
			return p
		}
		select {
		case <-p.exited:
			if attempt < 3 {
				continue
			}
		default:
		}
		t.Fatalf("prometheus on %s not ready:\n%s", addr, out.String())
	}
}

// A run pushes its live metrics to the team's Prometheus with --out
// prometheus-rw=URL: once it has ended, PromQL over the pushed series
// counts the requests run.json counts.
func TestRunPushesToPrometheus(t *testing.T) {
	t.Parallel()
	prom := startPromReceiver(t)
	url := startTarget(t)
	out := filepath.Join(t.TempDir(), "run.json")
	p := start(t, "run", "-q", "--no-summary", "--url", url+"/", "--rate", "40", "--duration", "3s",
		"--out", out, "--out", "prometheus-rw="+prom.url+"/api/v1/write")
	if code := p.wait(t, time.Minute); code != 0 {
		t.Fatalf("exit %d: %s", code, p.stderr.String())
	}
	run, err := reports.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	finished := float64(run.Totals.Completed + run.Totals.Failed)
	if finished == 0 {
		t.Fatal("the run finished no request")
	}
	for _, q := range []struct {
		query string
		want  float64
	}{
		{`sum(loadcap_requests_total{job="loadcap"})`, finished},
		{`sum(loadcap_request_duration_seconds_count{job="loadcap"})`, finished},
		{`sum(loadcap_requests_sent_total{job="loadcap"})`, float64(run.Totals.Sent)},
		{`sum(loadcap_arrivals_scheduled_total{job="loadcap"})`, float64(run.Totals.Scheduled)},
		{`sum(loadcap_remote_write_samples_dropped_total{job="loadcap"})`, 0},
	} {
		var got float64
		var ok bool
		poll(10*time.Second, func() bool { got, ok = prom.value(q.query); return ok && got == q.want })
		if !ok || got != q.want {
			t.Errorf("%s = %v (answered %v), run.json says %v", q.query, got, ok, q.want)
		}
	}
}

// A Prometheus that scrapes with native histograms negotiates protobuf
// and gets the latency as a native histogram while the run goes on.
func TestPrometheusScrapesNativeHistograms(t *testing.T) {
	t.Parallel()
	metrics := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	prom := startPromWith(t, fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 500ms
scrape_configs:
  - job_name: loadcap
    static_configs:
      - targets: [%q]
`, metrics), "--enable-feature=native-histograms")
	// Prometheus takes up to 5 s to start scraping a configured target:
	// the run starts once it tried (up is 0 until loadcap listens).
	if !poll(20*time.Second, func() bool { _, ok := prom.value(`up{job="loadcap"}`); return ok }) {
		t.Fatal("prometheus never tried to scrape loadcap")
	}
	url := startTarget(t)
	p := start(t, "run", "-q", "--no-summary", "--url", url+"/", "--rate", "20", "--duration", "6s", "--metrics-listen", metrics)
	var n float64
	var ok bool
	seen := poll(8*time.Second, func() bool {
		n, ok = prom.value(`sum(histogram_count(loadcap_request_duration_seconds{job="loadcap"}))`)
		return ok && n > 0
	})
	if code := p.wait(t, time.Minute); code != 0 {
		t.Fatalf("exit %d: %s", code, p.stderr.String())
	}
	if !seen {
		t.Errorf("no native histogram of the latency scraped during the run (count %v, answered %v)", n, ok)
	}
}
