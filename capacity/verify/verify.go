package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/loadcap/loadcap/capacity"
)

// Schema names verify's JSON output.
const Schema = "loadcap.verify/v1"

// Config is one verification of a plan.
type Config struct {
	Plan *capacity.PlanResult
	// Load drives the entry: its Base (a scenario's request mix) or
	// RunStep, its SLO, its warm-up and window, and Metrics, one source
	// per plan service, named as the plan names them.
	Load   capacity.FindConfig
	Scaler Scaler
	// Margin is the extra load of the second check, as a fraction of the
	// peak (0.1: 110%); 0 skips it.
	Margin float64
	// Redundancy runs the third check: the peak with one replica of each
	// service (that has more than one) taken away.
	Redundancy   bool
	ReadyTimeout time.Duration // default 2 min
	Progress     io.Writer
	// Drive, when set, generates each check's load instead of Load: a
	// drill's stage, for instance. It returns the check's step with the
	// services' figures.
	Drive func(ctx context.Context, check string, entryQPS float64) (*capacity.Step, error)
	// AsIs checks the system as it stands: nothing is scaled, each
	// service's prediction and per-replica figures use the replicas the
	// scaler reports ready, and the redundancy check (which scales) is
	// skipped. With a cron pre-scale this tells whether the replicas it
	// left hold the peak; before it, whether the unscaled system would.
	AsIs bool
}

// ServiceCheck is one service in one check: the plan's prediction beside
// the measurement.
type ServiceCheck struct {
	Name     string `json:"name"`
	Replicas int    `json:"replicas"`
	// PredictedQPS is the entry rate times the plan's fan-out, and
	// PredictedUtil what that is of the replicas' capacity; MeasuredQPS the
	// service's goodput from its own metrics.
	PredictedQPS  float64 `json:"predicted_qps"`
	PredictedUtil float64 `json:"predicted_utilization"`
	MeasuredQPS   float64 `json:"measured_qps"`
	PerReplica    float64 `json:"measured_qps_per_replica"`
	// Utilization is the busy share of its ready workers when it exports
	// them, else the measured load per replica over the plan's capacity
	// per replica. Ceiling is 1 − headroom: what the plan allowed.
	Utilization float64 `json:"utilization"`
	UtilFrom    string  `json:"utilization_from"` // "busy time" or "plan capacity"
	Ceiling     float64 `json:"ceiling"`
	LatencyMs   float64 `json:"mean_latency_ms"`
	FailedQPS   float64 `json:"failed_qps"`
	Error       string  `json:"error,omitempty"` // its metrics could not be read
}

// Check is one load the plan must hold.
type Check struct {
	Name     string          `json:"name"` // peak, peak+10%, redundancy
	About    string          `json:"about"`
	EntryQPS float64         `json:"entry_qps"`
	Step     *capacity.Step  `json:"step"`
	Services []*ServiceCheck `json:"services"`
	Held     bool            `json:"held"`
	Reason   string          `json:"reason,omitempty"`
	// Busiest is the service with the highest utilization.
	Busiest string `json:"busiest"`
}

// Result is a verification.
type Result struct {
	Schema string   `json:"schema"`
	Plan   string   `json:"plan"`
	SLO    string   `json:"slo"`
	Checks []*Check `json:"checks"`
	// PredictedBottleneck is the plan's bottleneck; MeasuredBottleneck the
	// busiest service at the highest load checked.
	PredictedBottleneck string `json:"predicted_bottleneck"`
	MeasuredBottleneck  string `json:"measured_bottleneck"`
	Held                bool   `json:"held"`
	// AsIs: the checks ran on the replicas running, nothing scaled.
	AsIs bool `json:"as_is,omitempty"`
}

