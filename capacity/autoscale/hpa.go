// Package autoscale replays an autoscaler over a traffic curve, second by
// second: the Kubernetes HorizontalPodAutoscaler (autoscaling/v2) as its
// documentation specifies it, and KEDA's cron and prometheus triggers on
// top of it. With each service's capacity per replica from a capacity plan
// and the time a new pod takes to become ready, it tells whether the
// replicas that are ready keep up with the load, and when they do not.
//
// The HPA model (https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/):
//
//   - every sync period (15 s by default) the controller reads the metric,
//     here the service's request rate per ready pod averaged over the
//     metric window (a PromQL rate[1m] behind the metrics adapter);
//   - desired = ceil(ready × metric / target), left unchanged while
//     metric/target is within 1 ± tolerance (0.1);
//   - scale-up takes the lowest recommendation of its stabilization window
//     and scale-down the highest of its own (300 s by default);
//   - the change is bounded by the policies over their periods, counted
//     from the replicas at the start of the period, Max or Min selected;
//   - the result is clamped to [min, max].
//
// A replica the controller adds becomes ready Startup later; until then
// it takes no load. KEDA's cron trigger holds desiredReplicas from its
// start to its end: the HPA then takes the larger of the two metrics'
// proposals, as it does for any HPA with several metrics.
package autoscale

import (
	"fmt"
	"math"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
)

// Defaults of the Kubernetes HPA controller and API.
const (
	DefaultSync      = 15 * time.Second // --horizontal-pod-autoscaler-sync-period
	DefaultTolerance = 0.1              // --horizontal-pod-autoscaler-tolerance
	DefaultDownStab  = 300 * time.Second
)

// PolicyType is what a scaling policy limits: a number of pods or a
// percentage of the replicas at the start of its period.
type PolicyType string

// Policy types, as autoscaling/v2 spells them.
const (
	Pods    PolicyType = "Pods"
	Percent PolicyType = "Percent"
)

// Policy bounds the change over Period.
type Policy struct {
	Type   PolicyType
	Value  int
	Period time.Duration
}

// Rules are the behavior of one direction.
type Rules struct {
	Stabilization time.Duration
	// Select picks among the policies: "Max" (the largest change, the
	// default), "Min", or "Disabled" (no change in this direction).
	Select   string
	Policies []Policy
}

// HPA is an autoscaler of one service.
type HPA struct {
	Min, Max  int
	Target    float64 // the per-pod metric target (AverageValue)
	Tolerance float64
	Sync      time.Duration
	Up, Down  Rules
}

// DefaultUp and DefaultDown are the behavior of an HPA that names none.
func DefaultUp() Rules {
	return Rules{Select: "Max", Policies: []Policy{{Percent, 100, 15 * time.Second}, {Pods, 4, 15 * time.Second}}}
}

// DefaultDown is the default scale-down behavior.
func DefaultDown() Rules {
	return Rules{Stabilization: DefaultDownStab, Select: "Max", Policies: []Policy{{Percent, 100, 15 * time.Second}}}
}

// FromManifest reads the autoscaler of an autoscaling/v2 manifest with one
// Pods or External metric of type AverageValue, filling what it leaves out
// with the Kubernetes defaults.
func FromManifest(h *autoscalingv2.HorizontalPodAutoscaler) (HPA, error) {
	a := HPA{Max: int(h.Spec.MaxReplicas), Tolerance: DefaultTolerance, Sync: DefaultSync, Min: 1}
	if h.Spec.MinReplicas != nil {
		a.Min = int(*h.Spec.MinReplicas)
	}
	if len(h.Spec.Metrics) != 1 {
		return a, fmt.Errorf("HPA %s: %d metrics; the simulation models one request-rate metric", h.Name, len(h.Spec.Metrics))
	}
	var target *autoscalingv2.MetricTarget
	switch m := h.Spec.Metrics[0]; {
	case m.Pods != nil:
		target = &m.Pods.Target
	case m.External != nil:
		target = &m.External.Target
	}
	if target == nil || target.AverageValue == nil {
		return a, fmt.Errorf("HPA %s: want a Pods or External metric with an AverageValue target", h.Name)
	}
	a.Target = target.AverageValue.AsApproximateFloat64()
	a.Up, a.Down = DefaultUp(), DefaultDown()
	if b := h.Spec.Behavior; b != nil {
		if b.ScaleUp != nil {
			a.Up = rulesOf(b.ScaleUp, a.Up)
		}
		if b.ScaleDown != nil {
			a.Down = rulesOf(b.ScaleDown, a.Down)
		}
	}
	return a, a.Check()
}

func rulesOf(r *autoscalingv2.HPAScalingRules, def Rules) Rules {
	out := def
	if r.StabilizationWindowSeconds != nil {
		out.Stabilization = time.Duration(*r.StabilizationWindowSeconds) * time.Second
	}
	if r.SelectPolicy != nil {
		out.Select = string(*r.SelectPolicy)
	}
	if len(r.Policies) > 0 {
		out.Policies = nil
		for _, p := range r.Policies {
			out.Policies = append(out.Policies, Policy{PolicyType(p.Type), int(p.Value), time.Duration(p.PeriodSeconds) * time.Second})
		}
	}
	return out
}

