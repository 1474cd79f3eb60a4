package scenarios

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReplaySection(t *testing.T) {
	f := mustParse(t, `target: http://127.0.0.1:8080
drill_id: presale-2026-11
replay:
  file: traffic.jsonl
  speed: 5
  amplify: 3
  rewrite: rules/rewrite.yaml
  maxVUs: 200
`, nil)
	r := f.Replay
	if r == nil || r.Mode != ReplayTimed || r.Speed != 5 || r.Amplify != 3 || r.MaxVUs != 200 || r.PreAllocatedVUs != 100 {
		t.Fatalf("replay %+v", r)
	}
	dir := filepath.Dir(f.Path)
	if r.File != filepath.Join(dir, "traffic.jsonl") || r.Rewrite != filepath.Join(dir, "rules/rewrite.yaml") {
		t.Errorf("paths %q %q are not resolved against the scenario's directory", r.File, r.Rewrite)
	}
	if f.DrillID != "presale-2026-11" || len(f.Headers) != 2 || f.Headers[0].Name != ShadowHeader ||
		f.Headers[0].Value.String() != "presale-2026-11" || f.Headers[1].Value.String() != "loadcap.shadow=presale-2026-11" {
		t.Errorf("tag headers %+v", f.Headers)
	}
	// A recording of 1000 requests over 9 s (first to last, so 10 s with
	// its last second) at ×5, ×3: 2 s at 1500/s.
	if err := f.SetReplayRequests([]string{"GET /a", "GET /b"}, RecordingStats{Count: 1000, Span: 9 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if len(f.Scenarios) != 1 || f.Scenarios[0].Name != ReplayScenario || len(f.Requests) != 2 {
		t.Fatalf("scenarios %+v requests %+v", f.Scenarios, f.Requests)
	}
	w := f.Scenarios[0].Workload
	if w.Model != Open || w.Duration() != 2*time.Second || w.StartRatePerSec != 1500 || w.MaxVUs != 200 {
		t.Errorf("timed workload %+v", w)
	}
}

func TestReplayAtRate(t *testing.T) {
	f := mustParse(t, `target: http://127.0.0.1:8080
replay: {file: t.jsonl, mode: rate}
scenarios:
  s: {executor: constant-arrival-rate, rate: 50, duration: 10s, preAllocatedVUs: 5}
thresholds:
  http_req_duration: ["p(99)<200"]
`, nil)
	if err := f.SetReplayRequests([]string{"GET /a", "POST /b", "GET /c"}, RecordingStats{Count: 3}); err != nil {
		t.Fatal(err)
	}
	if sc := f.Scenarios[0]; len(sc.Requests) != 3 || sc.Workload.StartRatePerSec != 50 {
		t.Errorf("scenario %+v", sc)
	}
	if len(f.Thresholds) != 1 || f.DrillID != "" || len(f.Headers) != 0 {
		t.Errorf("thresholds %+v, untagged file got headers %+v", f.Thresholds, f.Headers)
	}
}

func TestReplayErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"timed with scenarios", `target: http://127.0.0.1:8080
replay: {file: t.jsonl}
scenarios:
  s: {executor: constant-vus, vus: 1, duration: 1s}
`, []string{"t.yaml:3:1: scenarios: a timed replay follows the recording's own arrival times"}},
		{"rate without scenarios", `target: http://127.0.0.1:8080
replay: {file: t.jsonl, mode: rate}
`, []string{"t.yaml:1:1: scenarios: is required with replay.mode: rate"}},
		{"requests with replay", `target: http://127.0.0.1:8080
replay: {file: t.jsonl}
requests: [{path: /}]
`, []string{"t.yaml:3:1: requests: a file with replay: takes its requests from the recording"}},
		{"bad fields", `target: http://127.0.0.1:8080
drill_id: "no spaces allowed"
replay:
  speed: 500
  amplify: 0
  mode: fast
  format: pcap
  spead: 2
`, []string{
			`t.yaml:2:11: drill_id: "no spaces allowed" is not a valid drill id`,
			"t.yaml:4:3: replay.file: is required",
			"t.yaml:4:10: replay.speed: must be between 0.1 and 100, got 500",
			"t.yaml:5:12: replay.amplify: must be between 1 and 100, got 0",
			`t.yaml:6:9: replay.mode: unknown mode "fast"`,
			`t.yaml:7:11: replay.format: unknown format "pcap"`,
			`t.yaml:8:3: replay.spead: unknown key (did you mean "speed"?)`,
		}},
		{"no target", `replay: {file: t.jsonl}
`, []string{"t.yaml:1:1: target: is required with replay"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseIn(t, tc.src, nil)
			if err == nil {
				t.Fatal("parsed")
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("missing %q in:\n%s", w, msg)
				}
			}
		})
	}
}

func TestDrillIDTagsEveryRequest(t *testing.T) {
	f := mustParse(t, "drill_id: d-1\n"+minimal("  - name: a\n    path: /"), nil)
	if len(f.Headers) != 2 || f.Headers[0].Name != ShadowHeader {
		t.Fatalf("headers %+v", f.Headers)
	}
	// A file that sets the header itself keeps its own.
	f = mustParse(t, "drill_id: d-1\nhttp: {headers: {X-Loadcap-Shadow: mine}}\n"+minimal("  - name: a\n    path: /"), nil)
	if len(f.Headers) != 1 || f.Headers[0].Value.String() != "mine" {
		t.Errorf("headers %+v", f.Headers)
	}
}

// A drill re-tags a scenario that has its own drill_id: only the drill's
// tag is sent.
func TestTagReplacesTheFilesTag(t *testing.T) {
	f := mustParse(t, "drill_id: ci-smoke\n"+minimal("  - name: a\n    path: /"), nil)
	f.Tag("presale-2026")
	var got []string
	for _, h := range f.Headers {
		got = append(got, h.Name+": "+h.Value.String())
	}
	if len(got) != 2 || got[0] != "X-Loadcap-Shadow: presale-2026" || got[1] != "Baggage: loadcap.shadow=presale-2026" {
		t.Errorf("headers %q, want only the drill's tag", got)
	}
}
