package autoscale

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/loadcap/loadcap/capacity"
)

// Options of a simulation of a plan.
type Options struct {
	Startup      time.Duration // a new pod's time to ready; default 30 s
	MetricWindow time.Duration // the rate window behind the per-pod metric; default 60 s
	MetricDelay  time.Duration // the age of the metric's newest second when read (a scrape interval); default 0
	Sync         time.Duration // the HPA's sync period; default 15 s
	// PrescaleLead is how long before the plan's window the cron trigger
	// raises the replicas; 0 means capacity.DefaultPrescaleLead.
	PrescaleLead time.Duration
}

func (o Options) withDefaults() Options {
	if o.Startup == 0 {
		o.Startup = 30 * time.Second
	}
	if o.MetricWindow == 0 {
		o.MetricWindow = 60 * time.Second
	}
	if o.Sync == 0 {
		o.Sync = DefaultSync
	}
	if o.PrescaleLead == 0 {
		o.PrescaleLead = capacity.DefaultPrescaleLead
	}
	return o
}

// Case is one way to run the sale: its name and each service's timeline.
type Case struct {
	Name      string      `json:"name"`
	About     string      `json:"about"`
	Timelines []*Timeline `json:"services"`
}

// Held reports whether every service held in this case.
func (c *Case) Held() bool {
	for _, t := range c.Timelines {
		if !t.Held() {
			return false
		}
	}
	return true
}

// Result is a plan simulated over a traffic curve.
type Result struct {
	Schema  string    `json:"schema"`
	Plan    string    `json:"plan"`
	Start   time.Time `json:"start"`
	Seconds int       `json:"seconds"`
	PeakRPS float64   `json:"peak_entry_rps"`
	Startup float64   `json:"pod_startup_s"`
	Cases   []*Case   `json:"cases"`
}

// SimulatePlan runs the plan's services over the traffic in up to three
// cases: "reactive", the plan's HPA (target, behavior, max) reacting from
// the current replicas, as it runs on an ordinary day; "pre-scaled", the
// same with KEDA's cron trigger holding the plan's replicas from
// PrescaleLead before the plan's window to its end (only when the plan has
// a window); and "unscaled", the current replicas throughout.
func SimulatePlan(plan *capacity.PlanResult, tr Traffic, o Options) (*Result, error) {
	o = o.withDefaults()
	if w := plan.Window; w != nil {
		// The cron trigger must fire inside the simulation: before the
		// curve the load is taken as none (the current replicas carry
		// it without scaling), from a minute before the trigger.
		from := w.Start.Add(-o.PrescaleLead - time.Minute)
		if lead := int(tr.Start.Sub(from) / time.Second); lead > 0 && lead+len(tr.RPS) <= MaxTrafficSeconds {
			tr = Traffic{Start: from, RPS: append(make([]float64, lead), tr.RPS...)}
		}
	}
	res := &Result{Schema: "loadcap.simulate/v1", Plan: plan.Plan, Start: tr.Start, Seconds: len(tr.RPS), Startup: o.Startup.Seconds()}
	for _, v := range tr.RPS {
		res.PeakRPS = math.Max(res.PeakRPS, v)
	}
	type variant struct {
		name, about string
		adjust      func(*Service, *capacity.ServicePlan)
	}
	variants := []variant{
		{"reactive", "the plan's HPA, reacting from the current replicas", func(*Service, *capacity.ServicePlan) {}},
	}
	if w := plan.Window; w != nil {
		start := w.Start.Add(-o.PrescaleLead)
		variants = append(variants, variant{"pre-scaled",
			fmt.Sprintf("the same with KEDA's cron trigger holding the plan's replicas from %s", start.In(zone(w)).Format("2006-01-02 15:04")),
			func(s *Service, sp *capacity.ServicePlan) {
				s.Cron = &Cron{Start: start, End: w.End, Desired: sp.Replicas}
			}})
	}
	variants = append(variants, variant{"unscaled", "the current replicas throughout", func(s *Service, sp *capacity.ServicePlan) {
		s.HPA.Min, s.HPA.Max = s.Current, s.Current
	}})
	for _, v := range variants {
		c := &Case{Name: v.name, About: v.about}
		for i := range plan.Services {
			sp := &plan.Services[i]
			hpa, err := FromManifest(capacity.HPA(plan, sp))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", sp.Name, err)
			}
			hpa.Sync = o.Sync
			cur := max(sp.Current, 1)
			hpa.Min = cur // the manifest's minimum is the sale's: here the HPA reacts
			hpa.Max = max(hpa.Max, cur)
			s := Service{Name: sp.Name, CapacityQPS: sp.CapacityQPS, Fanout: sp.Fanout, Current: cur, HPA: hpa,
				Startup: o.Startup, MetricWindow: o.MetricWindow, MetricDelay: o.MetricDelay}
			v.adjust(&s, sp)
			tl, err := Run(s, tr)
			if err != nil {
				return nil, err
			}
			c.Timelines = append(c.Timelines, tl)
		}
		res.Cases = append(res.Cases, c)
	}
	return res, nil
}

func zone(w *capacity.PlanWindow) *time.Location {
	if loc, err := time.LoadLocation(w.Timezone); err == nil {
		return loc
	}
	return time.UTC
}

// WriteText prints each case's verdict per service.
func (r *Result) WriteText(w io.Writer, loc *time.Location) error {
	var b strings.Builder
	end := r.Start.Add(time.Duration(r.Seconds) * time.Second)
	fmt.Fprintf(&b, "traffic %s – %s (%d s), peak %.0f req/s at the entry; new pods ready after %.0f s\n",
		r.Start.In(loc).Format("2006-01-02 15:04:05"), end.In(loc).Format("15:04:05"), r.Seconds, r.PeakRPS, r.Startup)
	for _, c := range r.Cases {
		verdict := "held"
		if !c.Held() {
			verdict = "NOT HELD"
		}
		fmt.Fprintf(&b, "\n%s (%s): %s\n", c.Name, c.About, verdict)
		for _, t := range c.Timelines {
			fmt.Fprintf(&b, "  %s\n", t.Verdict(loc))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
