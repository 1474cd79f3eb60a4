package autoscale

import (
	"fmt"
	"math"
	"time"
)

// Cron is a KEDA cron trigger: Desired replicas from Start to End.
type Cron struct {
	Start, End time.Time
	Desired    int
}

// Service is one service under an autoscaler.
type Service struct {
	Name string
	// CapacityQPS is what one ready replica serves within the SLO.
	CapacityQPS float64
	// Fanout is the service's requests per entry request.
	Fanout float64
	// Current is the replicas running (and ready) when the simulation starts.
	Current int
	HPA     HPA
	Cron    *Cron // nil: no pre-scale
	// Startup is how long a new replica takes to become ready.
	Startup time.Duration
	// MetricWindow is the span the per-pod rate is averaged over (a PromQL
	// rate[1m]: 60 s); 0 reads the last second alone.
	MetricWindow time.Duration
	// MetricDelay is the age of the newest second the metric holds when the
	// autoscaler reads it: Prometheus's scrape interval (plus an adapter's
	// own lag). 0 reads up to the second of the sync itself.
	MetricDelay time.Duration
}

// Traffic is the entry rate per second from Start.
type Traffic struct {
	Start time.Time
	RPS   []float64
}

// Decision is a change of the desired replicas.
type Decision struct {
	At     time.Time `json:"at"`
	From   int       `json:"from"`
	To     int       `json:"to"`
	Reason string    `json:"reason"`
}

// Timeline is one service's simulation: per second from Start, the load,
// the desired and the ready replicas, and the utilization of the ready
// ones (demand ÷ their capacity, above 1 when requests wait; -1 when none
// is ready).
type Timeline struct {
	Service     string     `json:"service"`
	CapacityQPS float64    `json:"capacity_qps_per_replica"`
	Start       time.Time  `json:"start"`
	LoadQPS     []float64  `json:"load_qps"`
	Desired     []int      `json:"desired"`
	Ready       []int      `json:"ready"`
	Utilization []float64  `json:"utilization"`
	Decisions   []Decision `json:"decisions"`
	// OverSeconds counts the seconds in which the demand (the load and
	// what waits from before) exceeded the ready replicas' capacity: a
	// predicted SLO breach.
	OverSeconds int `json:"over_seconds"`
	// FirstOver and LongestOver locate the breaches (zero when none).
	FirstOver       time.Time `json:"first_over,omitzero"`
	LongestOverFrom time.Time `json:"longest_over_from,omitzero"`
	LongestOver     int       `json:"longest_over_s"`
	PeakReplicas    int       `json:"peak_replicas"`
	ReadyAtPeak     time.Time `json:"ready_at_peak,omitzero"` // when the last replica of the peak became ready
}

// Held reports whether the ready replicas carried the load every second.
func (t *Timeline) Held() bool { return t.OverSeconds == 0 }

// Check reports a service the simulation cannot run.
func (s *Service) Check() error {
	switch {
	case !(s.CapacityQPS > 0) || math.IsInf(s.CapacityQPS, 0):
		return fmt.Errorf("%s: capacity %v per replica: want a positive rate", s.Name, s.CapacityQPS)
	case !(s.Fanout > 0) || math.IsInf(s.Fanout, 0):
		return fmt.Errorf("%s: fan-out %v: want a positive number", s.Name, s.Fanout)
	case s.Current < 0:
		return fmt.Errorf("%s: %d current replicas", s.Name, s.Current)
	case s.Startup < 0 || s.MetricWindow < 0 || s.MetricDelay < 0:
		return fmt.Errorf("%s: negative start-up, metric window or metric delay", s.Name)
	}
	if err := s.HPA.Check(); err != nil {
		return fmt.Errorf("%s: %w", s.Name, err)
	}
	return nil
}

// maxBacklogSeconds bounds the simulated queue: demand waiting longer
// than this many seconds of load is taken as timed out.
const maxBacklogSeconds = 30

