package drill

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/loadcap/loadcap/capacity"
	"github.com/loadcap/loadcap/internal/audit"
)

// Report is what a drill adds to a run's report (reports renders it as
// it is): the plan it ran, the guard and why it stopped the drill, the
// capacity it measured per service, the isolation pre-flight and audit,
// and the autoscaler manifests it wrote. The stages' measurements are
// Result.Stages (one step per stage that held, Phase = the stage's name).
// It is embedded in the HTML report as JSON under "drill".
type Report struct {
	ID       string `json:"id"`                  // the drill id, the shadow tag value
	Target   string `json:"target"`              // base URL of the entry service
	PlanFile string `json:"plan_file,omitempty"` // the drill plan's path
	// Traffic says what was sent: "replay of FILE" or "scenario FILE".
	Traffic string `json:"traffic,omitempty"`
	// RecordedPeakQPS is the recording's busiest second, req/s, that the
	// stages' multipliers scale; 0 for a scenario.
	RecordedPeakQPS float64     `json:"recorded_peak_qps,omitempty"`
	Stages          []StagePlan `json:"stages"`
	Guard           *GuardPlan  `json:"guard,omitempty"` // nil: the drill ran unguarded
	Stop            *Stop       `json:"stop,omitempty"`  // nil: the drill was not stopped early
	// Services is each listed service's capacity as the drill measured it;
	// the one with Saturated set is the bottleneck.
	Services []capacity.ServiceMeasure `json:"services,omitempty"`
	// PlanError says why no capacity plan was computed ("" when one was,
	// or none was asked for).
	PlanError string     `json:"plan_error,omitempty"`
	PreFlight *PreFlight `json:"preflight,omitempty"` // nil: the plan has no isolation pre-flight
	Audit     *Audit     `json:"audit,omitempty"`     // nil: the plan asks for no audit
	Manifests []Manifest `json:"manifests,omitempty"`
}

// StagePlan is one stage of the drill plan: a linear ramp from the
// previous stage's rate to RatePerSec, then a hold at it.
type StagePlan struct {
	Name       string        `json:"name"`
	RatePerSec float64       `json:"rate_per_sec"`         // the planned rate, req/s
	Multiplier float64       `json:"multiplier,omitempty"` // of the recorded peak; 0: an absolute rate
	Ramp       time.Duration `json:"ramp_ns"`
	Hold       time.Duration `json:"hold_ns"`
}

// GuardPlan is the guard of a drill: what it evaluates and what stops it.
type GuardPlan struct {
	Every      time.Duration `json:"every_ns"`             // evaluation period
	Breaches   int           `json:"breaches"`             // K of the rules that give none: consecutive bad evaluations that stop the drill
	Prometheus string        `json:"prometheus,omitempty"` // base URL of the Prometheus HTTP API the PromQL rules query
	// SignalLoss is how long Prometheus may not answer before that stops
	// the drill; SignalLossContinue: it does not stop it.
	SignalLoss         time.Duration `json:"signal_loss_ns,omitempty"`
	SignalLossContinue bool          `json:"signal_loss_continue,omitempty"`
	// HotSwitch says how an operator stops the drill at once, e.g. "file
	// /run/stop-drill" or "POST http://127.0.0.1:7070/stop"; "" for none.
	HotSwitch string     `json:"hot_switch,omitempty"`
	Rules     []RulePlan `json:"rules"`
}

// RulePlan is one guard rule.
type RulePlan struct {
	Name string `json:"name"`
	// Kind is "traffic" (an SLO on the drill's own traffic), "promql" or
	// "health", as in internal/guard.
	Kind string `json:"kind"`
	Expr string `json:"expr"` // the SLO, the PromQL query or the health URL
	// Max and Min bound a PromQL rule's value (at most Max, at least Min);
	// nil: no bound.
	Max      *float64 `json:"max,omitempty"`
	Min      *float64 `json:"min,omitempty"`
	Breaches int      `json:"breaches,omitempty"` // K of this rule; 0: GuardPlan.Breaches
	// OnNoData is what a PromQL answer without data does: "stop" ("": the
	// default; no data longer than SignalLoss stops the drill) or "ignore".
	OnNoData string `json:"on_no_data,omitempty"`
	// Evaluations and NoData count the rule's evaluations during the
	// drill, and those without data (see RuleRun); LastNoData says why the
	// last of them had none. All zero when the drill did not run.
	Evaluations int    `json:"evaluations,omitempty"`
	NoData      int    `json:"no_data,omitempty"`
	LastNoData  string `json:"last_no_data,omitempty"`
}

