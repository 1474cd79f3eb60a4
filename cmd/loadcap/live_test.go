package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	prompb "buf.build/gen/go/prometheus/prometheus/protocolbuffers/go"
	"github.com/klauspost/compress/snappy"
	"google.golang.org/protobuf/proto"

	"github.com/loadcap/loadcap/loadgen/target"
	"github.com/loadcap/loadcap/loadgen/target/targettest"
	"github.com/loadcap/loadcap/reports"
	"github.com/loadcap/loadcap/test/quiet"
	"github.com/loadcap/loadcap/test/testkit"
)

var requestsTotal = regexp.MustCompile(`(?m)^loadcap_requests_total\{name="[^"]*"\} (\d+)$`)

// A local run serves its live metrics while it runs: a scraper sees the
// requests grow, and never more than run.json counts in the end.
func TestRunServesLiveMetrics(t *testing.T) {
	url := testTarget(t, target.Config{})
	// Growing over several scrapes is timing: a machine that stalled the
	// test runs it again.
	quiet.Retry(t, 3, func(a *quiet.A) {
		addr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
		out := filepath.Join(t.TempDir(), "run.json")
		done := make(chan result, 1)
		go func() {
			done <- loadcap(t, nil, false, "run", "-q", "--no-summary", "--url", url+"/", "--rate", "20", "--duration", "3s",
				"--metrics-listen", addr, "--out", out)
		}()
		var seen []int64 // requests_total at each scrape that had some
		var body string
		client := &http.Client{Timeout: time.Second}
		var res result
	poll:
		for {
			select {
			case res = <-done:
				break poll
			case <-time.After(200 * time.Millisecond):
			}
			resp, err := client.Get("http://" + addr + "/metrics")
			if err != nil {
				continue // not serving yet
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if m := requestsTotal.FindStringSubmatch(string(b)); m != nil {
				n, _ := strconv.ParseInt(m[1], 10, 64)
				seen = append(seen, n)
				body = string(b)
			}
		}
		if res.code != 0 {
			t.Fatalf("exit %d: %s", res.code, res.stderr)
		}
		run := readRun(t, out)
		finished := run.Totals.Completed + run.Totals.Failed
		if len(seen) < 2 || seen[0] == 0 || seen[len(seen)-1] <= seen[0] {
			a.Errorf("requests seen while the run went on: %v; want them growing over several scrapes", seen)
		}
		if len(seen) > 0 && seen[len(seen)-1] > finished {
			t.Errorf("a scrape counted %d requests, run.json %d in all", seen[len(seen)-1], finished)
		}
		for _, want := range []string{"loadcap_request_duration_seconds_bucket", "loadcap_requests_sent_total", "loadcap_arrivals_scheduled_total",
			"loadcap_requests_in_flight", "loadcap_generator_stall_seconds"} {
			if body != "" && !regexp.MustCompile(`(?m)^`+want).MatchString(body) {
				t.Errorf("the last scrape lacks %s:\n%s", want, body)
			}
		}
	})
}

// rwReceiver is a remote-write receiver; sum returns the latest value of
// every series of a metric, summed.
func rwReceiver(t *testing.T) (url string, sum func(metric string) float64) {
	var mu sync.Mutex
	last := map[string]map[string]float64{} // metric → series (labels) → latest sample
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		raw, err := snappy.Decode(nil, b)
		var wr prompb.WriteRequest
		if err == nil {
			err = proto.Unmarshal(raw, &wr)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, s := range wr.Timeseries {
			name, key := "", ""
			for _, l := range s.Labels {
				if l.Name == "__name__" {
					name = l.Value
				}
				key += l.Name + "=" + l.Value + ","
			}
			if last[name] == nil {
				last[name] = map[string]float64{}
			}
			last[name][key] = s.Samples[len(s.Samples)-1].Value
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(recv.Close)
	return recv.URL + "/api/v1/write", func(metric string) float64 {
		mu.Lock()
		defer mu.Unlock()
		var n float64
		for _, v := range last[metric] {
			n += v
		}
		return n
	}
}

// --out prometheus-rw=URL pushes the live metrics beside run.json; the
// last push carries the run's totals, whatever generates the load.
func TestRunPushesToRemoteWrite(t *testing.T) {
	t.Parallel()
	t.Run("scenario", func(t *testing.T) {
		rw, sum := rwReceiver(t)
		url := testTarget(t, target.Config{})
		out := filepath.Join(t.TempDir(), "run.json")
		res := loadcap(t, nil, false, "run", "-q", "--no-summary", "--url", url+"/", "--rate", "20", "--duration", "1s",
			"--out", "prometheus-rw="+rw, "--out", out)
		if res.code != 0 {
			t.Fatalf("exit %d: %s", res.code, res.stderr)
		}
		checkPushed(t, readRun(t, out), sum)
	})
	t.Run("k6 script", func(t *testing.T) {
		rw, sum := rwReceiver(t)
		srv := newK6Server(t)
		script := writeFile(t, "iterations.js", `import http from 'k6/http';
export const options = { vus: 2, iterations: 30 };
export default function () { http.get(__ENV.BASE + '/a', { tags: { name: 'a' } }); }
`)
		out := filepath.Join(t.TempDir(), "run.json")
		res := loadcap(t, nil, false, "run", script, "--quiet", "--no-summary", "--out", out, "--out", "prometheus-rw="+rw,
			"--k6-arg=-e", "--k6-arg=BASE="+srv.URL)
		if res.code != 0 {
			t.Fatalf("exit %d: %s", res.code, res.stderr)
		}
		checkPushed(t, readRun(t, out), sum)
	})
}

// A distributed run pushes the merged figures of its agents, and how many
// are connected.
func TestDistributedRunPushesMergedMetrics(t *testing.T) {
	t.Parallel()
	rw, sum := rwReceiver(t)
	srv := testTarget(t, target.Config{})
	var agents []string
	for range 2 {
		_, a := agentProc(t, "--insecure")
		agents = append(agents, a)
	}
	scenario := writeFile(t, "s.yaml", `target: `+srv+`
scenarios:
  s:
    executor: constant-arrival-rate
    rate: 50
    duration: 2s
    preAllocatedVUs: 5
requests:
  - name: home
    path: /
`)
	out := filepath.Join(t.TempDir(), "run.json")
	r := loadcap(t, nil, false, "run", scenario, "-q", "--no-summary", "--agents", strings.Join(agents, ","), "--insecure-agents",
		"--out", out, "--out", "prometheus-rw="+rw)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	run := readRun(t, out)
	checkPushed(t, run, sum)
	if got := sum("loadcap_cluster_agents"); got != 2 {
		t.Errorf("loadcap_cluster_agents pushed as %v, want 2", got)
	}
	if got := sum("loadcap_arrivals_scheduled_total"); got != float64(run.Totals.Scheduled) || got != 100 {
		t.Errorf("scheduled pushed as %v, run.json %d, the scenario 100", got, run.Totals.Scheduled)
	}
}

func checkPushed(t *testing.T, run *reports.Run, sum func(string) float64) {
	t.Helper()
	requests, sent := sum("loadcap_requests_total"), sum("loadcap_requests_sent_total")
	if want := run.Totals.Completed + run.Totals.Failed; requests != float64(want) || want == 0 {
		t.Errorf("the receiver's requests_total is %v, run.json finished %d", requests, want)
	}
	if sent != float64(run.Totals.Sent) {
		t.Errorf("the receiver's requests_sent_total is %v, run.json sent %d", sent, run.Totals.Sent)
	}
}

func TestLiveFlagsRefuseBadInput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"not an http URL", []string{"run", "--url", "http://127.0.0.1:1/", "--out", "prometheus-rw=127.0.0.1:9090"}, "want an http:// or https:// URL"},
		{"two result files", []string{"run", "--url", "http://127.0.0.1:1/", "--out", "a.json", "--out", "b.json"}, "one result file"},
		{"a drill has no result file", []string{"drill", "plan.yaml", "--out", "run.json"}, "takes prometheus-rw=URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := loadcap(t, nil, false, tc.args...)
			if res.code != 2 || !regexp.MustCompile(regexp.QuoteMeta(tc.want)).MatchString(res.stderr) {
				t.Errorf("exit %d, stderr %q: want 2 and %q", res.code, res.stderr, tc.want)
			}
		})
	}
}

