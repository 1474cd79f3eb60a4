package reports

import (
	"fmt"
	"image/color"

	"github.com/loadcap/loadcap/capacity/autoscale"
	"github.com/loadcap/loadcap/capacity/verify"
	"github.com/loadcap/loadcap/reports/chart"
)

// verifyView is a plan's verification: each check, the plan beside the
// measurement.
type verifyView struct {
	Held       bool
	Bottleneck string
	Checks     []verifyCheck
}

type verifyCheck struct {
	Name, About, Line string
	Held              bool
	Rows              []verifyRow
}

type verifyRow struct {
	Name, Replicas, Predicted, Measured, PerReplica, PredUtil, Util, Ceiling, Latency, Failed, Error string
	Over                                                                                             bool
}

func buildVerify(r *verify.Result) *verifyView {
	v := &verifyView{Held: r.Held}
	v.Bottleneck = fmt.Sprintf("planned %s, measured %s", dashed(r.PredictedBottleneck), dashed(r.MeasuredBottleneck))
	if r.PredictedBottleneck == r.MeasuredBottleneck {
		v.Bottleneck += " (agrees)"
	} else {
		v.Bottleneck += " (differs)"
	}
	for _, c := range r.Checks {
		ck := verifyCheck{Name: c.Name, About: c.About, Held: c.Held}
		if st := c.Step; st != nil {
			ck.Line = fmt.Sprintf("%s req/s offered, %s achieved, p99 %s, errors %s", rate(st.Offered), rate(st.Achieved), ms(st.LatencyMs.P99), fmt.Sprintf("%.2f%%", 100*st.ErrorRate))
		}
		if !c.Held {
			ck.Line += " · not held: " + c.Reason
		}
		for _, s := range c.Services {
			row := verifyRow{Name: s.Name, Replicas: fmt.Sprint(s.Replicas), Predicted: rate(s.PredictedQPS), PredUtil: share(s.PredictedUtil), Ceiling: share(s.Ceiling), Error: s.Error}
			if s.Error == "" {
				row.Measured, row.PerReplica, row.Util = rate(s.MeasuredQPS), rate(s.PerReplica), share(s.Utilization)
				row.Latency, row.Failed = ms(s.LatencyMs), rate(s.FailedQPS)
				row.Over = s.Utilization > s.Ceiling
			}
			ck.Rows = append(ck.Rows, row)
		}
		v.Checks = append(v.Checks, ck)
	}
	return v
}

// simulateView is the autoscaler replayed over a traffic curve: each
// case's verdict per service and a chart of the busiest service.
type simulateView struct {
	About  string
	Cases  []simCase
	Charts []figure
}

type simCase struct {
	Name, About string
	Held        bool
	Lines       []string
}

func buildSimulate(r *autoscale.Result) (*simulateView, error) {
	v := &simulateView{About: fmt.Sprintf("%d s of traffic from %s, peak %s req/s at the entry; new pods ready after %.0f s",
		r.Seconds, r.Start.UTC().Format("2006-01-02 15:04:05 UTC"), rate(r.PeakRPS), r.Startup)}
	// The chart follows the service that fares worst without scaling.
	worst, most := "", -1
	for _, c := range r.Cases {
		sc := simCase{Name: c.Name, About: c.About, Held: c.Held()}
		for _, t := range c.Timelines {
			sc.Lines = append(sc.Lines, t.Verdict(r.Start.Location()))
			if c.Name == "unscaled" && t.OverSeconds > most {
				worst, most = t.Service, t.OverSeconds
			}
		}
		v.Cases = append(v.Cases, sc)
	}
	if worst == "" {
		return v, nil
	}
	colors := map[string]chart.Series{"reactive": {Color: red}, "pre-scaled": {Color: green}, "unscaled": {Color: grey, Dashed: true}}
	c := &chart.Chart{
		Title: "Capacity of the ready replicas against the load: " + worst,
		X:     chart.Axis{Label: "seconds from " + r.Start.UTC().Format("15:04:05")},
		Y:     chart.Axis{Label: "req/s", Zero: true},
	}
	for i, cs := range r.Cases {
		for _, t := range cs.Timelines {
			if t.Service != worst {
				continue
			}
			xs := make([]float64, len(t.Ready))
			caps := make([]float64, len(t.Ready))
			for s := range t.Ready {
				xs[s], caps[s] = float64(s), float64(t.Ready[s])*t.CapacityQPS
			}
			if i == 0 {
				c.Series = append(c.Series, chart.Series{Name: "load", X: xs, Y: t.LoadQPS, Color: blueish})
			}
			st := colors[cs.Name]
			c.Series = append(c.Series, chart.Series{Name: "capacity, " + cs.Name, X: xs, Y: caps, Color: st.Color, Dashed: st.Dashed})
		}
	}
	fig, err := render("simulate", c, "The service's load each second against the capacity of its ready replicas in each case: where the load is above a case's line, that case breaches the SLO.")
	if err != nil {
		return nil, err
	}
	v.Charts = append(v.Charts, fig)
	return v, nil
}

// blueish draws the load.
var blueish = color.RGBA{0x1f, 0x77, 0xb4, 0xff}

// share writes a fraction as a percentage.
func share(v float64) string { return fmt.Sprintf("%.0f%%", 100*v) }

func dashed(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
