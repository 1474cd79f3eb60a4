package loadgen_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/loadgen/httpc"
	"github.com/loadcap/loadcap/scenarios"
	"github.com/loadcap/loadcap/test/israce"
	"github.com/loadcap/loadcap/test/quiet"
)

// sliceSource replays items from memory; at a rate it cycles them.
type sliceSource struct {
	mu     sync.Mutex
	items  []loadgen.ReplayItem
	next   int
	cycle  bool
	issued int
	freed  int
}

func (s *sliceSource) Next() (*loadgen.ReplayItem, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.next == len(s.items) {
		if !s.cycle {
			return nil, false
		}
		s.next = 0
	}
	it := s.items[s.next] // a copy: the engine may hold it while we go on
	s.next++
	s.issued++
	return &it, true
}

func (s *sliceSource) Release(*loadgen.ReplayItem) {
	s.mu.Lock()
	s.freed++
	s.mu.Unlock()
}

// seen records what a loopback target received.
type seen struct {
	mu   sync.Mutex
	reqs []*http.Request
	at   []time.Time
}

func (s *seen) server(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.reqs = append(s.reqs, r)
		s.at = append(s.at, time.Now())
		s.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return srv
}

func replayFile(t *testing.T, yaml string, srvURL string, names []string, st scenarios.RecordingStats) *scenarios.File {
	t.Helper()
	f := parse(t, yaml, srvURL)
	if err := f.SetReplayRequests(names, st); err != nil {
		t.Fatal(err)
	}
	return f
}

// A timed replay sends each recorded request at its own offset, in its
// route's series, with the drill's tag and never the recording's.
func TestTimedReplayKeepsTheRecordedShape(t *testing.T) {
	var got seen
	srv := got.server(t)
	u, _ := url.Parse(srv.URL)
	f := replayFile(t, `
target: %s
drill_id: drill-7
replay:
  file: traffic.jsonl
  speed: 1
`, srv.URL, []string{"GET /a", "POST /b"}, scenarios.RecordingStats{Count: 40, Span: 1740 * time.Millisecond})

	// A burst of 30 in the first 100 ms, then 10 from 0.3 s to 1.74 s.
	var items []loadgen.ReplayItem
	for i := 0; i < 40; i++ {
		at := time.Duration(i) * 100 * time.Millisecond / 30
		req, method := 0, "GET"
		if i >= 30 {
			at = 300*time.Millisecond + time.Duration(i-30)*160*time.Millisecond
			req, method = 1, "POST"
		}
		items = append(items, loadgen.ReplayItem{
			At: at, Request: req, Method: method, Scheme: "http", Host: u.Host,
			Target: []byte("/rec?i=" + string(rune('a'+i%26))),
			Header: []httpc.Header{{Name: "X-Loadcap-Shadow", Value: []byte("recorded")}, {Name: "X-Rec", Value: []byte("1")}},
		})
	}
	// A freeze moves the burst out of its 200 ms, stretches the run and
	// may drop the last arrival: such an attempt is replayed again.
	quiet.Retry(t, 3, func(a *quiet.A) {
		got.mu.Lock()
		got.reqs, got.at = nil, nil
		got.mu.Unlock()
		src := &sliceSource{items: items}
		start := time.Now()
		res := run(t, f, loadgen.WithReplay(src))
		el := time.Since(start)
		if res.Totals.Completed+res.Totals.Dropped != 40 {
			t.Fatalf("completed %d + dropped %d, want the recording's 40", res.Totals.Completed, res.Totals.Dropped)
		}
		if src.freed != src.issued {
			t.Errorf("released %d of %d items", src.freed, src.issued)
		}
		if res.Totals.Dropped != 0 {
			a.Errorf("dropped %d of 40, want 0", res.Totals.Dropped)
		}
		ra, rb := res.Request("GET /a"), res.Request("POST /b")
		if ra == nil || rb == nil || ra.Completed > 30 || rb.Completed > 10 || ra.Completed+rb.Completed != res.Totals.Completed {
			t.Fatalf("per-route counts: %+v %+v, want 30 and 10", ra, rb)
		}
		if ra.Completed != 30 || rb.Completed != 10 {
			a.Errorf("per-route counts %d and %d, want 30 and 10", ra.Completed, rb.Completed)
		}
		got.mu.Lock()
		defer got.mu.Unlock()
		early := 0
		for i, r := range got.reqs {
			if v := r.Header.Values("X-Loadcap-Shadow"); len(v) != 1 || v[0] != "drill-7" {
				t.Fatalf("request %d tagged %q, want only the drill's tag", i, v)
			}
			if r.Header.Get("Baggage") != "loadcap.shadow=drill-7" || r.Header.Get("X-Rec") != "1" {
				t.Fatalf("request %d headers %v", i, r.Header)
			}
			if got.at[i].Sub(start) < 200*time.Millisecond {
				early++
			}
		}
		if !israce.Enabled && early != 30 {
			a.Errorf("%d requests in the first 200 ms, want the recorded burst of 30", early)
		}
		if el < 2700*time.Millisecond {
			t.Errorf("replay took %v, want the recording's 1.74 s and its last second", el)
		} else if el > 3500*time.Millisecond {
			a.Errorf("replay took %v, want the recording's 1.74 s and its last second", el)
		}
	})
}

// At a rate, the recording is cycled at the scenario's arrival rate.
func TestRateReplayCyclesTheRecording(t *testing.T) {
	var got seen
	srv := got.server(t)
	u, _ := url.Parse(srv.URL)
	f := replayFile(t, `
target: %s
drill_id: d1
replay:
  file: traffic.jsonl
  mode: rate
scenarios:
  s:
    executor: constant-arrival-rate
    rate: 200
    duration: 1s
    preAllocatedVUs: 10
`, srv.URL, []string{"GET /x"}, scenarios.RecordingStats{Count: 3, Span: time.Second})
	src := &sliceSource{cycle: true}
	for i := 0; i < 3; i++ {
		src.items = append(src.items, loadgen.ReplayItem{Method: "GET", Scheme: "http", Host: u.Host, Target: []byte("/x/" + string(rune('0'+i)))})
	}
	res := run(t, f, loadgen.WithReplay(src))
	if res.Totals.Scheduled < 195 || res.Totals.Scheduled > 201 {
		t.Errorf("scheduled %d, want the scenario's 200", res.Totals.Scheduled)
	}
	got.mu.Lock()
	defer got.mu.Unlock()
	counts := map[string]int{}
	for _, r := range got.reqs {
		counts[r.URL.Path]++
	}
	// Arrivals take the items in turn, dropped ones too: each path gets a
	// third of what was sent, however many a freeze dropped.
	if len(counts) != 3 || len(got.reqs) != int(res.Totals.Completed) {
		t.Errorf("paths sent %v, %d in all; want 3 paths, the %d completed", counts, len(got.reqs), res.Totals.Completed)
	}
	for p, n := range counts {
		if third := len(got.reqs) / 3; n < third-5 || n > third+5 {
			t.Errorf("%s sent %d times, want a third of %d (%v)", p, n, len(got.reqs), counts)
		}
	}
}

func TestReplayNeedsASource(t *testing.T) {
	f := replayFile(t, "target: %s\nreplay: {file: t.jsonl}\n", "http://127.0.0.1:9", []string{"GET /"}, scenarios.RecordingStats{Count: 1, Span: time.Second})
	if _, err := loadgen.New(f); err == nil {
		t.Fatal("a replay file ran without a replay source")
	}
}