// Run verifies the plan: every service scaled to the plan's replicas and
// ready, the peak driven and measured, then the margin above it, then the
// peak with one replica fewer of each service. A check holds when its
// step meets the SLO (latency, errors, achieved rate, nothing dropped) and
// no service runs past its capacity. The services are left at the plan's
// replicas (Config.AsIs: where they were).
func Run(ctx context.Context, cfg Config) (*Result, error) {
	p := cfg.Plan
	if p == nil || len(p.Services) == 0 || p.EntryQPS <= 0 {
		return nil, errors.New("the plan has no services or no peak")
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 2 * time.Minute
	}
	res := &Result{Schema: Schema, Plan: p.Plan, SLO: cfg.Load.SLO.Text, Held: true, AsIs: cfg.AsIs}
	want := map[string]int{}
	top := -1.0
	for _, s := range p.Services {
		want[s.Name] = s.Replicas
		if cfg.AsIs {
			n, err := cfg.Scaler.Ready(ctx, s.Name)
			if err != nil {
				return nil, fmt.Errorf("%s: ready replicas: %w", s.Name, err)
			}
			want[s.Name] = n
		}
		// On the planned replicas the first to saturate is the one the
		// plan runs closest to its capacity.
		if u := predictedUtil(p.EntryQPS, &s, want[s.Name]); u > top {
			top, res.PredictedBottleneck = u, s.Name
		}
	}
	type check struct {
		name, about string
		entry       float64
		replicas    map[string]int
	}
	on := "the planned replicas"
	if cfg.AsIs {
		on = "the replicas running now"
	}
	checks := []check{{"peak", "the planned peak on " + on, p.EntryQPS, want}}
	if cfg.Margin > 0 {
		checks = append(checks, check{fmt.Sprintf("peak+%.0f%%", 100*cfg.Margin),
			fmt.Sprintf("%.0f%% above the peak on %s", 100*cfg.Margin, on), p.EntryQPS * (1 + cfg.Margin), want})
	}
	if cfg.Redundancy && !cfg.AsIs {
		fewer := map[string]int{}
		var taken []string
		for name, n := range want {
			fewer[name] = n
			if n > 1 {
				fewer[name] = n - 1
				taken = append(taken, name)
			}
		}
		if len(taken) > 0 {
			checks = append(checks, check{"redundancy", "the peak with one replica of each service taken away", p.EntryQPS, fewer})
		}
	}
	var err error
	for _, c := range checks {
		if !cfg.AsIs {
			if err := scaleTo(ctx, cfg, c.replicas); err != nil {
				return res, err
			}
		}
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "%s: %.1f req/s at the entry\n", c.name, c.entry)
		}
		var st *capacity.Step
		if cfg.Drive != nil {
			st, err = cfg.Drive(ctx, c.name, c.entry)
		} else {
			st, err = capacity.Probe(ctx, cfg.Load, c.name, c.entry)
		}
		if err != nil {
			return res, fmt.Errorf("%s: %w", c.name, err)
		}
		ck := Judge(p, c.name, c.about, c.entry, st, c.replicas)
		res.Checks = append(res.Checks, ck)
		if !ck.Held {
			res.Held = false
		}
		if cfg.Progress != nil {
			v := "held"
			if !ck.Held {
				v = "NOT HELD: " + ck.Reason
			}
			fmt.Fprintf(cfg.Progress, "%s: %s\n", c.name, v)
		}
	}
	if len(checks) > 1 && !cfg.AsIs {
		// Leave the system as planned.
		if err := scaleTo(ctx, cfg, want); err != nil {
			return res, err
		}
	}
	// The bottleneck shows at the highest load on the planned replicas.
	for _, ck := range res.Checks {
		if ck.Name != "redundancy" && ck.Busiest != "" {
			res.MeasuredBottleneck = ck.Busiest
		}
	}
	return res, nil
}

func scaleTo(ctx context.Context, cfg Config, replicas map[string]int) error {
	for name, n := range replicas {
		if err := cfg.Scaler.Scale(ctx, name, n); err != nil {
			return fmt.Errorf("scale %s to %d: %w", name, n, err)
		}
	}
	return WaitReady(ctx, cfg.Scaler, replicas, cfg.ReadyTimeout, cfg.Progress)
}