// Check reports an autoscaler the simulation cannot run.
func (a HPA) Check() error {
	switch {
	case a.Target <= 0 || math.IsNaN(a.Target) || math.IsInf(a.Target, 0):
		return fmt.Errorf("target %v per pod: want a positive rate", a.Target)
	case a.Min < 1 || a.Max < a.Min:
		return fmt.Errorf("min %d, max %d replicas: want 1 ≤ min ≤ max", a.Min, a.Max)
	case a.Sync < time.Second || a.Sync%time.Second != 0:
		return fmt.Errorf("sync period %v: want whole seconds", a.Sync)
	case a.Tolerance < 0:
		return fmt.Errorf("tolerance %v: want ≥ 0", a.Tolerance)
	}
	for _, r := range []Rules{a.Up, a.Down} {
		for _, p := range r.Policies {
			if p.Value <= 0 || p.Period < time.Second || (p.Type != Pods && p.Type != Percent) {
				return fmt.Errorf("policy %s %d per %v: want Pods or Percent, a positive value and a period of at least 1s", p.Type, p.Value, p.Period)
			}
		}
	}
	return nil
}

// recommendation is one sync's proposal, kept for the stabilization window.
type recommendation struct {
	at       int // second
	replicas int
}

// event is one change of the desired replicas, kept for the policies.
type event struct {
	at    int
	delta int
}

// Controller is one HPA between syncs: what simulate replays and capacity
// watch runs live.
type Controller struct {
	a       HPA
	recs    []recommendation
	events  []event
	desired int
}

// NewController is an HPA whose target currently asks for current
// replicas.
func NewController(a HPA, current int) *Controller {
	return &Controller{a: a, desired: max(current, a.Min)}
}

// Desired is the replicas the controller asks for now.
func (c *Controller) Desired() int { return c.desired }

// Sync runs one reconciliation at second now (seconds from any fixed
// origin): metric is the observed request rate per ready pod, ready the
// pods it was observed over, floor a replica count another trigger asks
// for (KEDA's cron; 0 when none). It returns the new desired replicas and
// the reason.
func (c *Controller) Sync(now int, metric float64, ready, floor int) (int, string) {
	a := c.a
	cur := c.desired
	// The proposal of the metric.
	proposal := cur
	ratio := metric / a.Target
	reason := fmt.Sprintf("%.1f/s per pod against a target of %.1f/s", metric, a.Target)
	if ready > 0 && math.Abs(ratio-1) > a.Tolerance {
		proposal = int(math.Ceil(float64(ready) * ratio))
	}
	if floor > proposal {
		proposal = floor
		reason = fmt.Sprintf("cron trigger holds %d replicas", floor)
	}
	proposal = min(max(proposal, a.Min), a.Max)
	c.recs = append(c.recs, recommendation{now, proposal})

	// Stabilization: scale up to the lowest proposal of the up window,
	// down to the highest of the down window.
	upLimit, downLimit := proposal, proposal
	keep := c.recs[:0]
	longest := max(a.Up.Stabilization, a.Down.Stabilization)
	for _, r := range c.recs {
		age := time.Duration(now-r.at) * time.Second
		if age > longest {
			continue
		}
		keep = append(keep, r)
		if age <= a.Up.Stabilization {
			upLimit = min(upLimit, r.replicas)
		}
		if age <= a.Down.Stabilization {
			downLimit = max(downLimit, r.replicas)
		}
	}
	c.recs = keep
	next := cur
	switch {
	case upLimit > cur:
		next = min(upLimit, c.limit(now, cur, a.Up, true))
		if next < upLimit {
			reason += fmt.Sprintf("; wants %d, the scale-up policy allows %d", upLimit, next)
		}
	case downLimit < cur:
		next = max(downLimit, c.limit(now, cur, a.Down, false))
	}
	next = min(max(next, a.Min), a.Max)
	if next != cur {
		c.events = append(c.events, event{now, next - cur})
		c.desired = next
	}
	return next, reason
}

// limit is the most (up) or the least (down) replicas the policies allow
// now: each policy from the replicas at the start of its period.
func (c *Controller) limit(now, cur int, r Rules, up bool) int {
	if r.Select == "Disabled" {
		return cur
	}
	best := -1
	for _, p := range r.Policies {
		start := cur // the replicas at the start of the period
		for _, e := range c.events {
			if time.Duration(now-e.at)*time.Second < p.Period {
				start -= e.delta
			}
		}
		var lim int
		switch {
		case up && p.Type == Pods:
			lim = start + p.Value
		case up:
			lim = int(math.Ceil(float64(start) * (1 + float64(p.Value)/100)))
		case p.Type == Pods:
			lim = start - p.Value
		default:
			lim = int(float64(start) * (1 - float64(p.Value)/100))
		}
		// Max picks the largest change: the highest limit up, the lowest down.
		pickMax := r.Select != "Min"
		switch {
		case best < 0:
			best = lim
		case up == pickMax:
			best = max(best, lim)
		default:
			best = min(best, lim)
		}
	}
	if best < 0 {
		return cur
	}
	return best
}
