package guard_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/model"

	"github.com/loadcap/loadcap/internal/guard"

	"github.com/loadcap/loadcap/test/testkit"
)

// TestRealPrometheus runs the guard against a real Prometheus server that
// scrapes a loopback target every second: a production SLI breach read
// through PromQL stops the drill within 2 s of becoming visible, and
// Prometheus going away stops it after the grace.
func TestRealPrometheus(t *testing.T) {
	ratio := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "shop_error_ratio", Help: "untagged error ratio"}, []string{"service"})
	ratio.WithLabelValues("cart").Set(0.01)
	ratio.WithLabelValues("order").Set(0.02)
	reg := prometheus.NewRegistry()
	reg.MustRegister(ratio)
	target := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer target.Close()

	prom := startPrometheus(t, target.Listener.Addr().String())
	c, err := api.NewClient(api.Config{Address: prom.url})
	if err != nil {
		t.Fatal(err)
	}
	papi := v1.NewAPI(c)
	// visible reports whether Prometheus answers query with at least one
	// series.
	visible := func(query string) bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		v, _, _, err := papi.Query(ctx, query, time.Now())
		vec, _ := v.(model.Vector)
		return err == nil && len(vec) > 0
	}
	waitUntil(t, 15*time.Second, "the first scrape", func() bool { return visible(`count(shop_error_ratio) == 2`) })

	const every = 500 * time.Millisecond
	rule := guard.Rule{Name: "untagged errors", PromQL: "shop_error_ratio", Max: guard.Float(0.05)}

	t.Run("an SLI breach stops within 2 s of being visible", func(t *testing.T) {
		cfg := guard.Config{Prometheus: prom.url, Every: every, Breaches: 2, Rules: []guard.Rule{rule}}
		g, stops := startGuard(t, cfg)
		if err := g.Check(context.Background()); err != nil {
			t.Fatalf("pre-flight: %v", err)
		}
		waitUntil(t, 5*time.Second, "two good evaluations", func() bool {
			st := g.Status().Rules[0]
			return st.State == guard.StateOK && st.Evaluations >= 2
		})
		set := time.Now()
		ratio.WithLabelValues("cart").Set(0.3)
		var seen time.Time
		waitUntil(t, 10*time.Second, "the breach in Prometheus", func() bool {
			seen = time.Now()
			return visible(`shop_error_ratio{service="cart"} > 0.05`)
		})
		b, at := stops.wait(t, 10*time.Second)
		t.Logf("cart error ratio set → visible in Prometheus %v → guard stop %v later (every %v, K=2); %v from the set",
			seen.Sub(set).Round(time.Millisecond), at.Sub(seen).Round(time.Millisecond), every, at.Sub(set).Round(time.Millisecond))
		if late := at.Sub(seen); late > 2*time.Second {
			t.Errorf("stopped %v after the breach was visible in Prometheus, want ≤ 2 s", late)
		}
		if b.Kind != guard.KindPromQL || b.Value != 0.3 || b.Limit != 0.05 || b.Consecutive != 2 {
			t.Errorf("breach %+v", b)
		}
		if !bytes.Contains([]byte(b.Reason), []byte(`service="cart"`)) {
			t.Errorf("reason %q does not name the service", b.Reason)
		}
		ratio.WithLabelValues("cart").Set(0.01)
		// The next subtest's guard must not read the breach still in
		// Prometheus: its first evaluation would stop it at once.
		waitUntil(t, 10*time.Second, "the breach gone from Prometheus", func() bool {
			return visible(`shop_error_ratio{service="cart"} <= 0.05`)
		})
	})

	t.Run("a series that vanishes stops after the grace", func(t *testing.T) {
		// The cart service crashed: its series leaves the scrape, and
		// Prometheus answers the rule's query with an empty vector.
		const grace = 2 * time.Second
		cart := guard.Rule{Name: "cart errors", PromQL: `shop_error_ratio{service="cart"}`, Max: guard.Float(0.05)}
		cfg := guard.Config{Prometheus: prom.url, Every: every, Rules: []guard.Rule{cart}, SignalLoss: guard.SignalLoss{Grace: grace}}
		g, stops := startGuard(t, cfg)
		waitUntil(t, 5*time.Second, "a good evaluation", func() bool { return g.Status().Rules[0].State == guard.StateOK })
		ratio.DeleteLabelValues("cart")
		defer func() { ratio.WithLabelValues("cart").Set(0.01) }()
		var gone time.Time
		waitUntil(t, 10*time.Second, "the series gone from Prometheus", func() bool {
			gone = time.Now()
			return !visible(`shop_error_ratio{service="cart"}`)
		})
		b, at := stops.wait(t, grace+10*time.Second)
		t.Logf("cart series gone from Prometheus → guard stop %v later (grace %v, every %v)", at.Sub(gone).Round(time.Millisecond), grace, every)
		if b.Kind != guard.KindSignal || b.Rule != "cart errors" || !strings.Contains(b.Reason, `no data from rule "cart errors"`) ||
			!strings.Contains(b.Reason, "query returned no series") {
			t.Errorf("breach %+v", b)
		}
		if st := g.Status().Rules[0]; st.NoData == 0 {
			t.Errorf("status %+v: the evaluations without data are not counted", st)
		}
	})

	t.Run("Prometheus going away stops after the grace", func(t *testing.T) {
		const grace = 2 * time.Second
		calm := rule
		calm.Max = guard.Float(10) // never breached: only the signal matters
		base := guard.Config{Prometheus: prom.url, Every: every, Breaches: 3, Rules: []guard.Rule{calm},
			SignalLoss: guard.SignalLoss{Grace: grace}}
		g, stops := startGuard(t, base)
		blind := base
		blind.SignalLoss.Action = guard.ActionContinue
		gb, blindStops := startGuard(t, blind)
		for _, x := range []*guard.Guard{g, gb} {
			waitUntil(t, 5*time.Second, "a good evaluation", func() bool { return x.Status().Rules[0].State == guard.StateOK })
		}
		killed := prom.kill(t)
		b, at := stops.wait(t, grace+5*time.Second)
		t.Logf("Prometheus killed → guard stop %v later (grace %v, every %v)", at.Sub(killed).Round(time.Millisecond), grace, every)
		// The grace runs from the last answer, up to one period before the kill.
		if d := at.Sub(killed); d < grace-every || d > grace+time.Second {
			t.Errorf("stopped %v after Prometheus died, want about the grace %v", d, grace)
		}
		if b.Kind != guard.KindSignal || b.Rule != "untagged errors" {
			t.Errorf("breach %+v", b)
		}
		time.Sleep(time.Until(killed.Add(grace + time.Second)))
		if st := gb.Status(); st.Stopped != nil || !st.Rules[0].SignalLost || st.Rules[0].Err == "" || len(blindStops.ch) != 0 {
			t.Errorf("with action continue: %+v; want running, signal lost shown", st)
		}
	})
}

