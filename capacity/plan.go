package capacity

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/loadcap/loadcap/scenarios"
)

// PlanSchema names the JSON form of a PlanResult (plan.json).
const PlanSchema = "loadcap.plan/v1"

// SensitivityChanges are the changes of the peak, in percent, that the
// sensitivity table of a plan covers.
var SensitivityChanges = []int{-20, -10, 0, 10, 20, 30, 50}

// PlanResult is a computed capacity plan: replicas per service for the
// peak, how far today's deployment carries, and how the answer moves with
// the peak. Every rate is in requests per second.
type PlanResult struct {
	Schema      string        `json:"schema"`
	Plan        string        `json:"plan"`      // the plan file, as given to Compute
	EntryQPS    float64       `json:"entry_qps"` // the peak at the entry
	Window      *PlanWindow   `json:"window,omitempty"`
	Headroom    float64       `json:"headroom"` // fraction of capacity kept free at the peak
	Redundancy  string        `json:"redundancy"`
	MaxReplicas int           `json:"max_replicas,omitempty"` // the plan's budget; 0 when it has none
	Services    []ServicePlan `json:"services"`
	Totals      PlanTotals    `json:"totals"`
	Bottleneck  Bottleneck    `json:"bottleneck"`
	// FirstToSaturate is the service today's deployment runs out of first
	// as the entry rate grows: the least capacity·current/fanout. It may
	// differ from the bottleneck when a service is over-provisioned.
	FirstToSaturate Saturation       `json:"first_to_saturate"`
	Sensitivity     []SensitivityRow `json:"sensitivity"`
	// Warnings are things a person must decide on, such as a service that
	// needs more replicas than its budget.
	Warnings []string `json:"warnings,omitempty"`
}

// PlanWindow is when the peak happens; Start and End carry the zone's offset.
type PlanWindow struct {
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Timezone string    `json:"timezone"` // IANA name
}

// ServicePlan is the plan of one service.
type ServicePlan struct {
	Name         string  `json:"name"`
	CapacityQPS  float64 `json:"capacity_qps"`            // one replica, within the SLO
	CapacityFile string  `json:"capacity_file,omitempty"` // the find.json it came from
	// CapacityLowerBound: the capacity was never measured at saturation.
	CapacityLowerBound bool    `json:"capacity_lower_bound,omitempty"`
	Fanout             float64 `json:"fanout"`   // requests to it per entry request
	LoadQPS            float64 `json:"load_qps"` // at the peak: entry_qps·fanout
	// SafeQPSPerReplica is what a replica may carry at the peak:
	// capacity·(1−headroom).
	SafeQPSPerReplica float64 `json:"safe_qps_per_replica"`
	Zones             int     `json:"zones"`
	Current           int     `json:"current"`
	// LoadReplicas carries the peak within the headroom, before
	// redundancy: ⌈load/safe⌉.
	LoadReplicas int `json:"load_replicas"`
	Replicas     int `json:"replicas"` // needed: LoadReplicas plus redundancy
	Delta        int `json:"delta"`    // Replicas − Current
	// MaxReplicas caps the autoscalers: the service's or the plan's
	// budget, raised to Replicas when the budget is too small (see
	// OverBudget), or when there is no budget max(2·Replicas, Replicas+4).
	MaxReplicas int  `json:"max_replicas"`
	OverBudget  bool `json:"over_budget,omitempty"`
	// SaturatesAtCurrentQPS and SaturatesAtPlannedQPS are the entry rates
	// at which the service runs at full capacity with its current and its
	// planned replicas: capacity·replicas/fanout.
	SaturatesAtCurrentQPS float64 `json:"saturates_at_current_qps"`
	SaturatesAtPlannedQPS float64 `json:"saturates_at_planned_qps"`
	Metric                string  `json:"metric"`              // the HPA's per-pod QPS metric
	Namespace             string  `json:"namespace,omitempty"` // "" leaves it to kubectl
	Deployment            string  `json:"deployment"`          // the scaled Deployment
}

