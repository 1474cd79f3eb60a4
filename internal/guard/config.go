package guard

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/loadcap/loadcap/scenarios"
	"github.com/loadcap/loadcap/scenarios/slo"
)

// Defaults of a guard. Those a drill plan can set are the plan's
// (package scenarios), so that a guard built without a plan behaves as a
// plan that leaves them out.
const (
	DefaultEvery       = scenarios.DefaultGuardEvery      // evaluation period
	DefaultBreaches    = scenarios.DefaultGuardBreaches   // consecutive bad evaluations that stop the drill
	DefaultGrace       = scenarios.DefaultSignalLossGrace // signal loss tolerated before it is a breach
	DefaultTimeout     = 5 * time.Second                  // upper bound of a probe's default timeout, min(Every, DefaultTimeout)
	DefaultSwitchPoll  = 200 * time.Millisecond
	DefaultListenHost  = "127.0.0.1" // the hot switch endpoint's host when Listen names only a port
	maxBreaches        = 100
	minEvery           = 10 * time.Millisecond
	maxPendingInterval = 64 // intervals Observe keeps while Run is not consuming them
)

// Action is what a signal loss does.
type Action string

// Signal loss actions.
const (
	ActionStop     Action = "stop"     // fail safe: losing Prometheus stops the drill (the default)
	ActionContinue Action = "continue" // keep going blind; Status still shows the loss
)

// SignalLoss is what the guard does when a PromQL rule has no data.
type SignalLoss struct {
	// Grace is how long a PromQL rule may go without data before that is
	// a breach. No data is any evaluation without a real sample:
	// Prometheus unreachable, a query error, no answer within the
	// timeout, and (unless the rule says OnNoData: NoDataIgnore) a query
	// that returns no series, or only NaN or infinite values that do not
	// breach the rule. A crashed service whose metrics vanished looks
	// exactly like that. It is counted per PromQL rule from its last real
	// sample, or from the start of Run. 0: DefaultGrace.
	Grace  time.Duration
	Action Action // "": ActionStop
}

// NoData is what a PromQL rule makes of an answer without data.
type NoData string

// What a rule makes of no data (Rule.OnNoData).
const (
	// NoDataStop: an answer without data does not restart the grace; no
	// data for longer than it stops the drill (the default).
	NoDataStop NoData = "stop"
	// NoDataIgnore: an answer without data restarts the grace like a
	// sample; only a failed query counts toward the signal loss. For a
	// query that is legitimately empty, e.g. the rate of an error that has
	// not happened yet. The evaluations are still counted (RuleStatus.NoData).
	NoDataIgnore NoData = "ignore"
)

// Switch is the manual hot switch: an operator stops the drill at once.
type Switch struct {
	// File stops the drill as soon as it exists (polled every
	// DefaultSwitchPoll, or every Every when that is shorter).
	File string
	// Listen is the address of an HTTP endpoint: POST /stop stops the
	// drill, GET / shows the guard's state as JSON. A bare port (":8089")
	// or an empty host listens on DefaultListenHost (loopback) only; name a
	// host to listen elsewhere.
	Listen string
}

// Rule is one condition the drill must keep. Exactly one of SLO, PromQL
// and Health is set.
type Rule struct {
	// Name identifies the rule in Status and Breach; "" becomes "rule-N"
	// (N from 1 in Config.Rules order).
	Name string

	// SLO is a condition on the drill's own traffic in slo.Parse
	// syntax: "p(99)<500ms", "avg<20ms", "error<1%", comma-separated; every
	// clause must hold. Evaluated over each window of Observe'd intervals
	// (see Guard.Observe).
	SLO string
	// MinRequests: a traffic window with fewer finished requests is "no
	// data" (neither good nor bad). 0: any window with one request counts.
	MinRequests int64

	// PromQL is an instant query run at every evaluation against
	// Config.Prometheus. Its value (the worst series of a vector) must stay
	// at or below Max and at or above Min; at least one of them is set.
	// A query that returns no series, or only NaN, is "no data"; so is a
	// ±Inf that does not breach the rule (a +Inf above Max or a -Inf
	// below Min, e.g. a histogram_quantile past the top bucket, is a bad
	// value).
	PromQL   string
	Max, Min *float64
	// OnNoData is what an answer without data does to the signal loss
	// grace (see SignalLoss); "": NoDataStop. PromQL rules only.
	OnNoData NoData

	// Health is a URL that must answer GET with a 2xx status within
	// Timeout. Redirects are not followed: a 3xx is a bad answer.
	Health string

	// Timeout bounds one query or health request. 0: min(Every, DefaultTimeout).
	Timeout time.Duration
	// Breaches is K, the consecutive bad evaluations that stop the drill.
	// 0: Config.Breaches.
	Breaches int
}

// Config configures a Guard.
type Config struct {
	Every      time.Duration // evaluation period; 0: DefaultEvery
	Breaches   int           // default K of the rules; 0: DefaultBreaches
	Prometheus string        // base URL of the Prometheus HTTP API, e.g. http://127.0.0.1:9090
	SignalLoss SignalLoss
	Rules      []Rule
	Switch     Switch

	// Querier answers the PromQL rules instead of a client of Prometheus
	// (for tests, or a caller with its own client). nil: Prometheus.
	Querier Querier
}