// Judge compares one check's step (the load at entry on replicas) with
// the plan's prediction.
func Judge(p *capacity.PlanResult, name, about string, entry float64, st *capacity.Step, replicas map[string]int) *Check {
	ck := &Check{Name: name, About: about, EntryQPS: entry, Step: st, Held: st.Passed}
	if !st.Passed {
		ck.Reason = st.Reason
	}
	measured := map[string]capacity.ServiceStats{}
	for _, s := range st.Services {
		measured[s.Name] = s
	}
	busiest := -1.0
	for _, sp := range p.Services {
		n := replicas[sp.Name]
		sc := &ServiceCheck{Name: sp.Name, Replicas: n, PredictedQPS: round(entry * sp.Fanout),
			PredictedUtil: round(predictedUtil(entry, &sp, n)), Ceiling: round(1 - p.Headroom)}
		m, ok := measured[sp.Name]
		switch {
		case !ok:
			sc.Error = "no metrics source for this service"
		case m.Error != "":
			sc.Error = m.Error
		default:
			sc.MeasuredQPS, sc.FailedQPS = round(m.GoodRate), round(m.RequestRate-m.GoodRate)
			sc.LatencyMs = round(m.MeanLatencyMs)
			if n > 0 {
				sc.PerReplica = round(m.GoodRate / float64(n))
			}
			if m.Utilization > 0 {
				sc.Utilization, sc.UtilFrom = round(m.Utilization), "busy time"
			} else if sp.CapacityQPS > 0 {
				sc.Utilization, sc.UtilFrom = round(sc.PerReplica/sp.CapacityQPS), "plan capacity"
			}
		}
		if sc.Utilization > busiest {
			busiest, ck.Busiest = sc.Utilization, sp.Name
		}
		// A service past its capacity does not hold, whatever the entry's
		// SLO says: its queue is growing.
		if sc.Utilization > 1 && ck.Held {
			ck.Held, ck.Reason = false, fmt.Sprintf("%s at %.0f%% of its capacity", sp.Name, 100*sc.Utilization)
		}
		ck.Services = append(ck.Services, sc)
	}
	return ck
}

// predictedUtil is the share of n replicas' capacity the plan expects s to
// use at the entry rate.
func predictedUtil(entry float64, s *capacity.ServicePlan, n int) float64 {
	if n <= 0 || s.CapacityQPS <= 0 {
		return math.Inf(1)
	}
	return entry * s.Fanout / (float64(n) * s.CapacityQPS)
}

func round(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return math.Round(v*1000) / 1000
}

// WriteTable prints each check, the plan beside the measurement.
func (r *Result) WriteTable(w io.Writer) error {
	var b strings.Builder
	for _, c := range r.Checks {
		v := "held"
		if !c.Held {
			v = "NOT HELD: " + c.Reason
		}
		st := c.Step
		fmt.Fprintf(&b, "\n%s (%s): %.1f req/s offered, %.1f achieved, p99 %.1f ms, errors %.2f%%: %s\n",
			c.Name, c.About, st.Offered, st.Achieved, st.LatencyMs.P99, 100*st.ErrorRate, v)
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "service\treplicas\tpredicted/s\tmeasured/s\tper replica/s\tpredicted util\tmeasured util\tceiling\tmean ms\tfailed/s\t")
		for _, s := range c.Services {
			if s.Error != "" {
				fmt.Fprintf(tw, "%s\t%d\t%.1f\t-\t-\t%.0f%%\t-\t%.0f%%\t-\t-\t%s\n", s.Name, s.Replicas, s.PredictedQPS, 100*s.PredictedUtil, 100*s.Ceiling, s.Error)
				continue
			}
			flag := ""
			if s.Utilization > s.Ceiling {
				flag = " over ceiling"
			}
			fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.1f\t%.0f%%\t%.0f%%%s\t%.0f%%\t%.1f\t%.1f\t\n", s.Name, s.Replicas, s.PredictedQPS,
				s.MeasuredQPS, s.PerReplica, 100*s.PredictedUtil, 100*s.Utilization, flag, 100*s.Ceiling, s.LatencyMs, s.FailedQPS)
		}
		tw.Flush()
	}
	agree := "agrees"
	if r.PredictedBottleneck != r.MeasuredBottleneck {
		agree = "differs"
	}
	fmt.Fprintf(&b, "\nbottleneck: planned %s, measured %s (%s)\n", dash(r.PredictedBottleneck), dash(r.MeasuredBottleneck), agree)
	if r.Held {
		b.WriteString("plan verified: every check held\n")
	} else {
		b.WriteString("plan NOT verified\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
