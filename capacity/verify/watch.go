package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/loadcap/loadcap/capacity"
	"github.com/loadcap/loadcap/capacity/autoscale"
)

// LoadSource reads a service's live request rate (requests per second,
// all of them: an autoscaler scales on what arrives).
type LoadSource interface {
	Rate(ctx context.Context, service string) (float64, error)
}

// PromLoad reads the rate from Prometheus: Query with {{service}} replaced
// by the service's name must return one sample (a sum).
type PromLoad struct {
	API   v1.API
	Query string
}

// NewPromLoad is a PromLoad of the server at url.
func NewPromLoad(url, query string) (*PromLoad, error) {
	c, err := api.NewClient(api.Config{Address: url, Client: &http.Client{Timeout: 10 * time.Second}})
	if err != nil {
		return nil, err
	}
	return &PromLoad{API: v1.NewAPI(c), Query: query}, nil
}

// Rate implements LoadSource. An empty answer is an error, not zero: a
// service whose metrics vanished is not idle.
func (p *PromLoad) Rate(ctx context.Context, service string) (float64, error) {
	q := strings.ReplaceAll(p.Query, "{{service}}", service)
	v, _, _, err := p.API.Query(ctx, q, time.Now())
	if err != nil {
		return 0, fmt.Errorf("%s: %w", q, err)
	}
	vec, ok := v.(model.Vector)
	if !ok || len(vec) != 1 {
		n := 0
		if ok {
			n = len(vec)
		}
		return 0, fmt.Errorf("%s: %d series, want one (a sum)", q, n)
	}
	r := float64(vec[0].Value)
	if math.IsNaN(r) || math.IsInf(r, 0) || r < 0 {
		return 0, fmt.Errorf("%s: %v", q, r)
	}
	return r, nil
}

// WatchConfig is a live capacity decision loop over a plan's services.
type WatchConfig struct {
	Plan   *capacity.PlanResult
	Load   LoadSource
	Scaler Scaler
	// DryRun logs the decisions without executing them.
	DryRun bool
	// Sync is the decision period (the HPA's sync period: 15 s).
	Sync time.Duration
	// PrescaleLead raises the plan's replicas this long before its window
	// (KEDA's cron trigger); 0 is capacity.DefaultPrescaleLead, negative
	// none.
	PrescaleLead time.Duration
	// Duration ends the loop after this long; 0 runs until ctx ends.
	Duration time.Duration
	Log      io.Writer
	// Registry, when set, receives the loop's metrics.
	Registry prometheus.Registerer
	Now      func() time.Time
}

// Decision of a live loop, as logged.
type WatchDecision struct {
	At      time.Time `json:"at"`
	Service string    `json:"service"`
	LoadQPS float64   `json:"load_qps"`
	Ready   int       `json:"ready"`
	From    int       `json:"from"`
	To      int       `json:"to"`
	Reason  string    `json:"reason"`
	DryRun  bool      `json:"dry_run,omitempty"`
}

