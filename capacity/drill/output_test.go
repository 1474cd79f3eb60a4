package drill

import (
	"testing"

	"github.com/loadcap/loadcap/loadgen"
)

// A drill on agents that lost one is partial (exit 111), unless something
// worse happened.
func TestVerdictPartial(t *testing.T) {
	lost := &loadgen.Result{Lost: []loadgen.Lost{{Agent: "10.0.0.6:7070", Share: 0.5}}}
	if v := (&Result{Run: lost}).Verdict(); v != Partial {
		t.Errorf("a drill that lost an agent: verdict %v, want Partial", v)
	}
	if v := (&Result{Run: lost, Stopped: &Stop{Reason: "guard"}}).Verdict(); v != Stopped {
		t.Errorf("stopped and partial: verdict %v, want Stopped", v)
	}
	if v := (&Result{Run: &loadgen.Result{}}).Verdict(); v != Held {
		t.Errorf("a complete drill: verdict %v, want Held", v)
	}
}
