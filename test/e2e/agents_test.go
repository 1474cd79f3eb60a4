package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/loadcap/loadcap/reports"
	"github.com/loadcap/loadcap/test/testkit"
)

// Ten agent processes on loopback, each writing its own part
// (--parts-dir): the coordinator's run.json is exactly the sum of the
// parts, which loadcap merge adds up (every count, every histogram bucket
// by bucket, overall, per request and per second). Then the same load on
// two coordinators of five agents each (--execution-segment) merges into
// the same schedule.
func TestTenAgentsAddUpExactly(t *testing.T) {
	url := startTarget(t)
	dir := t.TempDir()
	const n = 10
	parts := filepath.Join(dir, "parts")
	var addrs []string
	for i := 0; i < n; i++ {
		addr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
		a := start(t, "agent", "--listen", addr, "--insecure", "--parts-dir", parts)
		t.Cleanup(func() {
			a.cmd.Process.Signal(syscall.SIGTERM)
			a.wait(t, 10*time.Second)
			if t.Failed() {
				t.Logf("agent %s:\n%s", addr, a.stderr.String())
			}
		})
		addrs = append(addrs, addr)
	}
	waitListening(t, addrs...)
	scen := filepath.Join(dir, "s.yaml")
	os.WriteFile(scen, []byte(`target: `+url+`
scenarios:
  s: {executor: constant-arrival-rate, rate: 1000, duration: 2s, preAllocatedVUs: 20}
requests:
  - {name: home, path: /}
  - {name: slow, path: "/sleep?ms=3"}
  - {name: missing, path: /status/404}
`), 0o644)
	out := filepath.Join(dir, "run.json")
	p := start(t, "run", "-q", "--no-summary", scen, "--agents", strings.Join(addrs, ","), "--insecure-agents", "--out", out)
	if code := p.wait(t, time.Minute); code != 0 {
		t.Fatalf("distributed run: exit %d\n%s", code, p.stderr.String())
	}
	run := readRun(t, out)
	if run.Totals.Scheduled != 2000 || run.Partial {
		t.Fatalf("totals %+v partial %v: want 2000 scheduled over %d agents", run.Totals, run.Partial, n)
	}
	files, _ := filepath.Glob(filepath.Join(parts, "*.json"))
	if len(files) != n {
		t.Fatalf("%d agents wrote %d parts: %v", n, len(files), files)
	}
	sum := filepath.Join(dir, "sum.json")
	if p := start(t, append([]string{"merge", "--out", sum}, files...)...); p.wait(t, 30*time.Second) != 0 {
		t.Fatalf("merge: %s", p.stderr.String())
	}
	sameRun(t, readRun(t, sum), run)

	// Wider: two coordinators of five agents, each its half of one
	// sequence of ten, at once; their results add up to the whole load.
	var wg sync.WaitGroup
	halves := []string{"0:1/2", "1/2:1"}
	outs := make([]string, 2)
	seq := "0,1/10,1/5,3/10,2/5,1/2,3/5,7/10,4/5,9/10,1"
	for h := range halves {
		outs[h] = filepath.Join(dir, fmt.Sprintf("half%d.json", h))
		p := start(t, "run", "-q", "--no-summary", scen, "--agents", strings.Join(addrs[5*h:5*h+5], ","), "--insecure-agents",
			"--execution-segment-sequence", seq, "--execution-segment", halves[h], "--out", outs[h])
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code := p.wait(t, time.Minute); code != 0 {
				t.Errorf("coordinator of %s: exit %d\n%s", halves[h], code, p.stderr.String())
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	all := filepath.Join(dir, "all.json")
	if p := start(t, "merge", outs[0], outs[1], "--out", all); p.wait(t, 30*time.Second) != 0 {
		t.Fatalf("merge: %s", p.stderr.String())
	}
	wide := readRun(t, all)
	// A part that is not a valid run result stops the merge with 104,
	// naming it, and writes nothing.
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"schema": "loadcap.run/v1", "totals": {"sent": -1}}`), 0o644)
	none := filepath.Join(dir, "none.json")
	if p := start(t, "merge", outs[0], bad, "--out", none); p.wait(t, 30*time.Second) != 104 || !strings.Contains(p.stderr.String(), "bad.json") {
		t.Errorf("merging an invalid run: exit %d, %s; want 104 naming bad.json", p.cmd.ProcessState.ExitCode(), p.stderr.String())
	}
	if _, err := os.Stat(none); err == nil {
		t.Errorf("a failed merge wrote %s", none)
	}
	var perHalf []int64
	for _, o := range outs {
		perHalf = append(perHalf, readRun(t, o).Totals.Scheduled)
	}
	if wide.Totals.Scheduled != 2000 || perHalf[0] != 1000 || perHalf[1] != 1000 {
		t.Errorf("two coordinators scheduled %v, merged %d: want 1000 each, 2000 in all", perHalf, wide.Totals.Scheduled)
	}
	if n := wide.Totals.Completed + wide.Totals.Failed; wide.LatencyMs.Count != n {
		t.Errorf("merged latency holds %d values, completed+failed %d", wide.LatencyMs.Count, n)
	}
}

// sameRun asserts that got has want's counts and histograms exactly.
func sameRun(t *testing.T, got, want *reports.Run) {
	t.Helper()
	g, w := got.Totals, want.Totals
	if g.Scheduled != w.Scheduled || g.Sent != w.Sent || g.Completed != w.Completed || g.Failed != w.Failed ||
		g.Dropped != w.Dropped || g.InflightAtStop != w.InflightAtStop || g.BytesSent != w.BytesSent || g.BytesReceived != w.BytesReceived {
		t.Errorf("parts add up to %+v\nthe coordinator says %+v", g, w)
	}
	if got.LatencyMs != want.LatencyMs || got.ServiceMs != want.ServiceMs {
		t.Errorf("parts' latency %+v service %+v\nthe coordinator's %+v service %+v", got.LatencyMs, got.ServiceMs, want.LatencyMs, want.ServiceMs)
	}
	if !slices.Equal(got.RequestNames(), want.RequestNames()) {
		t.Fatalf("parts' requests %v, the coordinator's %v", got.RequestNames(), want.RequestNames())
	}
	for _, name := range want.RequestNames() {
		gq, wq := got.Requests[name], want.Requests[name]
		gq.Totals.RPS, wq.Totals.RPS = 0, 0 // over each one's own duration
		if gq.Totals != wq.Totals || fmt.Sprint(gq.StatusCodes, gq.Errors) != fmt.Sprint(wq.StatusCodes, wq.Errors) {
			t.Errorf("request %s: parts %+v\nthe coordinator %+v", name, gq, wq)
		}
		sameBuckets(t, "latency of "+name, got.Histograms[name], want.Histograms[name])
		sameBuckets(t, "service time of "+name, got.ServiceHist[name], want.ServiceHist[name])
	}
	if len(got.Intervals) != len(want.Intervals) {
		t.Fatalf("parts have %d seconds, the coordinator %d", len(got.Intervals), len(want.Intervals))
	}
	for i, wi := range want.Intervals {
		gi := got.Intervals[i]
		if gi.T != wi.T || gi.Scheduled != wi.Scheduled || gi.Sent != wi.Sent || gi.Completed != wi.Completed || gi.Failed != wi.Failed ||
			gi.Dropped != wi.Dropped || gi.LatencyMs != wi.LatencyMs {
			t.Errorf("second %d: parts sent %d completed %d failed %d latency %+v; the coordinator %d %d %d %+v",
				wi.T, gi.Sent, gi.Completed, gi.Failed, gi.LatencyMs, wi.Sent, wi.Completed, wi.Failed, wi.LatencyMs)
		}
		for name, h := range wi.Histograms {
			sameBuckets(t, fmt.Sprintf("second %d of %s", wi.T, name), gi.Histograms[name], h)
		}
	}
}

// sameBuckets asserts two encoded histograms hold the same counts.
func sameBuckets(t *testing.T, what, got, want string) {
	t.Helper()
	g, err := hdr.Decode([]byte(got))
	if err != nil {
		t.Errorf("%s: parts: %v", what, err)
		return
	}
	w, err := hdr.Decode([]byte(want))
	if err != nil {
		t.Errorf("%s: coordinator: %v", what, err)
		return
	}
	gb, wb := g.Distribution(), w.Distribution()
	if g.TotalCount() != w.TotalCount() {
		t.Errorf("%s: parts hold %d values, the coordinator %d", what, g.TotalCount(), w.TotalCount())
		return
	}
	nonzero := func(bs []hdr.Bar) []hdr.Bar {
		var out []hdr.Bar
		for _, b := range bs {
			if b.Count > 0 {
				out = append(out, b)
			}
		}
		return out
	}
	if !slices.Equal(nonzero(gb), nonzero(wb)) {
		t.Errorf("%s: the parts' buckets differ from the coordinator's", what)
	}
}
