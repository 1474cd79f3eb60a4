package capture_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loadcap/loadcap/internal/capture"
	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/scenarios"
	"github.com/loadcap/loadcap/test/quiet"
)

// replayAgainst replays the scenario src (its target is the test server)
// and returns the requests the server received.
func replayAgainst(t *testing.T, dir, src string) ([]*http.Request, *loadgen.Result) {
	t.Helper()
	var mu sync.Mutex
	var got []*http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r)
		mu.Unlock()
	}))
	defer srv.Close()
	path := filepath.Join(dir, "drill.yaml")
	f, err := scenarios.Parse(path, []byte(strings.ReplaceAll(src, "TARGET", srv.URL)))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := capture.NewReplaySource(f, capture.ReplayConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	e, err := loadgen.New(f, loadgen.WithReplay(rs))
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	return got, res
}

func writeRecording(t *testing.T, dir string, recs []capture.Record) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "traffic.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	w := capture.NewWriter(f)
	for i := range recs {
		if err := w.Write(&recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// Amplified ×3, every copy of an order lands in its own shadow ID range;
// dropped routes are never sent; the route mix is the recording's; the
// recorded host is never the destination; recorded credentials, scrubbed
// when the recording was written, never reach the target.
func TestReplayAmplifiesIntoDisjointIDRanges(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)
	var recs []capture.Record
	for i := 1; i <= 30; i++ {
		recs = append(recs, capture.Record{Time: t0.Add(time.Duration(i) * 10 * time.Millisecond), Method: "GET",
			Host: "shop.example.com", Path: fmt.Sprintf("/orders/%d?user_id=%d", i, 100+i),
			Header: []capture.Header{{Name: "X-Cart-Id", Value: "c" + strconv.Itoa(i)},
				{Name: "Authorization", Value: "Bearer real-user-token"}, {Name: "Cookie", Value: "session=real"}}})
	}
	recs = append(recs, capture.Record{Time: t0.Add(time.Second), Method: "POST", Path: "/payments/callback"})
	writeRecording(t, dir, recs)
	rules := `ids:
  - {path: '^/orders/(\d+)', offset: 1000000000}
  - {header: X-Cart-Id, prefix: shadow-}
drop:
  - {method: POST, path: '^/payments/callback'}
`
	if err := os.WriteFile(filepath.Join(dir, "rewrite.yaml"), []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	got, res := replayAgainst(t, dir, `target: TARGET
drill_id: d-amp
replay: {file: traffic.jsonl, speed: 10, amplify: 3, rewrite: rewrite.yaml}
`)
	if len(got) != 90 || res.Totals.Completed != 90 {
		t.Fatalf("received %d requests (completed %d), want 30 recorded × 3", len(got), res.Totals.Completed)
	}
	ids := map[int64]int{} // copy range → count
	seen := map[int64]bool{}
	carts := map[string]bool{}
	for _, r := range got {
		if r.Method != "GET" || !strings.HasPrefix(r.URL.Path, "/orders/") {
			t.Fatalf("unexpected request %s %s (the drop rule should have removed it)", r.Method, r.URL)
		}
		if r.Header.Get("Authorization") != "" || r.Header.Get("Cookie") != "" {
			t.Fatalf("credentials reached the target: %v (the recording is scrubbed when written)", r.Header)
		}
		if r.Host == "shop.example.com" || r.Header.Get("X-Loadcap-Shadow") != "d-amp" {
			t.Fatalf("request to host %q tagged %q", r.Host, r.Header.Get("X-Loadcap-Shadow"))
		}
		id, _ := strconv.ParseInt(strings.TrimPrefix(r.URL.Path, "/orders/"), 10, 64)
		if seen[id] {
			t.Fatalf("id %d sent twice: copies collide", id)
		}
		seen[id] = true
		ids[id/1_000_000_000]++
		carts[r.Header.Get("X-Cart-Id")] = true
	}
	keys := make([]int64, 0, len(ids))
	for k := range ids {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	if len(keys) != 3 || keys[0] != 1 || keys[2] != 3 || ids[1] != 30 || ids[2] != 30 || ids[3] != 30 {
		t.Errorf("ids by range (×1e9) %v, want 30 in each of 1, 2, 3", ids)
	}
	if len(carts) != 90 || !carts["shadow-c1"] || !carts["shadow1-c1"] || !carts["shadow2-c1"] {
		t.Errorf("%d distinct cart ids, want 90 (3 prefixes × 30)", len(carts))
	}
	if s := res.Request("GET /orders/{id}"); s == nil || s.Completed != 90 {
		t.Errorf("route series %+v", res.Requests)
	}
}

// At a rate, the recording is cycled: the route mix equals the recording's.
func TestReplayAtRateKeepsTheMix(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)
	var recs []capture.Record
	for i := 0; i < 10; i++ {
		p := "/products/" + strconv.Itoa(i)
		if i%5 == 0 {
			p = "/cart"
		}
		recs = append(recs, capture.Record{Time: t0.Add(time.Duration(i) * time.Second), Method: "GET", Path: p})
	}
	writeRecording(t, dir, recs)
	// A stall of the machine at the end drops the arrivals it held back
	// (by design): the run then sends fewer, and is run again.
	quiet.Retry(t, 3, func(a *quiet.A) {
		got, res := replayAgainst(t, dir, `target: TARGET
drill_id: d-rate
replay: {file: traffic.jsonl, mode: rate}
scenarios:
  s: {executor: constant-arrival-rate, rate: 300, duration: 1s, preAllocatedVUs: 10}
`)
		cart := 0
		for _, r := range got {
			if r.URL.Path == "/cart" {
				cart++
			}
		}
		n, dropped := len(got), int(res.Totals.Dropped)
		if n+dropped != 300 || cart*5 < n-10 || cart*5 > n+10 {
			t.Errorf("%d requests (%d dropped), %d to /cart: want 300 arrivals, those sent with the recorded 1-in-5 share", n, dropped, cart)
		}
		if n < 270 {
			a.Errorf("%d of 300 requests sent, %d dropped", n, dropped)
		}
		if res.Request("GET /cart") == nil || res.Request("GET /products/{id}") == nil {
			t.Errorf("route series %+v", res.Requests)
		}
	})
}

// Requests are recorded under the route they are sent as: a path rewrite
// names the series after the rewritten path.
func TestReplayNamesRewrittenRoutes(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)
	writeRecording(t, dir, []capture.Record{
		{Time: t0, Method: "GET", Path: "/api/v1/orders/1"},
		{Time: t0.Add(100 * time.Millisecond), Method: "GET", Path: "/products/2"},
	})
	rules := "paths:\n  - {match: '^/api/v1/', replace: /api/v2/}\n"
	if err := os.WriteFile(filepath.Join(dir, "rewrite.yaml"), []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	got, res := replayAgainst(t, dir, `target: TARGET
drill_id: d-rw
replay: {file: traffic.jsonl, speed: 10, rewrite: rewrite.yaml}
`)
	if len(got) != 2 || got[0].URL.Path != "/api/v2/orders/1" {
		t.Fatalf("received %d requests, first %v", len(got), got)
	}
	if s := res.Request("GET /api/v2/orders/{id}"); s == nil || s.Completed != 1 {
		t.Errorf("series %v: want the rewritten route GET /api/v2/orders/{id}", names(res))
	}
	if s := res.Request("GET /products/{id}"); s == nil || s.Completed != 1 {
		t.Errorf("series %v", names(res))
	}
}

func names(r *loadgen.Result) []string {
	var out []string
	for _, q := range r.Requests {
		out = append(out, fmt.Sprintf("%s=%d", q.Name, q.Completed))
	}
	return out
}
