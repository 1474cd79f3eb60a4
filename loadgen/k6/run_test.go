package k6

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/scenarios"
)

// target is the loopback server every script hits: / answers 200, /slow
// after 200 ms, /fail 500, /tag records the shadow headers it got.
type target struct {
	*httptest.Server
	mu   sync.Mutex
	tags []http.Header
}

func newTarget(t *testing.T) *target {
	tg := &target{}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(200 * time.Millisecond)
		_, _ = io.WriteString(w, "slow")
	})
	mux.HandleFunc("/fail", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) })
	mux.HandleFunc("/tag", func(w http.ResponseWriter, r *http.Request) {
		tg.mu.Lock()
		tg.tags = append(tg.tags, r.Header.Clone())
		tg.mu.Unlock()
	})
	tg.Server = httptest.NewServer(mux)
	t.Cleanup(tg.Close)
	return tg
}

// summary is the part of k6's --summary-export JSON the tests compare with.
type summary struct {
	Metrics   map[string]map[string]json.RawMessage `json:"metrics"`
	RootGroup group                                 `json:"root_group"`
}

type group struct {
	Path   string           `json:"path"`
	Groups map[string]group `json:"groups"`
	Checks map[string]struct {
		Name   string `json:"name"`
		Passes int64  `json:"passes"`
		Fails  int64  `json:"fails"`
	} `json:"checks"`
}

func (s *summary) num(t *testing.T, metric, field string) float64 {
	t.Helper()
	raw, ok := s.Metrics[metric][field]
	if !ok {
		t.Fatalf("k6 summary has no %s.%s", metric, field)
	}
	var v float64
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("k6 summary %s.%s: %v", metric, field, err)
	}
	return v
}

// failed returns k6's verdicts on metric's thresholds: expression → failed.
func (s *summary) failed(t *testing.T, metric string) map[string]bool {
	t.Helper()
	var m map[string]bool
	if err := json.Unmarshal(s.Metrics[metric]["thresholds"], &m); err != nil {
		t.Fatalf("k6 summary %s thresholds: %v", metric, err)
	}
	return m
}

func needChild(t *testing.T) {
	t.Helper()
	if len(childBin) == 0 {
		t.Skip("end-to-end: runs k6 in a child process (not with -short)")
	}
}

