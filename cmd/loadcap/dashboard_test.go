package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loadcap/loadcap/loadgen/target"
	"github.com/loadcap/loadcap/test/testkit"
)

// dashboardPage is a headless Chromium tab on a command's dashboard, with
// every console error, exception and failed load of the page collected.
type dashboardPage struct {
	*testkit.Tab
	devtools *testkit.DevTools
	mu       sync.Mutex
	problems []string
}

// openDashboard waits for the command to print its dashboard's URL, then
// loads it in a fresh Chromium.
func openDashboard(t *testing.T, ctx context.Context, stderr *testkit.SyncBuffer) (*dashboardPage, string) {
	t.Helper()
	exe := testkit.Browser(t)
	urlRe := regexp.MustCompile(`dashboard: (http://\S+)`)
	var u string
	for deadline := time.Now().Add(30 * time.Second); u == ""; {
		if m := urlRe.FindStringSubmatch(stderr.String()); m != nil {
			u = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("no dashboard URL on stderr after 30 s:\n%s", stderr)
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
	d := testkit.StartBrowser(t, exe, t.TempDir())
	p := &dashboardPage{devtools: d}
	loaded := make(chan struct{}, 1)
	tab, err := d.NewPage(ctx, func(method string, params json.RawMessage) {
		if method == "Page.loadEventFired" {
			select {
			case loaded <- struct{}{}:
			default:
			}
		}
		if s := testkit.Problem(method, params); s != "" {
			p.mu.Lock()
			p.problems = append(p.problems, s)
			p.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	p.Tab = tab
	if err := tab.Navigate(ctx, u); err != nil {
		t.Fatal(err)
	}
	select {
	case <-loaded:
	case <-ctx.Done():
		t.Fatal("the dashboard did not load")
	}
	return p, u
}

// charts is what the page's charts plot: points per chart, the path of
// each series.
type charts struct {
	Points map[string]int    `json:"points"`
	Paths  map[string]string `json:"paths"`
}

func (p *dashboardPage) charts(t *testing.T, ctx context.Context) charts {
	t.Helper()
	var c charts
	err := p.Eval(ctx, `(() => {
		const out = {points: {}, paths: {}};
		for (const f of document.querySelectorAll("figure.chart")) {
			out.points[f.id] = Number(f.dataset.points || 0);
			for (const p of f.querySelectorAll("path")) out.paths[f.id + "/" + p.dataset.series] = p.getAttribute("d");
		}
		return out;
	})()`, &c)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitFor polls a boolean expression in the page.
func (p *dashboardPage) waitFor(t *testing.T, ctx context.Context, expr string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var ok bool
		if err := p.Eval(ctx, expr, &ok); err != nil {
			t.Fatal(err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			var body string
			_ = p.Eval(ctx, `document.body.innerText`, &body)
			t.Fatalf("after %v the page still fails %s; it shows:\n%s", within, expr, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// click clicks an element with the mouse, as a person does.
func (p *dashboardPage) click(t *testing.T, ctx context.Context, d *testkit.DevTools, selector string) {
	t.Helper()
	var at struct{ X, Y float64 }
	if err := p.Eval(ctx, `(() => { const r = document.querySelector(`+jsString(selector)+`).getBoundingClientRect();
		return {X: r.left + r.width / 2, Y: r.top + r.height / 2}; })()`, &at); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"mousePressed", "mouseReleased"} {
		if _, err := d.Call(ctx, p.Session, "Input.dispatchMouseEvent", map[string]any{
			"type": typ, "x": at.X, "y": at.Y, "button": "left", "clickCount": 1}); err != nil {
			t.Fatal(err)
		}
	}
}

func jsString(s string) string { b, _ := json.Marshal(s); return string(b) }

// checkNoProblems fails on anything the page logged as an error or
// warning.
func (p *dashboardPage) checkNoProblems(t *testing.T) {
	t.Helper()
	time.Sleep(100 * time.Millisecond) // late messages
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.problems {
		t.Errorf("the page: %s", s)
	}
}

// TestRunDashboardInBrowser: during a bounded run on loopback the charts
// grow every second, there is no stop button on a run, and at the end the
// page says how the run ended and links the report, which it keeps after
// loadcap exited.
func TestRunDashboardInBrowser(t *testing.T) {
	url := testTarget(t, target.Config{ServiceTime: 2 * time.Millisecond, ErrorRate: 0.1})
	dir := t.TempDir()
	var stdout, stderr testkit.SyncBuffer
	done := started(t, make(chan os.Signal), &stdout, &stderr, "run", "--url", url, "--rate", "40", "--duration", "5s",
		"-q", "--dashboard", "127.0.0.1:0", "--report", filepath.Join(dir, "report.html"), "--out", filepath.Join(dir, "run.json"))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, _ := openDashboard(t, ctx, &stderr)
	p.waitFor(t, ctx, `Number(document.getElementById("throughput").dataset.points) > 0`, 5*time.Second)
	before := p.charts(t, ctx)
	time.Sleep(2200 * time.Millisecond)
	after := p.charts(t, ctx)
	checkGrew(t, before, after, "latency/p99", "throughput/sent", "throughput/failed", "errors/5xx", "inflight/in flight")
	var stopShown bool
	if err := p.Eval(ctx, `getComputedStyle(document.getElementById("stop")).display !== "none"`, &stopShown); err != nil {
		t.Fatal(err)
	}
	if stopShown {
		t.Error("a run's dashboard shows the stop button")
	}
	if code := exited(t, done, 30*time.Second, &stderr); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	p.waitFor(t, ctx, `document.getElementById("verdict").textContent.includes("The run ended: passed (exit 0)")`, time.Second)
	p.waitFor(t, ctx, `document.getElementById("report-link").href.startsWith("blob:")`, time.Second)
	// The page kept the whole report.
	fi, err := os.Stat(filepath.Join(dir, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	var kept string
	if err := p.Eval(ctx, `document.getElementById("report-link").dataset.bytes || ""`, &kept); err != nil || kept != fmt.Sprint(fi.Size()) {
		t.Errorf("the page kept %q bytes of the %d-byte report (%v)", kept, fi.Size(), err)
	}
	p.checkNoProblems(t)
}

// checkGrew fails unless every chart has more points than before and each
// named series was redrawn.
func checkGrew(t *testing.T, before, after charts, series ...string) {
	t.Helper()
	for id, n := range after.Points {
		if n <= before.Points[id] {
			t.Errorf("chart %s plots %d points, as 2 s before", id, n)
		}
	}
	for _, s := range series {
		if after.Paths[s] == "" || after.Paths[s] == before.Paths[s] {
			t.Errorf("series %s: %q before, %q 2 s later; want it drawn and changed", s, before.Paths[s], after.Paths[s])
		}
	}
}

// TestDrillDashboardStop: a drill's dashboard shows its stages, guard and
// services as they run; the stop button, with the token the URL carries,
// ends the load within a second through the guard's hot switch (exit 105),
// and the page then says so.
func TestDrillDashboardStop(t *testing.T) {
	if testing.Short() {
		t.Skip("a drill of about 10 s")
	}
	s := drillShop(t)
	// The drill goes through a proxy that notes when each request arrives.
	shopURL, _ := url.Parse(s.URL())
	var last atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		last.Store(time.Now().UnixNano())
		httputil.NewSingleHostReverseProxy(shopURL).ServeHTTP(w, r)
	}))
	defer proxy.Close()
	planFile := drillPlan(t, s, `  - {name: warm, multiplier: 1, ramp: 1s, hold: 3s}
  - {name: peak, multiplier: 2, ramp: 1s, hold: 60s}`, `guard:
  rules: [{name: drill-latency, drill: "p(99)<3s"}]
`)
	plan, _ := os.ReadFile(planFile)
	if err := os.WriteFile(planFile, []byte(strings.Replace(string(plan), "target: "+s.URL(), "target: "+proxy.URL, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	var stdout, stderr testkit.SyncBuffer
	began := time.Now()
	done := started(t, make(chan os.Signal), &stdout, &stderr, "drill", planFile, "--out-dir", out, "-q", "--dashboard", "127.0.0.1:0")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	p, u := openDashboard(t, ctx, &stderr)
	token := u[strings.Index(u, "#token=")+len("#token="):]
	if !strings.Contains(stderr.String(), "asks for the token "+token) {
		t.Errorf("the token is not printed on its own:\n%s", stderr.String())
	}
	p.waitFor(t, ctx, `Number(document.getElementById("throughput").dataset.points) > 0`, 10*time.Second)
	before := p.charts(t, ctx)
	time.Sleep(2200 * time.Millisecond)
	checkGrew(t, before, p.charts(t, ctx), "latency/p99", "throughput/sent", "inflight/in flight")
	// The warm stage's hold is over: planned against achieved, its
	// services measured, the guard's rule evaluated.
	p.waitFor(t, ctx, `document.querySelectorAll("#stages tbody tr").length === 2 &&
		document.querySelector("#stages svg rect[data-series=achieved]") !== null &&
		document.querySelectorAll("#services tbody tr").length === 3 &&
		/drill-latency/.test(document.querySelector("#guard tbody").textContent) &&
		document.querySelector("#guard tbody .state").textContent === "ok"`, 10*time.Second)
	var stageRow string
	if err := p.Eval(ctx, `document.querySelector("#stages tbody tr").textContent`, &stageRow); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stageRow, "warm") || !strings.Contains(stageRow, "62") {
		t.Errorf("the warm stage's row reads %q; want its planned 62 req/s", stageRow)
	}
	if dir := os.Getenv("LOADCAP_SCREENSHOTS"); dir != "" {
		if shot, err := p.Screenshot(ctx); err == nil {
			_ = os.WriteFile(filepath.Join(dir, "dashboard-drill.png"), shot, 0o644)
		}
	}
	p.waitFor(t, ctx, `getComputedStyle(document.getElementById("stop")).display !== "none"`, time.Second)
	clicked := time.Now()
	p.click(t, ctx, p.devtools, "#stop-button")
	p.waitFor(t, ctx, `document.getElementById("stop-msg").textContent.startsWith("Stopped")`, 2*time.Second)
	code := exited(t, done, 60*time.Second, &stderr)
	if code != 105 {
		t.Fatalf("exit %d, want 105 (stopped)\n%s\n%s", code, stdout.String(), stderr.String())
	}
	late := time.Unix(0, last.Load()).Sub(clicked)
	if late > time.Second {
		t.Errorf("a request reached the shop %v after the click; want the load ended within 1 s", late)
	}
	t.Logf("the last request reached the shop %v after the click", late)
	if took := time.Since(began); took > 60*time.Second {
		t.Errorf("the drill ran %v: the stop did not end the 60 s stage", took)
	}
	if !strings.Contains(stdout.String(), "hot switch: the dashboard's stop button from 127.0.0.1:") {
		t.Errorf("the outcome does not name the dashboard's stop:\n%s", stdout.String())
	}
	run := readRun(t, filepath.Join(out, "run.json"))
	if run.Status != "aborted" || !strings.Contains(run.AbortReason, "hot switch") {
		t.Errorf("run.json: %s, %q; want aborted by the hot switch", run.Status, run.AbortReason)
	}
	p.waitFor(t, ctx, `document.getElementById("verdict").textContent.includes("stopped: hot switch") &&
		document.getElementById("verdict").textContent.includes("(exit 105)") &&
		document.getElementById("report-link").href.startsWith("blob:")`, time.Second)
	p.checkNoProblems(t)
}

// TestDashboardFlagErrors: --dashboard on an address it cannot listen on,
// or on a dry run, is a usage error that sends nothing.
func TestDashboardFlagErrors(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer srv.Close()
	busy := strings.TrimPrefix(srv.URL, "http://") // already taken
	r := loadcap(t, nil, false, "run", "--url", srv.URL, "--rate", "10", "--duration", "1s", "-q", "--dashboard", busy)
	if r.code != 2 || !strings.Contains(r.stderr, "--dashboard") {
		t.Errorf("a taken address: exit %d, want 2\n%s", r.code, r.stderr)
	}
	s := drillShop(t)
	plan := drillPlan(t, s, "  - {name: one, multiplier: 1, hold: 2s}", "")
	r = loadcap(t, nil, false, "drill", plan, "--dry-run", "--dashboard", "127.0.0.1:0")
	if r.code != 2 || !strings.Contains(r.stderr, "a dry run sends nothing") {
		t.Errorf("a dry run: exit %d, want 2\n%s", r.code, r.stderr)
	}
	if hits.Load() != 0 {
		t.Errorf("%d requests sent", hits.Load())
	}
}
