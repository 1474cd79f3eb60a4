package drill

import (
	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/loadgen/live"
	"github.com/loadcap/loadcap/scenarios"
)

// feedLive shows on m, after interval iv, the stage the drill is in (none
// past the last) and its guard rules' states.
func feedLive(m *live.Metrics, d *scenarios.Drill, peak float64, iv loadgen.Interval, rules func() []RuleRun) {
	if m == nil {
		return
	}
	var end float64
	number, name, rate := 0, "", 0.0
	for i, s := range d.Stages {
		end += (s.Ramp + s.Hold).Seconds()
		if iv.End.Seconds() < end {
			number, name, rate = i+1, s.Name, d.StageRate(s, peak)
			break
		}
	}
	m.Stage(number, name, rate)
	if rules == nil {
		return
	}
	var rs []live.Rule
	for _, r := range rules() {
		rs = append(rs, live.Rule{Name: r.Name, State: r.State})
	}
	m.Rules(rs)
}
