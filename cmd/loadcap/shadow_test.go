package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loadcap/loadcap/test/israce"
	"github.com/loadcap/loadcap/test/quiet"
)

// recorder is a loopback target that keeps what it received.
type recorder struct {
	mu   sync.Mutex
	reqs []*http.Request
	at   []time.Time
}

func (rc *recorder) start(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, r)
		rc.at = append(rc.at, time.Now())
		rc.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// recording writes n requests as an nginx combined log: a burst of half of
// them in the first second, the rest over the next nine.
func recording(t *testing.T, dir string, n int) string {
	t.Helper()
	var b strings.Builder
	t0 := time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		at := t0
		if i >= n/2 {
			at = t0.Add(time.Second + time.Duration(i-n/2)*9*time.Second/time.Duration(n-n/2))
		}
		path := fmt.Sprintf("/orders/%d", 1000+i)
		method := "GET"
		if i%4 == 0 {
			method, path = "POST", "/api/cart/items"
		}
		fmt.Fprintf(&b, "10.0.0.%d - - [%s] \"%s %s HTTP/1.1\" 200 12 \"-\" \"app/1.0\"\n", i%250, at.Format("02/Jan/2006:15:04:05 -0700"), method, path)
	}
	b.WriteString("this line is not a log line\n")
	p := filepath.Join(dir, "access.log")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestShadowImportInspectReplay(t *testing.T) {
	dir := t.TempDir()
	log := recording(t, dir, 200)
	traffic := filepath.Join(dir, "traffic.jsonl")

	res := loadcap(t, nil, false, "shadow", "import", log, "--format", "nginx", "--out", traffic)
	if res.code != 0 || !strings.Contains(res.stderr, "200 requests") || !strings.Contains(res.stderr, "access.log:201") {
		t.Fatalf("import: exit %d\n%s", res.code, res.stderr)
	}
	if r := loadcap(t, nil, false, "shadow", "import", log, "--format", "nginx", "--out", filepath.Join(dir, "strict.jsonl"), "--strict"); r.code != 104 {
		t.Errorf("import --strict with a malformed line: exit %d, want 104", r.code)
	}
	res = loadcap(t, nil, false, "shadow", "inspect", traffic)
	if res.code != 0 || !strings.Contains(res.stdout, "GET /orders/{id}") || !strings.Contains(res.stdout, "POST /api/cart/items") {
		t.Fatalf("inspect: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}

	var got recorder
	url := got.start(t)
	drill := writeFile(t, "drill.yaml", fmt.Sprintf(`target: %s
drill_id: presale-2026-11
replay:
  file: %s
  speed: 10
thresholds:
  http_req_failed: ["rate<0.01"]
`, url, traffic))
	out := filepath.Join(dir, "run.json")
	quiet.Retry(t, 3, func(a *quiet.A) {
		got.mu.Lock()
		got.reqs, got.at = nil, nil
		got.mu.Unlock()
		start := time.Now()
		res = loadcap(t, nil, false, "run", "-q", "--no-summary", drill, "--out", out)
		took := time.Since(start)
		if res.code != 0 {
			t.Fatalf("replay: exit %d\n%s", res.code, res.stderr)
		}
		run := readRun(t, out)
		if run.Totals.Completed != 200 || run.Requests["GET /orders/{id}"].Totals.Completed != 150 {
			t.Errorf("replayed %d (%v), want 200, 150 of them GET /orders/{id}", run.Totals.Completed, run.Requests)
		}
		got.mu.Lock()
		defer got.mu.Unlock()
		// 10 s recorded at ×10 take about 1 s, with the recording's shape per
		// 100 ms: its first second held half the requests, then ~11 a second
		// (the log times them to the second; the replay spreads each second's
		// requests over it).
		buckets := make([]int, 12)
		for i, r := range got.reqs {
			if r.Header.Get("X-Loadcap-Shadow") != "presale-2026-11" || r.Header.Get("Baggage") != "loadcap.shadow=presale-2026-11" {
				t.Fatalf("request %d not tagged: %v", i, r.Header)
			}
			buckets[min(int(got.at[i].Sub(got.at[0])/(100*time.Millisecond)), 11)]++
		}
		want := []int{100, 12, 11, 11, 11, 11, 11, 11, 11, 11, 0, 0}
		for k := range buckets {
			if d := buckets[k] - want[k]; !israce.Enabled && (d > 4 || d < -4) {
				a.Errorf("per 100 ms %v, want ≈%v (the recording's per-second shape)", buckets, want)
				break
			}
		}
		if !israce.Enabled && took > 3*time.Second {
			a.Errorf("took %v, want ≈1 s", took)
		}
	})

	// Untagged replay: refused without drill_id, refused off loopback (a
	// .invalid host never resolves, so nothing could leave even if it ran).
	untagged := writeFile(t, "u.yaml", fmt.Sprintf("target: %s\nreplay: {file: %s}\n", url, traffic))
	if r := loadcap(t, nil, false, "run", "-q", untagged); r.code != 104 || !strings.Contains(r.stderr, "drill_id") {
		t.Errorf("replay without drill_id: exit %d\n%s", r.code, r.stderr)
	}
	remote := writeFile(t, "r.yaml", fmt.Sprintf("target: http://shop.invalid:8080\nreplay: {file: %s}\n", traffic))
	if r := loadcap(t, nil, false, "run", "-q", "--no-tag", remote); r.code != 2 || !strings.Contains(r.stderr, "only against loopback") {
		t.Errorf("--no-tag off loopback: exit %d\n%s", r.code, r.stderr)
	}
}
