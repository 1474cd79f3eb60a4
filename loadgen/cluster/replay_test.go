package cluster

import (
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/loadgen/target"
	"github.com/loadcap/loadcap/loadgen/target/targettest"
	"github.com/loadcap/loadcap/scenarios"
)

// recording is a timed replay source in memory: what internal/capture builds
// from a recording file.
type recording struct {
	mu    sync.Mutex
	items []loadgen.ReplayItem
	next  int
}

func (r *recording) Next() (*loadgen.ReplayItem, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.next == len(r.items) {
		return nil, false
	}
	it := r.items[r.next]
	r.next++
	return &it, true
}

func (r *recording) Release(*loadgen.ReplayItem) {}

func TestReplaySplitsTheRecordingAcrossAgents(t *testing.T) {
	srv := targettest.Start(t, target.Config{})
	u, _ := url.Parse(srv.URL())
	const n = 60
	stats := scenarios.RecordingStats{Count: n, Span: (n - 1) * 20 * time.Millisecond}
	names := []string{"GET /r"}
	tests := []struct {
		name    string
		badItem int // index of an item aimed at a host the agent did not check; -1 none
	}{
		{"whole recording once", -1},
		{"a request to an unchecked host kills that agent's run", 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv.Reset()
			replay := func(f *scenarios.File) (loadgen.ReplaySource, []string, error) {
				if err := f.SetReplayRequests(names, stats); err != nil {
					return nil, nil, err
				}
				rec := &recording{}
				for i := range n {
					host := u.Host
					if i == tc.badItem {
						host = "127.0.0.2:1"
					}
					rec.items = append(rec.items, loadgen.ReplayItem{At: time.Duration(i) * 20 * time.Millisecond,
						Method: "GET", Scheme: "http", Host: host, Target: []byte("/r")})
				}
				return rec, []string{u.Host}, nil
			}
			var addrs []string
			for range 2 {
				addrs = append(addrs, localAgent(t, AgentConfig{Insecure: true, Replay: replay}))
			}
			f := scenario(t, "target: "+srv.URL()+"\nreplay:\n  file: rec.jsonl\n", map[string]string{"rec.jsonl": "{}\n"})
			if err := f.SetReplayRequests(names, stats); err != nil {
				t.Fatal(err)
			}
			res, rep := runCluster(t, f, CoordinatorConfig{Agents: addrs, Insecure: true})
			if tc.badItem < 0 {
				if res.Totals.Sent != n || srv.Stats().Arrived != n || res.Partial() {
					t.Errorf("sent %d, target saw %d, partial %v: want the %d recorded requests once", res.Totals.Sent, srv.Stats().Arrived, res.Partial(), n)
				}
				for _, a := range rep.Agents {
					if a.Sent != n/2 {
						t.Errorf("agent %s replayed %d of %d records, want half", a.Addr, a.Sent, n)
					}
				}
				return
			}
			if !res.Partial() || !strings.Contains(res.Lost[0].Reason, "127.0.0.2:1") {
				t.Errorf("want the agent that met the unchecked host lost, naming it: %+v", res.Lost)
			}
		})
	}
}
