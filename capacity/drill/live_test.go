package drill

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/loadgen/live"
	"github.com/loadcap/loadcap/scenarios"
)

// The live metrics say which stage the drill is in, at the rate it plans,
// and each guard rule's state, as the intervals go by.
func TestLiveStageAndRules(t *testing.T) {
	d := &scenarios.Drill{Stages: []scenarios.DrillStage{
		{Name: "warm", Rate: 10, Ramp: time.Second, Hold: 2 * time.Second},
		{Name: "peak", Multiplier: 2, Hold: 3 * time.Second},
	}}
	rules := []RuleRun{{Name: "p99", State: "ok"}, {Name: "errors", State: "pending"}}
	for _, tc := range []struct {
		name string
		end  time.Duration
		want []string
	}{
		{"ramping the first", 1 * time.Second, []string{`loadcap_drill_stage{stage="warm"} 1`, "loadcap_drill_stage_planned_requests_per_second 10"}},
		{"holding the second", 4 * time.Second, []string{`loadcap_drill_stage{stage="peak"} 2`, "loadcap_drill_stage_planned_requests_per_second 50"}},
		{"past the last", 6 * time.Second, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := live.New()
			feedLive(m, d, 25, loadgen.Interval{End: tc.end}, func() []RuleRun { return rules })
			got, err := testutil.CollectAndFormat(m, expfmt.TypeTextPlain, "loadcap_drill_stage", "loadcap_drill_stage_planned_requests_per_second")
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == nil && strings.Contains(string(got), "loadcap_drill_stage") {
				t.Errorf("past the last stage, a stage is still shown:\n%s", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(got), w+"\n") {
					t.Errorf("got\n%s\nwant %s", got, w)
				}
			}
			n, err := testutil.GatherAndCount(m.Registry(), "loadcap_guard_rule_state")
			if err != nil || n != 2*len(live.RuleStates) {
				t.Errorf("%d guard rule state series (%v), want %d", n, err, 2*len(live.RuleStates))
			}
		})
	}
}