// PlanTotals sums the replicas of every service.
type PlanTotals struct {
	Current  int `json:"current"`
	Replicas int `json:"replicas"`
	Delta    int `json:"delta"`
}

// Bottleneck is the service with the least capacity per entry request
// (capacity/fanout): the one that costs the most replicas per unit of peak.
type Bottleneck struct {
	Service string `json:"service"`
	// EntryQPSPerReplica is capacity/fanout: entry requests/s one replica
	// of it carries at full capacity.
	EntryQPSPerReplica float64 `json:"entry_qps_per_replica"`
	// SaturatesAtCurrentQPS is the entry rate at which its current
	// replicas run at full capacity.
	SaturatesAtCurrentQPS float64 `json:"saturates_at_current_qps"`
}

// Saturation names a service and the entry rate at which it saturates.
type Saturation struct {
	Service  string  `json:"service"`
	EntryQPS float64 `json:"entry_qps"`
}

// SensitivityRow is the plan for the peak changed by ChangePct percent.
type SensitivityRow struct {
	ChangePct int            `json:"change_pct"`
	EntryQPS  float64        `json:"entry_qps"`
	Replicas  map[string]int `json:"replicas"` // by service name
	Total     int            `json:"total"`
}

// DefaultHPAMetric is the per-pod metric an HPA scales on when a service
// names none: the rate of requests, as a Prometheus adapter commonly serves
// it through the custom metrics API.
const DefaultHPAMetric = "http_requests_per_second"

// planMaxReplicas bounds every replica count: Kubernetes counts replicas in
// int32.
const planMaxReplicas = math.MaxInt32

