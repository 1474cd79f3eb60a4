package loadgen

import (
	"testing"
	"time"

	"github.com/loadcap/loadcap/scenarios"
)

// VUs that left are not kept: a day of ramps up and down makes VUs by the
// million, each with its buffers (and, on goroutines, a client's).
func TestExitedVUsAreForgotten(t *testing.T) {
	f, err := scenarios.Quick(scenarios.QuickOptions{URL: "http://127.0.0.1:1/", Method: "GET", VUs: 1, Duration: time.Second, Headers: map[string]string{}})
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(f)
	if err != nil {
		t.Fatal(err)
	}
	s := &scenarioRun{e: e, sc: &f.Scenarios[0], mix: e.mixes[0]}
	for round := range 3 {
		var vus []*vu
		for i := range 100 {
			vus = append(vus, s.newVUWith(i%2 == 0))
		}
		if len(s.vus) != 100 {
			t.Fatalf("round %d: %d VUs held while 100 run", round, len(s.vus))
		}
		for _, v := range vus {
			v.exit()
		}
		if len(s.vus) != 0 || e.activeVUs.Load() != 0 {
			t.Fatalf("round %d: %d VUs still held, %d active, after all left", round, len(s.vus), e.activeVUs.Load())
		}
	}
}