// Run replays the service's autoscaler over the traffic, one step a
// second: the load is the entry rate times the fan-out; the ready replicas
// answer up to their capacity, and what they cannot waits (a breach of
// the SLO) until there is room; every sync period the HPA reads the
// answers per ready pod averaged over the metric window and sets the
// desired replicas; a replica added at t is ready at t + Startup, one
// taken away stops at once.
func Run(s Service, tr Traffic) (*Timeline, error) {
	if err := s.Check(); err != nil {
		return nil, err
	}
	if len(tr.RPS) == 0 {
		return nil, fmt.Errorf("%s: no traffic to simulate", s.Name)
	}
	start := max(s.Current, s.HPA.Min)
	c := &Controller{a: s.HPA, desired: start}
	n := len(tr.RPS)
	tl := &Timeline{Service: s.Name, CapacityQPS: s.CapacityQPS, Start: tr.Start, Decisions: []Decision{},
		LoadQPS: make([]float64, 0, n), Desired: make([]int, 0, n), Ready: make([]int, 0, n), Utilization: make([]float64, 0, n)}
	// pending[i] is the second replica i of the desired set becomes ready;
	// the first `ready` entries are running.
	readyAt := make([]int, start) // all running at second 0
	for i := range readyAt {
		readyAt[i] = math.MinInt32
	}
	startup := int(s.Startup / time.Second)
	syncEvery := int(s.HPA.Sync / time.Second)
	window := max(int(s.MetricWindow/time.Second), 1)
	delay := int(s.MetricDelay / time.Second)
	// served is what the ready replicas answered each second: the metric
	// counts answers, so a saturated service reports its capacity, not
	// its demand. backlog is the demand they could not answer yet: it
	// waits (its latency breaks the SLO) and is served first once there
	// is room, up to maxBacklogSeconds of load, beyond which callers time
	// out.
	served := make([]float64, 0, n)
	var backlog float64
	var run, runFrom int
	for sec, rps := range tr.RPS {
		now := tr.Start.Add(time.Duration(sec) * time.Second)
		load := rps * s.Fanout
		ready := 0
		for _, at := range readyAt {
			if at <= sec {
				ready++
			}
		}
		capQPS := float64(ready) * s.CapacityQPS
		demand := load + backlog
		answered := min(demand, capQPS)
		over := demand > capQPS
		backlog = min(demand-answered, maxBacklogSeconds*load)
		served = append(served, answered)
		if sec%syncEvery == 0 {
			// The per-pod metric: the service's answers over the window
			// (sum(rate(..._total[1m]))) that ends delay seconds ago, over
			// the pods that report it now.
			metric := 0.0
			if hi := sec - delay; hi >= 0 {
				lo, sum := max(0, hi-window+1), 0.0
				for _, a := range served[lo : hi+1] {
					sum += a
				}
				metric = sum / float64(hi-lo+1) / float64(max(ready, 1))
			}
			floor := 0
			if cr := s.Cron; cr != nil && !now.Before(cr.Start) && now.Before(cr.End) {
				floor = cr.Desired
			}
			before := c.desired
			next, reason := c.Sync(sec, metric, ready, floor)
			if next != before {
				tl.Decisions = append(tl.Decisions, Decision{At: now, From: before, To: next, Reason: reason})
				if next > before {
					for i := before; i < next; i++ {
						readyAt = append(readyAt, sec+startup)
					}
				} else {
					// The newest replicas go first: the ones not ready yet.
					readyAt = readyAt[:next]
				}
			}
		}
		util := math.Inf(1)
		if capQPS > 0 {
			util = demand / capQPS
		}
		tl.LoadQPS = append(tl.LoadQPS, round2(load))
		tl.Desired = append(tl.Desired, c.desired)
		tl.Ready = append(tl.Ready, ready)
		tl.Utilization = append(tl.Utilization, round3(util))
		if over {
			tl.OverSeconds++
			if tl.FirstOver.IsZero() {
				tl.FirstOver = now
			}
			if run == 0 {
				runFrom = sec
			}
			run++
			if run > tl.LongestOver {
				tl.LongestOver, tl.LongestOverFrom = run, tr.Start.Add(time.Duration(runFrom)*time.Second)
			}
		} else {
			run = 0
		}
		if c.desired > tl.PeakReplicas {
			tl.PeakReplicas, tl.ReadyAtPeak = c.desired, time.Time{}
		}
		if ready >= tl.PeakReplicas && tl.ReadyAtPeak.IsZero() && ready > start {
			tl.ReadyAtPeak = now
		}
	}
	return tl, nil
}

func round2(v float64) float64 {
	if math.IsInf(v, 0) {
		return v
	}
	return math.Round(v*100) / 100
}

func round3(v float64) float64 {
	if math.IsInf(v, 0) {
		return -1 // JSON has no infinity: no ready replica at all
	}
	return math.Round(v*1000) / 1000
}

// Verdict is one line a planner reads, e.g. "product: over capacity for
// 95 s from 20:00:05 (longest 80 s); peak 12 replicas" or "product: held;
// peak 12 replicas, ready at 19:51:30".
func (t *Timeline) Verdict(loc *time.Location) string {
	clock := func(ts time.Time) string { return ts.In(loc).Format("15:04:05") }
	if t.Held() {
		v := fmt.Sprintf("%s: held; peak %s", t.Service, replicas(t.PeakReplicas))
		if !t.ReadyAtPeak.IsZero() {
			v += ", all ready at " + clock(t.ReadyAtPeak)
		}
		return v
	}
	v := fmt.Sprintf("%s: over capacity for %d s from %s", t.Service, t.OverSeconds, clock(t.FirstOver))
	if t.LongestOver != t.OverSeconds {
		v += fmt.Sprintf(" (longest %d s from %s)", t.LongestOver, clock(t.LongestOverFrom))
	}
	return v + "; peak " + replicas(t.PeakReplicas)
}

func replicas(n int) string {
	if n == 1 {
		return "1 replica"
	}
	return fmt.Sprintf("%d replicas", n)
}