// Stop says what stopped a drill early.
type Stop struct {
	// Rule is the guard rule that stopped the drill ("hot switch" for the
	// switch); Kind is the guard's kind of breach: "traffic", "promql",
	// "health", "signal" (a PromQL rule without data: Prometheus lost, or
	// no series or only NaN, for longer than the grace) or "switch". Both "" when the
	// guard did not stop it (an interrupt).
	Rule   string `json:"rule,omitempty"`
	Kind   string `json:"kind,omitempty"`
	Reason string `json:"reason"` // one sentence for people
	// Value is the last value the rule saw and Limit what it was held
	// against, in Unit: "ms", "ratio" (0.02 = 2%), "s" (signal loss),
	// "status" (an HTTP status, 0 = no answer) or "" (a plain number).
	// They may be infinite (a PromQL histogram_quantile), which the
	// embedded JSON writes as a string.
	Value       float64       `json:"value"`
	Limit       float64       `json:"limit"`
	Unit        string        `json:"unit,omitempty"`
	Consecutive int           `json:"consecutive,omitempty"` // bad evaluations in a row
	At          time.Duration `json:"at_ns"`                 // since the drill started
	Stage       string        `json:"stage"`                 // the stage running when it stopped
	LastHealthy string        `json:"last_healthy"`          // the last stage that completed and passed; "" none
}

// ByGuard reports whether the guard stopped the drill (not a signal).
func (s *Stop) ByGuard() bool { return s.Kind != "" }

// MarshalJSON writes a non-finite Value or Limit as a string ("+Inf",
// "-Inf", "NaN"), which JSON numbers cannot hold.
func (s Stop) MarshalJSON() ([]byte, error) {
	type plain Stop
	return json.Marshal(struct {
		plain
		Value any `json:"value"`
		Limit any `json:"limit"`
	}{plain(s), finiteOrString(s.Value), finiteOrString(s.Limit)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *Stop) UnmarshalJSON(b []byte) error {
	type plain Stop
	var v struct {
		plain
		Value json.RawMessage `json:"value"`
		Limit json.RawMessage `json:"limit"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = Stop(v.plain)
	var err error
	if s.Value, err = parseNumber(v.Value); err != nil {
		return fmt.Errorf("drill stop value: %w", err)
	}
	if s.Limit, err = parseNumber(v.Limit); err != nil {
		return fmt.Errorf("drill stop limit: %w", err)
	}
	return nil
}

func finiteOrString(v float64) any {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	return v
}

func parseNumber(raw json.RawMessage) (float64, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err == nil {
		return f, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, err
	}
	return strconv.ParseFloat(s, 64)
}

// PreFlight is the isolation check run before the drill.
type PreFlight struct {
	Tables   []string        `json:"tables"`             // the production tables checked
	Problems []audit.Problem `json:"problems,omitempty"` // every problem found; none: OK
	// Signals are the guard's and the measurements' signals that did not
	// answer before the start.
	Signals []string `json:"signals,omitempty"`
	Error   string   `json:"error,omitempty"` // the check could not run
}

// Audit is the isolation audit after the drill: rows that leaked.
type Audit struct {
	Tables []string     `json:"tables"`          // tables scanned, production and shadow
	Leaks  []audit.Leak `json:"leaks,omitempty"` // the leaking rows listed (a bounded number per table)
	// Counts is the leaking rows per table, including those not listed;
	// nil: len(Leaks) per table.
	Counts    map[string]int  `json:"counts,omitempty"`
	Unchecked []audit.Problem `json:"unchecked,omitempty"` // tables, or their markers, that could not be checked
	Drills    []string        `json:"drills,omitempty"`    // drill ids found in production tables
	Error     string          `json:"error,omitempty"`     // the audit failed to run
}

// Manifest is one autoscaler manifest the drill wrote.
type Manifest struct {
	Kind    string `json:"kind"` // e.g. "HorizontalPodAutoscaler", "ScaledObject"
	Service string `json:"service,omitempty"`
	Path    string `json:"path"`           // relative to the report
	YAML    string `json:"yaml,omitempty"` // its text, shown folded in the page; "" shows the path only
}