// Watch runs the plan's autoscaler live: every Sync it reads each
// service's load, asks the same controller simulate replays (the plan's
// HPA from the service's current replicas, with the cron pre-scale of the
// plan's window) for the replicas, and scales when they change. It returns
// the decisions when ctx or Duration ends; a service whose load or
// readiness cannot be read is skipped for that sync, and logged.
func Watch(ctx context.Context, cfg WatchConfig) ([]WatchDecision, error) {
	p := cfg.Plan
	if p == nil || len(p.Services) == 0 {
		return nil, errors.New("the plan has no services")
	}
	if cfg.Sync <= 0 {
		cfg.Sync = autoscale.DefaultSync
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	lead := cfg.PrescaleLead
	if lead == 0 {
		lead = capacity.DefaultPrescaleLead
	}
	type svc struct {
		plan *capacity.ServicePlan
		ctrl *autoscale.Controller
	}
	var svcs []svc
	for i := range p.Services {
		sp := &p.Services[i]
		hpa, err := autoscale.FromManifest(capacity.HPA(p, sp))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", sp.Name, err)
		}
		cur := max(sp.Current, 1)
		hpa.Min, hpa.Max, hpa.Sync = cur, max(hpa.Max, cur), cfg.Sync
		svcs = append(svcs, svc{sp, autoscale.NewController(hpa, cur)})
	}
	m := newWatchMetrics(cfg.Registry)
	start := cfg.Now()
	var decisions []WatchDecision
	tick := time.NewTicker(cfg.Sync)
	defer tick.Stop()
	var end <-chan time.Time
	if cfg.Duration > 0 {
		t := time.NewTimer(cfg.Duration)
		defer t.Stop()
		end = t.C
	}
	fmt.Fprintf(cfg.Log, "watch: %d services every %v%s\n", len(svcs), cfg.Sync, map[bool]string{true: " (dry run: decisions are not executed)"}[cfg.DryRun])
	for {
		now := cfg.Now()
		sec := int(now.Sub(start) / time.Second)
		for _, s := range svcs {
			name := s.plan.Name
			load, err := cfg.Load.Rate(ctx, name)
			if err != nil {
				m.errors.WithLabelValues(name).Inc()
				fmt.Fprintf(cfg.Log, "%s %s: no decision: load: %v\n", now.Format("15:04:05"), name, err)
				continue
			}
			ready, err := cfg.Scaler.Ready(ctx, name)
			if err != nil {
				m.errors.WithLabelValues(name).Inc()
				fmt.Fprintf(cfg.Log, "%s %s: no decision: ready replicas: %v\n", now.Format("15:04:05"), name, err)
				continue
			}
			floor := 0
			if w := p.Window; w != nil && lead >= 0 && !now.Before(w.Start.Add(-lead)) && now.Before(w.End) {
				floor = s.plan.Replicas
			}
			from := s.ctrl.Desired()
			to, reason := s.ctrl.Sync(sec, load/float64(max(ready, 1)), ready, floor)
			m.load.WithLabelValues(name).Set(load)
			m.ready.WithLabelValues(name).Set(float64(ready))
			m.desired.WithLabelValues(name).Set(float64(to))
			if to == from {
				continue
			}
			d := WatchDecision{At: now, Service: name, LoadQPS: math.Round(load*10) / 10, Ready: ready, From: from, To: to, Reason: reason, DryRun: cfg.DryRun}
			decisions = append(decisions, d)
			m.decisions.WithLabelValues(name, direction(from, to)).Inc()
			verb := "scale"
			if cfg.DryRun {
				verb = "would scale"
			}
			fmt.Fprintf(cfg.Log, "%s %s: %s %d → %d at %.1f req/s on %d ready: %s\n", now.Format("15:04:05"), name, verb, from, to, load, ready, reason)
			if !cfg.DryRun {
				if err := cfg.Scaler.Scale(ctx, name, to); err != nil {
					m.errors.WithLabelValues(name).Inc()
					fmt.Fprintf(cfg.Log, "%s %s: scale to %d failed: %v\n", now.Format("15:04:05"), name, to, err)
				}
			}
		}
		select {
		case <-ctx.Done():
			return decisions, ctx.Err()
		case <-end:
			return decisions, nil
		case <-tick.C:
		}
	}
}

func direction(from, to int) string {
	if to > from {
		return "up"
	}
	return "down"
}

type watchMetrics struct {
	load, ready, desired *prometheus.GaugeVec
	decisions, errors    *prometheus.CounterVec
}

func newWatchMetrics(reg prometheus.Registerer) *watchMetrics {
	m := &watchMetrics{
		load:      prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "loadcap_watch_load_requests_per_second", Help: "A service's request rate, as the decision loop read it."}, []string{"service"}),
		ready:     prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "loadcap_watch_ready_replicas", Help: "A service's ready replicas, as the scaler reported them."}, []string{"service"}),
		desired:   prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "loadcap_watch_desired_replicas", Help: "The replicas the decision loop asks for."}, []string{"service"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "loadcap_watch_decisions_total", Help: "Scaling decisions, by direction."}, []string{"service", "direction"}),
		errors:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "loadcap_watch_errors_total", Help: "Syncs a service was skipped in: its load or readiness could not be read, or scaling failed."}, []string{"service"}),
	}
	if reg != nil {
		reg.MustRegister(m.load, m.ready, m.desired, m.decisions, m.errors)
	}
	return m
}