var drillStage = regexp.MustCompile(`(?m)^loadcap_drill_stage\{stage="([^"]*)"\} (\d+)$`)

// A drill's metrics say which stage it is in as the stages go by.
func TestDrillServesItsStage(t *testing.T) {
	if testing.Short() {
		t.Skip("a 4 s drill")
	}
	quiet.Retry(t, 3, func(a *quiet.A) {
		s := drillShop(t)
		plan := drillPlan(t, s, `  - {name: first, multiplier: 1, hold: 2s}
  - {name: second, multiplier: 1, hold: 2s}`, "")
		addr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
		done := make(chan result, 1)
		go func() {
			done <- loadcap(t, nil, false, "drill", plan, "--out-dir", t.TempDir(), "-q", "--metrics-listen", addr)
		}()
		seen := map[string]string{} // stage name → its number
		var res result
		client := &http.Client{Timeout: time.Second}
	poll:
		for {
			select {
			case res = <-done:
				break poll
			case <-time.After(200 * time.Millisecond):
			}
			resp, err := client.Get("http://" + addr + "/metrics")
			if err != nil {
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, m := range drillStage.FindAllStringSubmatch(string(b), -1) {
				seen[m[1]] = m[2]
			}
		}
		if res.code != 0 {
			t.Fatalf("drill: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
		}
		if seen["first"] != "1" || seen["second"] != "2" {
			a.Errorf("stages seen while the drill ran: %v, want first as 1 and second as 2", seen)
		}
	})
}

// capacity find's live metrics count over all its steps: once it ended,
// the last push has every request the target got.
func TestCapacityFindPushesEveryStep(t *testing.T) {
	rw, sum := rwReceiver(t)
	srv := targettest.Start(t, target.Config{})
	out := filepath.Join(t.TempDir(), "find.json")
	r := loadcap(t, nil, false, "capacity", "find", "--url", srv.URL()+"/", "--slo", "p(99)<1000ms,error<50%", "-q",
		"--start-rate", "20", "--factor", "2", "--max-rate", "40", "--max-steps", "3", "--warmup", "0s", "--window", "1s", "--soak", "1s",
		"--out", out, "--out", "prometheus-rw="+rw)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	steps, _ := readFind(t, out)
	arrived := float64(srv.Stats().Arrived)
	if got := sum("loadcap_requests_total"); steps < 2 || got != arrived {
		t.Errorf("%d steps; the push counts %v requests, the target got %v", steps, got, arrived)
	}
}