// stopRecorder collects what a guard's stop was called with.
type stopRecorder struct{ ch chan stopCall }

type stopCall struct {
	b  guard.Breach
	at time.Time
}

func (s stopRecorder) wait(t *testing.T, d time.Duration) (guard.Breach, time.Time) {
	t.Helper()
	select {
	case c := <-s.ch:
		return c.b, c.at
	case <-time.After(d):
		t.Fatalf("no stop within %v", d)
	}
	return guard.Breach{}, time.Time{}
}

// startGuard runs a guard until the test ends.
func startGuard(t *testing.T, cfg guard.Config) (*guard.Guard, stopRecorder) {
	t.Helper()
	g, err := guard.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rec := stopRecorder{make(chan stopCall, 2)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- g.Run(ctx, func(b guard.Breach) { rec.ch <- stopCall{b, time.Now()} }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return g, rec
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); ; time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, d)
		}
	}
}

// promServer is a Prometheus process the test started.
type promServer struct {
	url    string
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has been waited for
}

// kill ends Prometheus at once (SIGKILL) and returns when.
func (p *promServer) kill(t *testing.T) time.Time {
	t.Helper()
	at := time.Now()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.exited
	return at
}

// startPrometheus starts the installed Prometheus on a free loopback port,
// scraping target (host:port) every second, with its storage in a
// temporary directory. It skips the test when Prometheus is not installed
// unless LOADCAP_REQUIRE_PROM=1.
func startPrometheus(t *testing.T, target string) *promServer {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("LOADCAP_REQUIRE_PROM") == "1" {
			t.Fatalf("LOADCAP_REQUIRE_PROM=1 but no prometheus binary: %v", err)
		}
		t.Skip("no prometheus binary (apt-get install prometheus; LOADCAP_REQUIRE_PROM=1 makes this a failure)")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(conf, fmt.Appendf(nil, `global:
  scrape_interval: 1s
  scrape_timeout: 500ms
  evaluation_interval: 1s
scrape_configs:
  - job_name: shop
    static_configs:
      - targets: [%q]
`, target), 0o600); err != nil {
		t.Fatal(err)
	}
	// A free port can be taken between its probe and Prometheus' bind:
	// try a few.
	for attempt := 1; ; attempt++ {
		addr := testkit.FreeAddr(t)
		out := &testkit.SyncBuffer{}
		cmd := exec.Command(bin,
			"--config.file="+conf,
			"--storage.tsdb.path="+filepath.Join(dir, fmt.Sprint("data", attempt)),
			"--web.listen-address="+addr,
			"--log.level=warn",
		)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		p := &promServer{url: "http://" + addr, cmd: cmd, exited: exited}
		go func() {
			_ = cmd.Wait()
			close(exited)
		}()
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-exited
			if t.Failed() {
				t.Logf("prometheus output:\n%s", out.String())
			}
		})
		if ready(p.url, exited, 30*time.Second) {
			return p
		}
		select {
		case <-exited:
			if attempt < 3 {
				continue
			}
		default:
		}
		t.Fatalf("prometheus on %s not ready:\n%s", addr, out.String())
	}
}

// ready waits for Prometheus' /-/ready, or for it to exit.
func ready(base string, exited <-chan struct{}, d time.Duration) bool {
	client := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		select {
		case <-exited:
			return false
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := client.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
	}
	return false
}
