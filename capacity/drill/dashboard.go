package drill

import (
	"time"

	"github.com/loadcap/loadcap/capacity"
	"github.com/loadcap/loadcap/internal/dashboard"
	"github.com/loadcap/loadcap/scenarios"
)

// showDrill puts the drill's plan on its dashboard, and what the stage
// tracker last measured of each service.
func showDrill(dash *dashboard.Server, d *scenarios.Drill, peak float64, tr *capacity.StageTracker) {
	var stages []dashboard.Stage
	var at time.Duration
	for _, s := range d.Stages {
		stages = append(stages, dashboard.Stage{Name: s.Name, Start: at, Ramp: s.Ramp, Hold: s.Hold, RatePerSec: d.StageRate(s, peak)})
		at += s.Ramp + s.Hold
	}
	dash.Stages(stages)
	if len(d.Services) == 0 {
		return
	}
	dash.Services(func() []dashboard.Service {
		stage, stats := tr.Latest()
		out := make([]dashboard.Service, 0, len(stats))
		for _, s := range stats {
			ds := dashboard.Service{Name: s.Name, Stage: stage, RatePerSec: s.RequestRate, GoodPerSec: s.GoodRate, Utilization: s.Utilization}
			if s.Utilization > 0 {
				// The utilization law over this stage's hold alone; the
				// drill's figure, at the end, pools the stages.
				ds.CapacityPerSec, ds.Method = s.GoodRate/s.Utilization, "utilization law"
			}
			out = append(out, ds)
		}
		return out
	})
}
