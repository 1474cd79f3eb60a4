package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loadcap/loadcap/internal/cli"
	"github.com/loadcap/loadcap/loadgen/target"
	"github.com/loadcap/loadcap/reports"
	"github.com/loadcap/loadcap/test/israce"
	"github.com/loadcap/loadcap/test/quiet"
)

// k6Server counts requests by path and remembers the shadow tags it saw;
// /fail answers 500. Loopback only.
type k6Server struct {
	*httptest.Server
	mu   sync.Mutex
	hits map[string]int
	tags map[string]int // X-Loadcap-Shadow values
}

func newK6Server(t *testing.T) *k6Server {
	s := &k6Server{hits: map[string]int{}, tags: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.URL.Path]++
		if v := r.Header.Get("X-Loadcap-Shadow"); v != "" {
			s.tags[v]++
		}
		s.mu.Unlock()
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusInternalServerError)
		}
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *k6Server) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

// TestRunK6Script runs unmodified k6 scripts through `loadcap run`: the
// result counts what the server got, k6's threshold verdicts decide the
// exit code, a drill id reaches the script, and k6's own exit code and
// message come back for a broken script.
func TestRunK6Script(t *testing.T) {
	t.Parallel()
	t.Run("counts and a passing threshold", func(t *testing.T) {
		srv := newK6Server(t)
		script := writeFile(t, "iterations.js", `import http from 'k6/http';
export const options = { vus: 2, iterations: 40, thresholds: { http_req_failed: ['rate<0.01'] } };
export default function () { http.get(__ENV.BASE + '/a', { tags: { name: 'a' } }); }
`)
		out := filepath.Join(t.TempDir(), "run.json")
		r := loadcap(t, nil, false, "run", script, "--quiet", "--out", out, "--k6-arg=-e", "--k6-arg=BASE="+srv.URL)
		if r.code != 0 {
			t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		run := readRun(t, out)
		if got := srv.count("/a"); got != 40 || run.Totals.Completed != 40 {
			t.Errorf("server got %d requests, run.json says %d completed; want 40 and 40", got, run.Totals.Completed)
		}
		if _, ok := run.Requests["a"]; run.Meta.Engine != reports.EngineK6 || !ok {
			t.Errorf("run.json: engine %q, requests %v; want k6 and a request named a", run.Meta.Engine, run.RequestNames())
		}
		if !strings.Contains(r.stdout, "timed from the actual send") || !strings.Contains(r.stdout, "status: passed") {
			t.Errorf("summary does not say where k6's latency counts from or the verdict:\n%s", r.stdout)
		}
	})
	t.Run("failing threshold exits 99", func(t *testing.T) {
		srv := newK6Server(t)
		script := writeFile(t, "fail.js", `import http from 'k6/http';
export const options = { vus: 1, iterations: 10, thresholds: { http_req_failed: ['rate<0.01'], http_reqs: ['count>=10'] } };
export default function () { http.get(__ENV.BASE + '/fail'); }
`)
		out := filepath.Join(t.TempDir(), "run.json")
		junit := filepath.Join(t.TempDir(), "junit.xml")
		r := loadcap(t, nil, false, "run", script, "--quiet", "--out", out, "--junit", junit, "--k6-arg=-e", "--k6-arg=BASE="+srv.URL)
		if r.code != int(cli.ExitThresholds) {
			t.Fatalf("exit %d, want 99\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		run := readRun(t, out)
		verdict := map[string]bool{}
		for _, th := range run.Thresholds {
			verdict[th.Metric+" "+th.Expr] = th.Passed
		}
		if p, ok := verdict["http_req_failed rate<0.01"]; !ok || p {
			t.Errorf("http_req_failed rate<0.01: recorded %v, passed %v; want a failure (every request got 500)", ok, p)
		}
		if p, ok := verdict["http_reqs count>=10"]; !ok || !p {
			t.Errorf("http_reqs count>=10: recorded %v, passed %v; want a pass", ok, p)
		}
		if run.Totals.Failed != 10 {
			t.Errorf("failed = %d, want 10", run.Totals.Failed)
		}
	})
	t.Run("drill id reaches the script", func(t *testing.T) {
		srv := newK6Server(t)
		script := writeFile(t, "tag.js", `import http from 'k6/http';
import loadcap from 'k6/x/loadcap';
export const options = { vus: 1, iterations: 5 };
export default function () {
  if (__ENV.LOADCAP_DRILL_ID !== 'presale-1') { throw new Error('no drill id in __ENV'); }
  http.get(__ENV.BASE + '/t', { headers: loadcap.headers() });
}
`)
		r := loadcap(t, nil, false, "run", script, "--quiet", "--no-summary", "--drill-id", "presale-1", "--k6-arg=-e", "--k6-arg=BASE="+srv.URL)
		if r.code != 0 {
			t.Fatalf("exit %d\n%s", r.code, r.stderr)
		}
		srv.mu.Lock()
		defer srv.mu.Unlock()
		if srv.tags["presale-1"] != 5 || len(srv.tags) != 1 {
			t.Errorf("shadow tags seen by the server: %v; want presale-1 x5", srv.tags)
		}
	})
	// One verdict for one file: a script k6 cannot load is invalid input
	// for run as for validate (104, k6's message naming the file and the
	// line); k6's 107 is for an exception once the test runs.
	t.Run("a script that does not load is invalid input", func(t *testing.T) {
		for name, body := range map[string]string{
			"broken.js": "import http from 'k6/http';\nexport default function ( {\n",
			"init.js":   "export default function () {}\nthrow new Error('thrown in init');\n",
		} {
			script := writeFile(t, name, body)
			r := loadcap(t, nil, false, "run", script, "--quiet")
			if r.code != int(cli.ExitInvalid) {
				t.Errorf("%s: exit %d, want 104 (invalid input), as validate says\n%s", name, r.code, r.stderr)
			}
			if v := loadcap(t, nil, false, "validate", script); v.code != r.code {
				t.Errorf("%s: run exits %d, validate %d: two verdicts for one file", name, r.code, v.code)
			}
			if !strings.Contains(r.stderr, name+":") || !strings.Contains(r.stderr, name+":2") && !strings.Contains(r.stderr, "Line 3") {
				t.Errorf("%s: stderr does not name the script and the line:\n%s", name, r.stderr)
			}
		}
	})
	t.Run("an exception while the test runs keeps k6's 107", func(t *testing.T) {
		script := writeFile(t, "setup.js", "export const options = { vus: 1, iterations: 1 };\n"+
			"export function setup() { throw new Error('thrown in setup'); }\nexport default function () {}\n")
		r := loadcap(t, nil, false, "run", script, "--quiet", "--no-summary")
		if r.code != 107 || !strings.Contains(r.stderr, "thrown in setup") || !strings.Contains(r.stderr, "setup.js:2") {
			t.Errorf("exit %d, want k6's 107 (script exception) with the line\n%s", r.code, r.stderr)
		}
	})
	t.Run("ad hoc flags are refused", func(t *testing.T) {
		script := writeFile(t, "x.js", "export default function () {}\n")
		r := loadcap(t, nil, false, "run", script, "--rate", "10")
		if r.code != int(cli.ExitUsage) || !strings.Contains(r.stderr, "--rate does not apply to a k6 script") {
			t.Errorf("exit %d, stderr %q; want 2 and a clear refusal", r.code, r.stderr)
		}
	})
}

// TestCapacityFindK6 searches a k6 script's capacity: the steps drive the
// script's default function at constant arrival rates, and the answer is
// the target's configured capacity (2 workers x 10 ms = 200 req/s).
func TestCapacityFindK6(t *testing.T) {
	if testing.Short() {
		t.Skip("a capacity search of about 20 s through k6")
	}
	url := testTarget(t, target.Config{Workers: 2, ServiceTime: 10 * time.Millisecond})
	script := writeFile(t, "one.js", `import http from 'k6/http';
export default function () { http.get(__ENV.BASE + '/'); }
`)
	out := filepath.Join(t.TempDir(), "find.json")
	// k6's steps have no stall watch to repeat a step the machine
	// disturbed: the whole search is run again instead.
	quiet.Retry(t, 3, func(a *quiet.A) {
		os.Remove(out)
		r := loadcap(t, nil, false, "capacity", "find", script, "--k6-arg=--env=BASE="+url, "--slo", "p(99)<100ms,error<1%",
			"--start-rate", "50", "--warmup", "1s", "--window", "2s", "--soak", "2s", "--max-steps", "9", "--out", out)
		if israce.Enabled {
			return // a search measures timing: under the race detector it would measure the detector
		}
		if r.code != 0 {
			a.Errorf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			return
		}
		var res struct {
			MaxQPS float64 `json:"max_qps"`
			Steps  []struct{ Offered, Achieved float64 }
		}
		b, _ := os.ReadFile(out)
		if err := json.Unmarshal(b, &res); err != nil {
			t.Fatal(err)
		}
		if res.MaxQPS < 170 || res.MaxQPS > 215 || len(res.Steps) < 3 {
			a.Errorf("max_qps %.1f after %d steps; want 200 req/s within -15%%/+7%%\n%s", res.MaxQPS, len(res.Steps), r.stderr)
		}
	})

	two := writeFile(t, "two.js", `import http from 'k6/http';
export default function () { http.get(__ENV.BASE + '/'); http.get(__ENV.BASE + '/'); }
`)
	r := loadcap(t, nil, false, "capacity", "find", two, "--k6-arg=--env=BASE="+url, "--start-rate", "20", "--warmup", "0s", "--window", "1s")
	if r.code != int(cli.ExitUsage) || !strings.Contains(r.stderr, "one request per iteration") {
		t.Errorf("a script with two requests per iteration: exit %d, stderr %q; want 2 and why", r.code, r.stderr)
	}
}

// TestRunScenarioFileWithK6Script runs a scenario file whose workload
// drives a k6 script: the file's arrival rate replaces the script's
// options, the file's thresholds are judged, and its drill id reaches the
// script's requests.
func TestRunScenarioFileWithK6Script(t *testing.T) {
	srv := newK6Server(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "one.js"), []byte(`import http from 'k6/http';
import loadcap from 'k6/x/loadcap';
export const options = { vus: 1, iterations: 1 };  // replaced by the scenario file's
export default function () { http.get(__ENV.BASE + '/k', { headers: loadcap.headers(), tags: { name: 'k' } }); }
`), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "drive.yaml")
	if err := os.WriteFile(file, []byte(`scenarios:
  browse: {executor: constant-arrival-rate, rate: 20, timeUnit: 1s, duration: 2s, preAllocatedVUs: 5}
k6: {script: one.js}
drill_id: presale-9
thresholds:
  http_req_failed: ['rate<0.01']
  http_reqs: ['count>1000']
`), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "run.json")
	r := loadcap(t, nil, false, "run", file, "--quiet", "--out", out, "--k6-arg=--env=BASE="+srv.URL)
	if r.code != int(cli.ExitThresholds) {
		t.Fatalf("exit %d, want 99 (http_reqs count>1000 fails)\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	// 20/s for 2 s, from the file, not the script's 1 iteration; under the
	// race detector the child is slow enough for k6 to drop a few.
	if got, low := srv.count("/k"), map[bool]int{false: 39, true: 20}[israce.Enabled]; got < low || got > 41 {
		t.Errorf("server got %d requests; want 40", got)
	}
	run := readRun(t, out)
	passed := map[string]bool{}
	for _, th := range run.Thresholds {
		passed[th.Metric+" "+th.Expr] = th.Passed
	}
	if !passed["http_req_failed rate<0.01"] || passed["http_reqs count>1000"] {
		t.Errorf("thresholds %v; want http_req_failed passed, http_reqs count>1000 failed", passed)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.tags["presale-9"] != srv.hits["/k"] {
		t.Errorf("tagged %v of %d requests; want all with presale-9", srv.tags, srv.hits["/k"])
	}
}

// TestValidateK6Script has k6 check scripts, alone and behind a scenario
// file's k6: section.
func TestValidateK6Script(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.js")
	broken := filepath.Join(dir, "broken.js")
	for p, body := range map[string]string{
		good:   "import http from 'k6/http';\nexport const options = { vus: 2, duration: '1s' };\nexport default function () {}\n",
		broken: "import http from 'k6/http';\nexport default function ( {\n",
	} {
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, "drive.yaml")
	if err := os.WriteFile(file, []byte("scenarios:\n  a: {executor: constant-vus, vus: 1, duration: 1s}\nk6: {script: broken.js}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := loadcap(t, nil, false, "validate", good); r.code != 0 || !strings.Contains(r.stdout, "good.js: ok (k6 script") {
		t.Errorf("good script: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r := loadcap(t, nil, false, "validate", broken)
	if r.code != int(cli.ExitInvalid) || !strings.Contains(r.stderr, "broken.js") || !strings.Contains(strings.ToLower(r.stderr), "unexpected") {
		t.Errorf("broken script: exit %d, want 104 with k6's message naming it\n%s", r.code, r.stderr)
	}
	r = loadcap(t, nil, false, "validate", file)
	if r.code != int(cli.ExitInvalid) || !strings.Contains(r.stderr, "drive.yaml:3") || !strings.Contains(r.stderr, "k6.script") {
		t.Errorf("file driving a broken script: exit %d, want 104 at drive.yaml:3 k6.script\n%s", r.code, r.stderr)
	}
}

// TestK6FileRefusesGRPCReqDuration: loadcap cannot tell a k6 script's gRPC
// calls from its HTTP requests, so a scenario file driving a script may
// not judge grpc_req_duration itself.
func TestK6FileRefusesGRPCReqDuration(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "s.js"), []byte("export default function () {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "drive.yaml")
	if err := os.WriteFile(file, []byte("scenarios:\n  a: {executor: constant-vus, vus: 1, duration: 1s}\nk6: {script: s.js}\nthresholds:\n  grpc_req_duration: ['p(99)<100']\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := loadcap(t, nil, false, "run", file, "--quiet")
	if r.code != int(cli.ExitInvalid) || !strings.Contains(r.stderr, "drive.yaml:5") || !strings.Contains(r.stderr, "judged by k6") {
		t.Errorf("exit %d, stderr %q; want 104 at drive.yaml:5 saying k6 judges it", r.code, r.stderr)
	}
}