// Float returns a pointer to v, for Rule.Max and Rule.Min, or nil when v
// is NaN (the drill plan's "unset").
func Float(v float64) *float64 {
	if math.IsNaN(v) {
		return nil
	}
	return &v
}

// withDefaults returns c with every zero field given its default.
func (c Config) withDefaults() Config {
	if c.Every == 0 {
		c.Every = DefaultEvery
	}
	if c.Breaches == 0 {
		c.Breaches = DefaultBreaches
	}
	if c.SignalLoss.Grace == 0 {
		c.SignalLoss.Grace = DefaultGrace
	}
	if c.SignalLoss.Action == "" {
		c.SignalLoss.Action = ActionStop
	}
	rules := make([]Rule, len(c.Rules))
	for i, r := range c.Rules {
		if r.Name == "" {
			r.Name = fmt.Sprintf("rule-%d", i+1)
		}
		if r.Breaches == 0 {
			r.Breaches = c.Breaches
		}
		if r.OnNoData == "" && r.PromQL != "" {
			r.OnNoData = NoDataStop
		}
		if r.Timeout == 0 {
			r.Timeout = min(c.Every, DefaultTimeout)
		}
		rules[i] = r
	}
	c.Rules = rules
	return c
}

// Validate returns every problem of c (after defaults), joined.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Every < minEvery {
		bad("guard every %v: must be at least %v", c.Every, minEvery)
	}
	if c.Breaches < 1 || c.Breaches > maxBreaches {
		bad("guard breaches %d: must be between 1 and %d", c.Breaches, maxBreaches)
	}
	if c.SignalLoss.Grace <= c.Every {
		bad("guard signal loss grace %v: must be longer than the evaluation period %v", c.SignalLoss.Grace, c.Every)
	}
	if a := c.SignalLoss.Action; a != ActionStop && a != ActionContinue {
		bad("guard signal loss action %q: want %q or %q", a, ActionStop, ActionContinue)
	}
	if c.Switch.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Switch.Listen); err != nil {
			bad("guard hot switch listen %q: want host:port or :port: %v", c.Switch.Listen, err)
		}
	}
	needProm := false
	names := map[string]bool{}
	for _, r := range c.Rules {
		where := fmt.Sprintf("guard rule %q", r.Name)
		if names[r.Name] {
			bad("%s: the name is used twice", where)
		}
		names[r.Name] = true
		kinds := 0
		for _, s := range []string{r.SLO, r.PromQL, r.Health} {
			if strings.TrimSpace(s) != "" {
				kinds++
			}
		}
		if kinds != 1 {
			bad("%s: needs exactly one of SLO, PromQL and Health", where)
		}
		if r.Breaches < 1 || r.Breaches > maxBreaches {
			bad("%s: breaches %d: must be between 1 and %d", where, r.Breaches, maxBreaches)
		}
		if r.Timeout < 0 {
			bad("%s: timeout %v is negative", where, r.Timeout)
		}
		if r.MinRequests < 0 {
			bad("%s: min requests %d is negative", where, r.MinRequests)
		}
		if r.SLO != "" {
			if _, err := slo.Parse(r.SLO); err != nil {
				bad("%s: %w", where, err)
			}
		}
		if r.PromQL != "" {
			needProm = true
			if r.Max == nil && r.Min == nil {
				bad("%s: a PromQL rule needs Max or Min", where)
			}
			for _, p := range []*float64{r.Max, r.Min} {
				if p != nil && math.IsNaN(*p) {
					bad("%s: a limit is NaN", where)
				}
			}
			if r.Max != nil && r.Min != nil && *r.Min > *r.Max {
				bad("%s: min %g is above max %g", where, *r.Min, *r.Max)
			}
		}
		if (r.Max != nil || r.Min != nil) && r.PromQL == "" {
			bad("%s: Max and Min apply to PromQL rules", where)
		}
		switch {
		case r.OnNoData != "" && r.PromQL == "":
			bad("%s: OnNoData applies to PromQL rules", where)
		case r.PromQL != "" && r.OnNoData != NoDataStop && r.OnNoData != NoDataIgnore:
			bad("%s: on no data %q: want %q or %q", where, r.OnNoData, NoDataStop, NoDataIgnore)
		}
		if r.Health != "" {
			if u, err := url.Parse(r.Health); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad("%s: health URL %q: want an absolute http(s) URL", where, r.Health)
			}
		}
	}
	if needProm && c.Querier == nil {
		if u, err := url.Parse(c.Prometheus); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("guard prometheus %q: PromQL rules need the base URL of a Prometheus server, e.g. http://127.0.0.1:9090", c.Prometheus)
		}
	}
	return errors.Join(errs...)
}

// listenAddr puts a bare port on DefaultListenHost.
func listenAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host != "" {
		return addr
	}
	return net.JoinHostPort(DefaultListenHost, port)
}