// Compute plans replicas for every service of p. Per service:
//
//	need      = entry_qps·fanout / (capacity·(1−headroom))
//	none      → ⌈need⌉
//	n+1, n+2  → ⌈need⌉ + 1, + 2
//	zone      → ⌈need·Z/(Z−1)⌉: when one of Z zones is lost, the other
//	            Z−1 zones still hold need replicas
//
// and at least 1. A plan whose numbers overflow a replica count is reported
// as scenarios.Errors at the service.
func Compute(p *scenarios.Plan) (*PlanResult, error) {
	if p == nil || len(p.Services) == 0 {
		return nil, errors.New("capacity plan: the plan has no services")
	}
	if !(p.Peak.EntryQPS > 0) || !(p.Headroom >= 0 && p.Headroom < 1) {
		return nil, fmt.Errorf("capacity plan: entry_qps %v and headroom %v are out of range", p.Peak.EntryQPS, p.Headroom)
	}
	r := &PlanResult{
		Schema:      PlanSchema,
		Plan:        p.Path,
		EntryQPS:    p.Peak.EntryQPS,
		Headroom:    p.Headroom,
		Redundancy:  string(p.Redundancy),
		MaxReplicas: p.MaxReplicas,
	}
	if w := p.Peak.Window; w != nil {
		r.Window = &PlanWindow{Start: w.Start, End: w.End, Timezone: w.Timezone}
	}
	var errs scenarios.Errors
	for i := range p.Services {
		s := &p.Services[i]
		sp, err := planService(p, s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r.Services = append(r.Services, sp)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	for _, change := range SensitivityChanges {
		entry := p.Peak.EntryQPS * float64(100+change) / 100
		row := SensitivityRow{ChangePct: change, EntryQPS: planRound(entry), Replicas: map[string]int{}}
		for i := range p.Services {
			s := &p.Services[i]
			_, n, ok := planReplicaCount(entry, s, p.Headroom, p.Redundancy)
			if !ok {
				errs = append(errs, planOverflow(p, s, fmt.Sprintf("at the peak %+d%%", change)))
				continue
			}
			row.Replicas[s.Name] = n
			row.Total += n
		}
		r.Sensitivity = append(r.Sensitivity, row)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	best, bestMeasured := math.Inf(1), false
	for i := range r.Services {
		s := &r.Services[i]
		r.Totals.Current += s.Current
		r.Totals.Replicas += s.Replicas
		if s.OverBudget {
			r.Warnings = append(r.Warnings, fmt.Sprintf(
				"%s needs %d replicas at the peak, more than its budget of %d: the autoscalers get maxReplicas %d; raise the budget or the capacity per replica",
				s.Name, s.Replicas, planBudget(p, &p.Services[i]), s.MaxReplicas))
		}
		// The bottleneck: the least capacity per entry request, among the
		// measured capacities when there are any (a lower bound is not one).
		perReplica := s.CapacityQPS / s.Fanout
		measured := !p.Services[i].LowerBound
		if (measured && !bestMeasured) || (measured == bestMeasured && perReplica < best) {
			best, bestMeasured = perReplica, measured
			r.Bottleneck = Bottleneck{Service: s.Name, EntryQPSPerReplica: planRound(perReplica), SaturatesAtCurrentQPS: s.SaturatesAtCurrentQPS}
		}
		if i == 0 || s.SaturatesAtCurrentQPS < r.FirstToSaturate.EntryQPS {
			r.FirstToSaturate = Saturation{Service: s.Name, EntryQPS: s.SaturatesAtCurrentQPS}
		}
	}
	r.Totals.Delta = r.Totals.Replicas - r.Totals.Current
	return r, nil
}

func planService(p *scenarios.Plan, s *scenarios.PlanService) (ServicePlan, *scenarios.Error) {
	if !(s.CapacityQPS > 0) || !(s.Fanout > 0) || s.Current < 0 || s.Zones < 1 ||
		(p.Redundancy == scenarios.RedundancyZone && s.Zones < 2) {
		return ServicePlan{}, &scenarios.Error{File: p.Path, Pos: s.Pos, Path: "services." + s.Name,
			Msg: fmt.Sprintf("capacity %v, fanout %v, current %d and zones %d are out of range", s.CapacityQPS, s.Fanout, s.Current, s.Zones)}
	}
	load, n, ok := planReplicaCount(p.Peak.EntryQPS, s, p.Headroom, p.Redundancy)
	if !ok {
		return ServicePlan{}, planOverflow(p, s, "at the peak")
	}
	sp := ServicePlan{
		Name:                  s.Name,
		CapacityQPS:           s.CapacityQPS,
		CapacityFile:          s.CapacityFile,
		CapacityLowerBound:    s.LowerBound,
		Fanout:                s.Fanout,
		LoadQPS:               planRound(p.Peak.EntryQPS * s.Fanout),
		SafeQPSPerReplica:     planRound(s.CapacityQPS * (1 - p.Headroom)),
		Zones:                 s.Zones,
		Current:               s.Current,
		LoadReplicas:          load,
		Replicas:              n,
		Delta:                 n - s.Current,
		SaturatesAtCurrentQPS: planRound(s.CapacityQPS * float64(s.Current) / s.Fanout),
		SaturatesAtPlannedQPS: planRound(s.CapacityQPS * float64(n) / s.Fanout),
		Metric:                s.Metric,
		Namespace:             s.Namespace,
		Deployment:            s.Deployment,
	}
	for _, v := range []float64{sp.LoadQPS, sp.SafeQPSPerReplica, sp.SaturatesAtCurrentQPS, sp.SaturatesAtPlannedQPS, s.CapacityQPS / s.Fanout} {
		if math.IsInf(v, 0) || math.IsNaN(v) {
			return ServicePlan{}, &scenarios.Error{File: p.Path, Pos: s.Pos, Path: "services." + s.Name,
				Msg: "capacity, fanout and replicas multiply beyond any rate: check them"}
		}
	}
	if sp.Metric == "" {
		sp.Metric = DefaultHPAMetric
	}
	if sp.Deployment == "" {
		sp.Deployment = s.Name
	}
	if budget := planBudget(p, s); budget > 0 {
		sp.MaxReplicas = budget
		if budget < n {
			// An HPA with maxReplicas below minReplicas is rejected by
			// the API server; the plan's number wins, and a warning says so.
			sp.MaxReplicas, sp.OverBudget = n, true
		}
	} else {
		// No budget: room for twice the plan (a forecast that is off by
		// 2×, beyond the +50% the sensitivity table shows), and at least
		// 4 more for small services, where doubling adds little.
		sp.MaxReplicas = min(max(2*n, n+4), planMaxReplicas)
	}
	return sp, nil
}

// planBudget is the cap of a service's autoscaler from the plan: its own
// max_replicas, else the plan's; 0 when neither is set.
func planBudget(p *scenarios.Plan, s *scenarios.PlanService) int {
	if s.MaxReplicas > 0 {
		return s.MaxReplicas
	}
	return p.MaxReplicas
}

func planOverflow(p *scenarios.Plan, s *scenarios.PlanService, when string) *scenarios.Error {
	return &scenarios.Error{File: p.Path, Pos: s.Pos, Path: "services." + s.Name,
		Msg: fmt.Sprintf("needs more than %d replicas %s: check peak.entry_qps, fanout and capacity", planMaxReplicas, when)}
}

// planReplicaCount returns the replicas that carry entryQPS within the
// headroom (load) and with redundancy (total); ok is false when they do not
// fit a replica count.
func planReplicaCount(entryQPS float64, s *scenarios.PlanService, headroom float64, red scenarios.Redundancy) (load, total int, ok bool) {
	need := entryQPS * s.Fanout / (s.CapacityQPS * (1 - headroom))
	l, ok := planCeil(need)
	if !ok {
		return 0, 0, false
	}
	t := l
	switch red {
	case scenarios.RedundancyN1:
		t = l + 1
	case scenarios.RedundancyN2:
		t = l + 2
	case scenarios.RedundancyZone:
		z := float64(s.Zones)
		// Multiplied before rounding: ⌈need·Z/(Z−1)⌉, not ⌈need⌉·Z/(Z−1),
		// which would round twice.
		if t, ok = planCeil(need * z / (z - 1)); !ok {
			return 0, 0, false
		}
	}
	if t > planMaxReplicas {
		return 0, 0, false
	}
	return l, t, true
}

// planCeil is ⌈x⌉, at least 1, forgiving the floating-point error of a
// division that should have been exact (7.000000000000001 is 7).
func planCeil(x float64) (int, bool) {
	if math.IsNaN(x) || x > planMaxReplicas {
		return 0, false
	}
	if r := math.Round(x); math.Abs(x-r) <= 1e-9*math.Max(1, r) {
		x = r
	}
	return max(int(math.Ceil(x)), 1), true
}

// planRound drops the floating-point noise of derived rates (1750.0000000002)
// so that JSON and tables show the number a person computes.
func planRound(v float64) float64 {
	if math.Abs(v) >= 1e12 {
		return v
	}
	return math.Round(v*1e6) / 1e6
}

// WriteJSON writes r as indented JSON (plan.json).
func (r *PlanResult) WriteJSON(w io.Writer) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode plan: %w", err)
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

// WriteTable writes r as plain aligned text for a terminal: the plan per
// service, the bottleneck, warnings and the sensitivity table.
func (r *PlanResult) WriteTable(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Capacity plan %s\n", filepath.Base(r.Plan))
	fmt.Fprintf(&b, "  peak:        %s req/s at the entry\n", planNum(r.EntryQPS))
	if r.Window != nil {
		fmt.Fprintf(&b, "  window:      %s – %s %s\n",
			r.Window.Start.Format("2006-01-02 15:04"), r.Window.End.Format("2006-01-02 15:04"), r.Window.Timezone)
	}
	fmt.Fprintf(&b, "  headroom:    %s%% (a replica carries at most %s%% of its capacity at the peak)\n",
		planNum(r.Headroom*100), planNum((1-r.Headroom)*100))
	fmt.Fprintf(&b, "  redundancy:  %s\n\n", planRedundancyText(r.Redundancy))

	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tCAPACITY\tFANOUT\tLOAD AT PEAK\tCURRENT\tNEEDED\tDELTA\tSATURATES AT (ENTRY REQ/S)")
	for _, s := range r.Services {
		over := ""
		if s.OverBudget {
			over = " (over budget)"
		}
		atLeast := ""
		if s.CapacityLowerBound {
			atLeast = "≥"
		}
		fmt.Fprintf(tw, "%s\t%s%s/s\t%s\t%s/s\t%d\t%d%s\t%+d\t%s now, %s planned\n",
			s.Name, atLeast, planNum(s.CapacityQPS), planNum(s.Fanout), planNum(s.LoadQPS), s.Current, s.Replicas, over, s.Delta,
			planNum(s.SaturatesAtCurrentQPS), planNum(s.SaturatesAtPlannedQPS))
	}
	fmt.Fprintf(tw, "TOTAL\t\t\t\t%d\t%d\t%+d\n", r.Totals.Current, r.Totals.Replicas, r.Totals.Delta)
	if err := tw.Flush(); err != nil {
		return err
	}

	bn := r.Bottleneck
	fmt.Fprintf(&b, "\nBottleneck: %s, %s entry req/s per replica (least capacity per entry request); at its current replicas it saturates at %s entry req/s (%s%% of the peak).\n",
		bn.Service, planNum(bn.EntryQPSPerReplica), planNum(bn.SaturatesAtCurrentQPS), planNum(100*bn.SaturatesAtCurrentQPS/r.EntryQPS))
	if f := r.FirstToSaturate; f.Service != bn.Service {
		fmt.Fprintf(&b, "Saturates first as deployed today: %s, at %s entry req/s (%s%% of the peak).\n",
			f.Service, planNum(f.EntryQPS), planNum(100*f.EntryQPS/r.EntryQPS))
	}
	for _, wmsg := range r.Warnings {
		fmt.Fprintf(&b, "Warning: %s.\n", wmsg)
	}

	fmt.Fprintf(&b, "\nSensitivity: replicas needed if the peak differs from %s req/s\n", planNum(r.EntryQPS))
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "PEAK\t")
	for _, row := range r.Sensitivity {
		fmt.Fprintf(tw, "%+d%%\t", row.ChangePct)
	}
	fmt.Fprint(tw, "\nentry req/s\t")
	for _, row := range r.Sensitivity {
		fmt.Fprintf(tw, "%s\t", planNum(row.EntryQPS))
	}
	fmt.Fprintln(tw)
	for _, s := range r.Services {
		fmt.Fprintf(tw, "%s\t", s.Name)
		for _, row := range r.Sensitivity {
			fmt.Fprintf(tw, "%d\t", row.Replicas[s.Name])
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprint(tw, "TOTAL\t")
	for _, row := range r.Sensitivity {
		fmt.Fprintf(tw, "%d\t", row.Total)
	}
	fmt.Fprintln(tw)
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func planRedundancyText(r string) string {
	switch scenarios.Redundancy(r) {
	case scenarios.RedundancyN1:
		return "n+1 (one replica more than the peak needs)"
	case scenarios.RedundancyN2:
		return "n+2 (two replicas more than the peak needs)"
	case scenarios.RedundancyZone:
		return "zone (the peak survives the loss of one zone)"
	case scenarios.RedundancyNone:
		return "none"
	}
	return r
}

// planNum formats a rate or factor for people: at most one decimal, none
// when the number is whole.
func planNum(v float64) string {
	return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64)
}