// run runs script against tg through the k6 child and returns the outcome,
// k6's own summary of the same run, and the child's stderr.
func run(t *testing.T, tg *target, script string, opts ...Option) (*Outcome, *summary, string) {
	t.Helper()
	needChild(t)
	sumPath := filepath.Join(t.TempDir(), "summary.json")
	var stderr bytes.Buffer
	all := append([]Option{
		asChild(),
		WithArgs("-e", "BASE="+tg.URL, "--summary-export", sumPath),
		WithOutput(io.Discard, &stderr),
	}, opts...)
	r, err := New(filepath.Join("testdata", script), all...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := r.Run(ctx)
	if err != nil {
		t.Fatalf("run %s: %v\n%s", script, err, stderr.String())
	}
	var s summary
	if data, err := os.ReadFile(sumPath); err == nil {
		if err := json.Unmarshal(data, &s); err != nil {
			t.Fatalf("k6 summary: %v", err)
		}
	}
	return out, &s, stderr.String()
}

// checkK6Thresholds asserts that the result carries each of k6's
// threshold verdicts as k6's summary reports it.
func checkK6Thresholds(t *testing.T, res *loadgen.Result, s *summary) {
	t.Helper()
	n := 0
	for metric := range s.Metrics {
		if _, ok := s.Metrics[metric]["thresholds"]; !ok {
			continue
		}
		for expr, failed := range s.failed(t, metric) {
			n++
			found := false
			for _, tr := range res.Thresholds {
				if tr.Metric == metric && tr.Expr == expr {
					found = true
					if tr.Passed == failed {
						t.Errorf("threshold %s %s: loadcap says passed=%v, k6 failed=%v", metric, expr, tr.Passed, failed)
					}
				}
			}
			if !found {
				t.Errorf("threshold %s %s: not in the result %+v", metric, expr, res.Thresholds)
			}
		}
	}
	if n == 0 {
		t.Fatal("k6's summary holds no threshold")
	}
}

func TestConstantArrivalRate(t *testing.T) {
	tg := newTarget(t)
	out, s, stderr := run(t, tg, "arrival.js")
	if out.ExitCode != 0 || out.Result == nil {
		t.Fatalf("exit %d (%s), result %v\n%s", out.ExitCode, out.Err, out.Result, stderr)
	}
	res := out.Result
	if got, want := res.Totals.Sent, int64(s.num(t, "http_reqs", "count")); got != want {
		t.Errorf("sent %d requests, k6 counted %d", got, want)
	}
	if res.Totals.Completed != res.Totals.Sent || res.Totals.Failed != 0 {
		t.Errorf("totals %+v: want every request completed", res.Totals)
	}
	for _, sc := range []string{"steady", "overload"} {
		got := res.Select(map[string]string{"scenario": sc})
		want := int64(s.num(t, "http_reqs{scenario:"+sc+"}", "count"))
		if got == nil || got.Sent != want {
			t.Errorf("scenario %s: %+v, k6 counted %d", sc, got, want)
		}
	}
	dropped := int64(s.num(t, "dropped_iterations", "count"))
	if dropped == 0 {
		t.Fatal("the overload scenario dropped nothing: the test proves nothing about dropped iterations")
	}
	if res.Totals.Dropped != dropped {
		t.Errorf("dropped %d, k6 dropped %d iterations", res.Totals.Dropped, dropped)
	}
	if res.Totals.Scheduled != res.Totals.Sent+res.Totals.Dropped {
		t.Errorf("totals %+v: scheduled ≠ sent + dropped", res.Totals)
	}
	// The histograms hold k6's own durations (µs, 3 significant digits).
	steady := res.Select(map[string]string{"scenario": "steady"})
	for _, c := range []struct {
		stat string
		ours int64
	}{{"min", steady.Latency.Min()}, {"max", steady.Latency.Max()}} {
		k6 := s.num(t, "http_req_duration{scenario:steady}", c.stat) // ms
		if ms := float64(c.ours) / 1000; math.Abs(ms-k6) > k6*0.002+0.002 {
			t.Errorf("steady %s: %.3f ms, k6 says %.3f ms", c.stat, ms, k6)
		}
	}
	checkK6Thresholds(t, res, s)
	// k6's value for its thresholds is k6's own aggregate.
	for _, tr := range res.Thresholds {
		if tr.Metric == "http_req_duration{scenario:steady}" && tr.Expr == "p(95)<1000" {
			if want := s.num(t, tr.Metric, "p(95)"); math.Abs(tr.Value-want) > 1e-9 {
				t.Errorf("p(95) value %v, k6 says %v", tr.Value, want)
			}
		}
	}
	if res.Status != loadgen.StatusPassed || len(res.Intervals) < 2 {
		t.Errorf("status %s with %d intervals", res.Status, len(res.Intervals))
	}
}

func TestRampingVUsGroupsChecks(t *testing.T) {
	tg := newTarget(t)
	out, s, stderr := run(t, tg, "ramping.js")
	if out.ExitCode != 0 || out.Result == nil {
		t.Fatalf("exit %d (%s)\n%s", out.ExitCode, out.Err, stderr)
	}
	res := out.Result
	for _, name := range []string{"login", "browse"} {
		rs := res.Request(name)
		want := int64(s.num(t, "http_reqs{name:"+name+"}", "count"))
		if rs == nil || rs.Sent != want {
			t.Fatalf("request %s: %+v, k6 counted %d", name, rs, want)
		}
	}
	browse := res.Request("browse")
	if browse.Failed != browse.Sent || browse.Errors["5xx"] != browse.Sent || browse.StatusCodes[500] != browse.Sent {
		t.Errorf("browse: failed %d, errors %v, status %v of %d sent: want all 5xx", browse.Failed, browse.Errors, browse.StatusCodes, browse.Sent)
	}
	if !strings.Contains(browse.ErrorSamples["5xx"], "HTTP 500") {
		t.Errorf("browse error sample %q", browse.ErrorSamples["5xx"])
	}
	failedK6 := int64(s.num(t, "http_req_failed", "passes")) // passes of a rate = requests that failed
	if res.Totals.Failed != failedK6 {
		t.Errorf("failed %d, k6's http_req_failed counted %d", res.Totals.Failed, failedK6)
	}
	if got, want := out.Iterations, int64(s.num(t, "iterations", "count")); len(got) != 1 || got[0].Scenario != "ramp" || got[0].Count != want {
		t.Errorf("iterations %+v, k6 counted %d", got, want)
	}
	// Checks by group, as k6's summary has them.
	want := map[string][2]int64{}
	for _, g := range s.RootGroup.Groups {
		for _, c := range g.Checks {
			want[g.Path+"/"+c.Name] = [2]int64{c.Passes, c.Fails}
		}
	}
	got := map[string][2]int64{}
	for _, c := range out.Checks {
		got[c.Group+"/"+c.Name] = [2]int64{c.Passes, c.Fails}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || len(want) != 2 {
		t.Errorf("checks %v, k6 says %v", got, want)
	}
	if res.MaxVUs < 1 {
		t.Errorf("max VUs %d", res.MaxVUs)
	}
	checkK6Thresholds(t, res, s)
}

func TestThresholdsFail(t *testing.T) {
	tg := newTarget(t)
	f, err := scenarios.Parse("ours.yaml", []byte(`target: `+tg.URL+`
requests: [{name: ok, path: /}]
scenarios: {s: {executor: constant-vus, vus: 1, duration: 1s}}
thresholds:
  http_req_failed: ["rate<0.01"]
  "http_req_duration{name:ok}": ["p(99)<5000"]
`))
	if err != nil {
		t.Fatal(err)
	}
	out, s, stderr := run(t, tg, "thresholds.js", WithThresholds(f.Thresholds))
	if out.ExitCode != 99 {
		t.Fatalf("exit %d (%s), want 99 (thresholds)\n%s", out.ExitCode, out.Err, stderr)
	}
	if !strings.Contains(out.Err, "thresholds") {
		t.Errorf("error %q does not name the thresholds", out.Err)
	}
	res := out.Result
	if res.Status != loadgen.StatusFailed {
		t.Errorf("status %s, want failed", res.Status)
	}
	checkK6Thresholds(t, res, s)
	// Ours come first, evaluated by loadcap on the same requests.
	if len(res.Thresholds) < 2 || res.Thresholds[0].Metric != "http_req_failed" || res.Thresholds[0].Passed {
		t.Fatalf("loadcap's own thresholds: %+v", res.Thresholds)
	}
	rate := s.num(t, "http_req_failed", "value")
	if math.Abs(res.Thresholds[0].Value-rate) > 1e-12 {
		t.Errorf("our http_req_failed rate %v, k6's %v", res.Thresholds[0].Value, rate)
	}
	if !res.Thresholds[1].Passed {
		t.Errorf("our p(99) threshold failed: %+v", res.Thresholds[1])
	}
}

func TestSyntaxError(t *testing.T) {
	tg := newTarget(t)
	out, _, stderr := run(t, tg, "syntax.js")
	if out.ExitCode != 107 {
		t.Fatalf("exit %d, want k6's 107 (script exception)\n%s", out.ExitCode, stderr)
	}
	if out.Result != nil {
		t.Errorf("a result for a script that never ran: %+v", out.Result.Totals)
	}
	if !strings.Contains(out.Err, "syntax.js") || !strings.Contains(out.Err, "Unexpected token") {
		t.Errorf("error %q: want k6's message naming the script and the token", out.Err)
	}
	if !strings.Contains(stderr, "Unexpected token") {
		t.Errorf("k6's log did not reach stderr: %q", stderr)
	}
}

func TestShadowTag(t *testing.T) {
	tg := newTarget(t)
	out, _, stderr := run(t, tg, "shadow.js", WithDrillID("presale-42"))
	if out.ExitCode != 0 {
		t.Fatalf("exit %d (%s)\n%s", out.ExitCode, out.Err, stderr)
	}
	tg.mu.Lock()
	defer tg.mu.Unlock()
	if len(tg.tags) != 6 {
		t.Fatalf("%d tagged requests, want 6", len(tg.tags))
	}
	for i, h := range tg.tags {
		if h.Get(scenarios.ShadowHeader) != "presale-42" || h.Get("Baggage") != "loadcap.shadow=presale-42" {
			t.Errorf("request %d: headers %v", i, h)
		}
		if i%2 == 1 && (h.Get("X-Env-Drill") != "presale-42" || h.Get("X-Module-Drill") != "presale-42") {
			t.Errorf("request %d: drill id from __ENV %q, from the module %q", i, h.Get("X-Env-Drill"), h.Get("X-Module-Drill"))
		}
	}
}

func TestStopForwardsSignal(t *testing.T) {
	tg := newTarget(t)
	var r *Runner
	var once sync.Once
	hook := WithIntervalHook(func(loadgen.Interval) {
		once.Do(func() { r.Stop(loadgen.CauseSignal, "interrupted by test") })
	})
	needChild(t)
	sumPath := filepath.Join(t.TempDir(), "summary.json")
	var err error
	r, err = New(filepath.Join("testdata", "long.js"), asChild(), hook,
		WithArgs("-e", "BASE="+tg.URL, "--summary-export", sumPath))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out, err := r.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("stopping took %s: the 30 s script ran on", d)
	}
	if out.ExitCode != 105 {
		t.Errorf("exit %d (%s), want k6's 105 (aborted)", out.ExitCode, out.Err)
	}
	res := out.Result
	if res.Status != loadgen.StatusAborted || res.AbortCause != loadgen.CauseSignal || res.AbortReason != "interrupted by test" {
		t.Errorf("status %s, cause %q, reason %q", res.Status, res.AbortCause, res.AbortReason)
	}
	var s summary
	data, err := os.ReadFile(sumPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	if want := int64(s.num(t, "http_reqs", "count")); res.Totals.Sent == 0 || res.Totals.Sent != want {
		t.Errorf("sent %d before the stop, k6 counted %d", res.Totals.Sent, want)
	}
}

func TestExecutionSegments(t *testing.T) {
	needChild(t)
	tg := newTarget(t)
	const seq = "0,1/2,1"
	outs := make([]*Outcome, 2)
	sums := make([]*summary, 2)
	t.Run("agents", func(t *testing.T) {
		for i, seg := range []string{"0:1/2", "1/2:1"} {
			t.Run(seg, func(t *testing.T) {
				t.Parallel()
				outs[i], sums[i], _ = run(t, tg, "segment.js", WithSegment(seg, seq))
			})
		}
	})
	var total int64
	for i, out := range outs {
		if out == nil || out.Result == nil {
			t.Fatalf("segment %d did not run", i)
		}
		got, want := out.Result.Totals.Sent, int64(sums[i].num(t, "http_reqs", "count"))
		if got != want {
			t.Errorf("segment %d: sent %d, k6 counted %d", i, got, want)
		}
		// An iteration k6 dropped (no free VU in time: a slow child, as
		// under the race detector) was still its segment's.
		total += got + out.Result.Totals.Dropped
	}
	a := outs[0].Result.Totals.Sent + outs[0].Result.Totals.Dropped
	b := outs[1].Result.Totals.Sent + outs[1].Result.Totals.Dropped
	if a == 0 || b == 0 || a-b > 1 || b-a > 1 {
		t.Errorf("segments scheduled %d and %d: want an even split", a, b)
	}
	if total < 40 {
		t.Errorf("the two halves scheduled %d iterations of 2 s × 20/s", total)
	}
}

func TestRESTAPIStaysOff(t *testing.T) {
	needChild(t)
	tg := newTarget(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var r *Runner
	var once sync.Once
	var dialErr error
	hook := WithIntervalHook(func(loadgen.Interval) {
		once.Do(func() {
			var c net.Conn
			if c, dialErr = net.DialTimeout("tcp", addr, time.Second); dialErr == nil {
				c.Close()
			}
			r.Stop(loadgen.CauseSignal, "done")
		})
	})
	r, err = New(filepath.Join("testdata", "long.js"), asChild(), hook,
		WithArgs("-e", "BASE="+tg.URL, "--address", addr, "--paused"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := r.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if out.Result == nil || out.Result.Totals.Sent == 0 {
		t.Fatalf("the run did not start (--paused must not hold it): exit %d %s", out.ExitCode, out.Err)
	}
	if dialErr == nil {
		t.Errorf("k6's REST API answered on %s: --address must not turn it on", addr)
	}
}

func TestScenarioFileDrivesScript(t *testing.T) {
	tg := newTarget(t)
	f, err := scenarios.Parse("drive.yaml", []byte(`target: `+tg.URL+`
requests: [{name: unused, path: /}]
scenarios:
  driven: {executor: constant-arrival-rate, rate: 10, timeUnit: 1s, duration: 1s, preAllocatedVUs: 2}
`))
	if err != nil {
		t.Fatal(err)
	}
	cfgs := map[string]any{}
	for _, sc := range f.Scenarios {
		cfgs[sc.Name] = sc.Config
	}
	js, err := json.Marshal(cfgs)
	if err != nil {
		t.Fatal(err)
	}
	out, s, stderr := run(t, tg, "segment.js", WithScenarios(js))
	if out.ExitCode != 0 || out.Result == nil {
		t.Fatalf("exit %d (%s)\n%s", out.ExitCode, out.Err, stderr)
	}
	res := out.Result
	if got := res.Select(map[string]string{"scenario": "driven"}); got == nil || got.Sent != int64(s.num(t, "http_reqs", "count")) {
		t.Fatalf("scenario driven: %+v; k6 counted %v", got, s.num(t, "http_reqs", "count"))
	}
	if res.Select(map[string]string{"scenario": "split"}) != nil {
		t.Error("the script's own scenario ran too")
	}
	checkK6Thresholds(t, res, s) // the script's thresholds still hold
}

// WithoutSystemEnv (as agents run a coordinator's script): the script sees
// the variables its arguments declare, not the environment of the process.
func TestWithoutSystemEnvHidesTheEnvironment(t *testing.T) {
	tg := newTarget(t)
	secret := WithEnv("LOADCAP_TEST_SECRET=agent-secret")
	out, _, stderr := run(t, tg, "env.js", secret)
	if out.ExitCode != 107 || !strings.Contains(out.Err, "agent-secret") {
		t.Fatalf("k6's default: exit %d (%s), want 107 with the secret read\n%s", out.ExitCode, out.Err, stderr)
	}
	out, _, stderr = run(t, tg, "env.js", secret, WithoutSystemEnv())
	if out.ExitCode != 0 {
		t.Fatalf("without the system environment: exit %d (%s)\n%s", out.ExitCode, out.Err, stderr)
	}
	// An archive, as agents get it, made and run where the secret is set.
	tar := filepath.Join(t.TempDir(), "env.tar")
	if err := Archive(context.Background(), filepath.Join("testdata", "env.js"), tar, asChild(), secret,
		WithArgs("-e", "BASE="+tg.URL), WithOutput(io.Discard, io.Discard)); err != nil {
		t.Fatal(err)
	}
	r, err := New(tar, asChild(), secret, WithoutSystemEnv(), WithOutput(io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	if out, err = r.Run(context.Background()); err != nil || out.ExitCode != 0 {
		t.Fatalf("archive without the system environment: exit %d (%s), %v", out.ExitCode, out.Err, err)
	}
}

// An archive (what agents run) reads files from itself only: open() and
// require() of a path on the host running it fail the same way whether the
// file exists or not, quoting nothing of it.
func TestArchiveReadsNoHostFile(t *testing.T) {
	needChild(t)
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret.js")
	if err := os.WriteFile(secret, []byte("export const topsecret = 'hunter2';\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tar := filepath.Join(dir, "open.tar")
	if err := Archive(context.Background(), filepath.Join("testdata", "open.js"), tar, asChild(), WithOutput(io.Discard, io.Discard)); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"OPEN", "REQUIRE"} {
		var msgs []string
		for _, p := range []string{secret, filepath.Join(dir, "missing.js")} {
			r, err := New(tar, asChild(), WithoutSystemEnv(), WithArgs("-e", kind+"="+p), WithOutput(io.Discard, io.Discard))
			if err != nil {
				t.Fatal(err)
			}
			out, err := r.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if out.ExitCode == 0 || strings.Contains(out.Err, "hunter2") {
				t.Fatalf("%s %s from an archive: exit %d (%s), want a failure quoting nothing", kind, p, out.ExitCode, out.Err)
			}
			msgs = append(msgs, strings.ReplaceAll(out.Err, p, "PATH"))
		}
		if msgs[0] != msgs[1] {
			t.Errorf("%s: an existing host file and a missing one fail differently:\n%s\n%s", kind, msgs[0], msgs[1])
		}
	}
}

// WithoutBrowser (as agents run a coordinator's script): k6's browser
// modules fail to load whatever the script calls them, here a name
// computed at run time that no text search of the archive sees.
func TestWithoutBrowserRefusesComputedModuleName(t *testing.T) {
	tg := newTarget(t)
	out, _, stderr := run(t, tg, "browser.js")
	if out.ExitCode != 0 {
		t.Fatalf("k6's default loads k6/browser: exit %d (%s)\n%s", out.ExitCode, out.Err, stderr)
	}
	for _, suffix := range []string{"browser", "experimental/browser"} {
		out, _, stderr = run(t, tg, "browser.js", WithoutBrowser(), WithArgs("-e", "SUFFIX="+suffix))
		if out.ExitCode == 0 || !strings.Contains(out.Err, "k6/"+suffix+" is refused here") {
			t.Errorf("k6/%s without browser modules: exit %d (%s), want it refused\n%s", suffix, out.ExitCode, out.Err, stderr)
		}
	}
}

// WithoutRemoteModules (as agents run a coordinator's archive): a
// require() of an https URL computed at run time reaches no host (k6's
// loader would fetch it with Go's default client, outside --blacklist-ip).
func TestWithoutRemoteModulesFetchesNothing(t *testing.T) {
	needChild(t)
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "export default 1;")
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the default run's failed handshake
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	tar := filepath.Join(t.TempDir(), "open.tar")
	if err := Archive(context.Background(), filepath.Join("testdata", "open.js"), tar, asChild(), WithOutput(io.Discard, io.Discard)); err != nil {
		t.Fatal(err)
	}
	fetch := func(opts ...Option) *Outcome {
		t.Helper()
		r, err := New(tar, append([]Option{asChild(), WithArgs("-e", "REQUIRE="+srv.URL+"/m.js"), WithOutput(io.Discard, io.Discard)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		out, err := r.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if out := fetch(); conns.Load() == 0 {
		t.Fatalf("k6's default: no connection to the module's host (exit %d, %s); the test cannot tell", out.ExitCode, out.Err)
	}
	conns.Store(0)
	out := fetch(WithoutRemoteModules())
	if n := conns.Load(); n != 0 || out.ExitCode == 0 || !strings.Contains(out.Err, "remote modules are refused") {
		t.Errorf("without remote modules: %d connections, exit %d (%s); want none and the refusal", n, out.ExitCode, out.Err)
	}
}
