// Package guard is the drill's kill switch. A Guard evaluates rules every
// period — the error rate and latency of the drill's own traffic,
// production SLIs read from Prometheus, health URLs — and stops the drill
// when one of them is breached for K consecutive evaluations, when a
// PromQL rule has no data for longer than a grace period (fail safe:
// Prometheus unreachable, or a query that returns no series or only NaN,
// as when the service it watches crashed and its metrics vanished;
// Rule.OnNoData opts a rule out of the second), or at once when an
// operator flips the hot switch (a file, or POST /stop).
//
// The guard does not stop anything itself: Run calls the stop function its
// caller gives it, once, with the Breach that decided it.
package guard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/api"

	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/scenarios/slo"
)

// Kind is what a rule watches, and what stopped a drill.
type Kind string

// Kinds of rules and breaches.
const (
	KindTraffic Kind = "traffic" // the drill's own traffic (Rule.SLO)
	KindPromQL  Kind = "promql"  // a Prometheus query (Rule.PromQL)
	KindHealth  Kind = "health"  // a health URL (Rule.Health)
	KindSignal  Kind = "signal"  // a PromQL rule without data (no sample, no answer) for longer than the grace
	KindSwitch  Kind = "switch"  // the manual hot switch
)

// Breach is why a guard stopped the drill.
type Breach struct {
	Rule string // the rule's name; "hot switch" for the switch
	Kind Kind
	// Value is the last value evaluated: ms for a latency clause, a
	// fraction for an error rate, the query's value, the HTTP status of a
	// health URL (0: no answer), the seconds without an answer for a signal
	// loss (no data). Limit is what it was held against (0 for health and
	// the switch; the grace for a signal loss).
	Value, Limit float64
	// Unit is the unit of Value and Limit, so that nobody guesses it from
	// the reason: "ms" or "ratio" (0.02 = 2%) or "/s" for an SLO clause,
	// "status" for a health URL, "s" for a signal loss, "" for a PromQL
	// query's own value and the switch.
	Unit        string
	At          time.Time // when the guard decided to stop
	Consecutive int       // bad evaluations in a row; evaluations without data in a row for a signal loss; 1 for the switch
	Reason      string    // one sentence for people: which rule, what was seen
}

// String returns the reason.
func (b Breach) String() string { return b.Reason }

// MarshalJSON writes non-finite values (a +Inf from histogram_quantile) as
// strings, which JSON numbers cannot hold.
func (b Breach) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Rule        string    `json:"rule"`
		Kind        Kind      `json:"kind"`
		Value       any       `json:"value"`
		Limit       any       `json:"limit"`
		Unit        string    `json:"unit,omitempty"`
		At          time.Time `json:"at"`
		Consecutive int       `json:"consecutive"`
		Reason      string    `json:"reason"`
	}{b.Rule, b.Kind, jsonNum(b.Value), jsonNum(b.Limit), b.Unit, b.At, b.Consecutive, b.Reason})
}

// State is the outcome of a rule's last evaluation.
type State string

// Rule states.
const (
	StatePending State = "pending" // not evaluated yet
	StateOK      State = "ok"
	StateBad     State = "bad"     // breached this time; Consecutive counts toward K
	StateNoData  State = "no data" // nothing to judge (no traffic, no series, only NaN): the count of bad evaluations is kept
	StateError   State = "error"   // the query failed; counts toward the signal loss
)

// RuleStatus is the last evaluation of one rule.
type RuleStatus struct {
	Name        string
	Kind        Kind
	Expr        string // what the rule checks, as configured
	State       State
	Value       float64 // as in Breach; of the worst clause or series
	Limit       float64
	Unit        string // as in Breach
	Detail      string // the last evaluation in words
	Consecutive int    // bad evaluations in a row
	Breaches    int    // K
	Evaluations int
	// NoData counts the evaluations that judged nothing: a query that
	// failed or returned no usable sample, a traffic window with too few
	// requests. LastNoData says why the last of them had none.
	NoData     int
	LastNoData string
	At         time.Time // of the last evaluation; zero while pending
	SignalLost bool      // PromQL: no data for longer than the grace (with ActionContinue)
	Err        string    // the last error of a query
}

// MarshalJSON writes the status with non-finite values as strings.
func (s RuleStatus) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Name        string    `json:"name"`
		Kind        Kind      `json:"kind"`
		Expr        string    `json:"expr"`
		State       State     `json:"state"`
		Value       any       `json:"value"`
		Limit       any       `json:"limit"`
		Unit        string    `json:"unit,omitempty"`
		Detail      string    `json:"detail,omitempty"`
		Consecutive int       `json:"consecutive"`
		Breaches    int       `json:"breaches"`
		Evaluations int       `json:"evaluations"`
		NoData      int       `json:"no_data"`
		LastNoData  string    `json:"last_no_data,omitempty"`
		At          time.Time `json:"at"`
		SignalLost  bool      `json:"signal_lost,omitempty"`
		Err         string    `json:"error,omitempty"`
	}{s.Name, s.Kind, s.Expr, s.State, jsonNum(s.Value), jsonNum(s.Limit), s.Unit, s.Detail,
		s.Consecutive, s.Breaches, s.Evaluations, s.NoData, s.LastNoData, s.At, s.SignalLost, s.Err})
}

func jsonNum(f float64) any {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Sprint(f)
	}
	return f
}

// Status is a guard's progress: what Guard.Status returns and GET / of the
// hot switch endpoint shows.
type Status struct {
	Started time.Time    `json:"started"` // when Run began; zero before
	Running bool         `json:"running"`
	Stopped *Breach      `json:"stopped,omitempty"` // what stopped the drill
	Switch  string       `json:"switch,omitempty"`  // the hot switch endpoint's address
	Rules   []RuleStatus `json:"rules"`
}

// rule is a configured rule and its state.
type rule struct {
	Rule
	kind   Kind
	slo    slo.SLO
	st     RuleStatus // guarded by Guard.mu
	lastOK time.Time  // PromQL: the last real sample (or answer, with NoDataIgnore); guarded by Guard.mu
	fails  int        // PromQL: evaluations without data in a row; guarded by Guard.mu
}

// outcome is one evaluation of one rule.
type outcome struct {
	idx          int
	state        State
	value, limit float64
	unit         string // of value and limit: "ms", "ratio", "/s", "" (see slo.Expr.Unit)
	detail       string
	at           time.Time
}

// switchReq is a Stop on its way to Run.
type switchReq struct {
	from, reason string        // from: how it came, "POST /stop from ADDR"
	done         chan struct{} // closed once stop has returned
}

// Guard watches a drill. Create it with New; Observe, Status, Addr and
// Check are safe for concurrent use, Run is called once.
type Guard struct {
	cfg       Config
	rules     []*rule
	span      int // intervals per traffic evaluation
	poll      time.Duration
	querier   Querier
	transport *http.Transport
	client    *http.Client // health URLs
	ln        net.Listener // the hot switch endpoint; nil without one

	notify   chan struct{} // Observe → Run, capacity 1
	switchCh chan switchReq
	quit     chan struct{} // closed when Run begins to finish
	done     chan struct{} // closed when Run has returned

	mu        sync.Mutex
	pending   []loadgen.Interval   // observed, not yet evaluated
	window    []loadgen.Interval   // Run's: the traffic window being filled
	merger    loadgen.WindowMerger // Run's
	ran       bool
	running   bool
	started   time.Time
	stopped   *Breach
	closeOnce sync.Once
}

// New checks cfg, applies its defaults and opens the hot switch endpoint
// when cfg names one (so Addr is known before Run). Release it with Run
// (which closes it on return) or Close.
func New(cfg Config) (*Guard, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 4
	tr.ResponseHeaderTimeout = 0 // each request has its own deadline
	g := &Guard{
		cfg:       cfg,
		span:      max(1, int(math.Round(cfg.Every.Seconds()))),
		poll:      min(cfg.Every, DefaultSwitchPoll),
		querier:   cfg.Querier,
		transport: tr,
		client: &http.Client{
			Transport:     tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		notify:   make(chan struct{}, 1),
		switchCh: make(chan switchReq),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	for _, r := range cfg.Rules {
		gr := &rule{Rule: r}
		switch {
		case r.SLO != "":
			gr.kind = KindTraffic
			gr.slo, _ = slo.Parse(r.SLO) // checked by Validate
		case r.PromQL != "":
			gr.kind = KindPromQL
		default:
			gr.kind = KindHealth
		}
		gr.st = RuleStatus{Name: r.Name, Kind: gr.kind, Expr: r.expr(), State: StatePending, Breaches: r.Breaches}
		g.rules = append(g.rules, gr)
		if gr.kind == KindPromQL && g.querier == nil {
			c, err := api.NewClient(api.Config{Address: cfg.Prometheus, RoundTripper: tr})
			if err != nil {
				return nil, fmt.Errorf("guard prometheus %s: %w", cfg.Prometheus, err)
			}
			g.querier = promQuerier{newAPI(c)}
		}
	}
	if cfg.Switch.Listen != "" {
		ln, err := net.Listen("tcp", listenAddr(cfg.Switch.Listen))
		if err != nil {
			return nil, fmt.Errorf("guard hot switch: %w", err)
		}
		g.ln = ln
	}
	return g, nil
}

// expr describes what the rule checks.
func (r Rule) expr() string {
	switch {
	case r.SLO != "":
		return r.SLO
	case r.PromQL != "":
		s := r.PromQL
		if r.Max != nil {
			s += fmt.Sprintf(" <= %g", *r.Max)
		}
		if r.Min != nil {
			s += fmt.Sprintf(" >= %g", *r.Min)
		}
		return s
	}
	return "GET " + r.Health + " → 2xx"
}

// Addr returns the address of the hot switch endpoint ("" without one),
// e.g. "127.0.0.1:8089": POST http://ADDR/stop stops the drill.
func (g *Guard) Addr() string {
	if g.ln == nil {
		return ""
	}
	return g.ln.Addr().String()
}

// Close releases the hot switch endpoint of a guard whose Run was never
// called. Calling it after Run is harmless.
func (g *Guard) Close() error {
	var err error
	g.closeOnce.Do(func() {
		if g.ln != nil {
			err = g.ln.Close()
		}
		g.transport.CloseIdleConnections()
	})
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// Observe hands the guard one closed interval of the drill's traffic; pass
// it to loadgen.WithIntervalHook (or a Merger's). It only queues the
// interval, so it is cheap and never blocks the engine; Run evaluates the
// SLO rules over every window of max(1, round(Every/1s)) intervals. Safe
// for concurrent use; the interval's histograms are read, never changed.
func (g *Guard) Observe(iv loadgen.Interval) {
	if !g.hasTraffic() {
		return
	}
	g.mu.Lock()
	if len(g.pending) >= maxPendingInterval { // Run is not consuming: keep the newest
		g.pending = append(g.pending[:0], g.pending[1:]...)
	}
	g.pending = append(g.pending, iv)
	g.mu.Unlock()
	select {
	case g.notify <- struct{}{}:
	default:
	}
}

func (g *Guard) hasTraffic() bool {
	for _, r := range g.rules {
		if r.kind == KindTraffic {
			return true
		}
	}
	return false
}

// Status returns the guard's progress: the last evaluation of every rule,
// in Config.Rules order, and what stopped the drill. Safe for concurrent use.
func (g *Guard) Status() Status {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := Status{Started: g.started, Running: g.running, Switch: g.Addr()}
	if g.stopped != nil {
		b := *g.stopped
		s.Stopped = &b
	}
	for _, r := range g.rules {
		s.Rules = append(s.Rules, r.st)
	}
	return s
}

// Run evaluates the rules until ctx is done or the drill must stop. In the
// second case it calls stop exactly once, on Run's goroutine, with the
// Breach, and returns nil after it. stop should not block for long: a POST
// /stop answers once stop has returned. Run evaluates each PromQL and
// health rule every Every (the first time at once), the SLO rules as
// Observe'd windows complete, the hot switch file every DefaultSwitchPoll
// (or Every when shorter). It serves the hot switch endpoint until it
// returns, and returns an error only when called twice.
func (g *Guard) Run(ctx context.Context, stop func(Breach)) error {
	g.mu.Lock()
	if g.ran {
		g.mu.Unlock()
		return errors.New("guard: Run called twice")
	}
	g.ran, g.running = true, true
	g.started = time.Now()
	for _, r := range g.rules {
		r.lastOK = g.started
	}
	g.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	results := make(chan outcome)
	for i, r := range g.rules {
		if r.kind == KindPromQL || r.kind == KindHealth {
			wg.Go(func() { g.probeLoop(ctx, i, results) })
		}
	}
	var srv *http.Server
	if g.ln != nil {
		srv = &http.Server{Handler: g.handler(), ReadHeaderTimeout: 5 * time.Second}
		wg.Go(func() { _ = srv.Serve(g.ln) })
	}
	poll := time.NewTicker(g.poll)
	defer poll.Stop()

	finish := func(b *Breach, req *switchReq) error {
		if b != nil {
			g.mu.Lock()
			g.stopped = b
			g.mu.Unlock()
			stop(*b)
		}
		if req != nil {
			close(req.done)
		}
		close(g.quit)
		cancel()
		if srv != nil {
			sctx, scancel := context.WithTimeout(context.Background(), time.Second)
			if srv.Shutdown(sctx) != nil {
				_ = srv.Close()
			}
			scancel()
		}
		wg.Wait()
		_ = g.Close()
		g.mu.Lock()
		g.running = false
		g.mu.Unlock()
		close(g.done)
		return nil
	}

	for {
		now := time.Now()
		if b := g.checkFile(now); b != nil {
			return finish(b, nil)
		}
		if b := g.checkSignal(now); b != nil {
			return finish(b, nil)
		}
		select {
		case <-ctx.Done():
			return finish(nil, nil)
		case o := <-results:
			if b := g.apply(o); b != nil {
				return finish(b, nil)
			}
		case <-g.notify:
			if b := g.evalTraffic(); b != nil {
				return finish(b, nil)
			}
		case req := <-g.switchCh:
			reason := "hot switch: " + req.from
			if req.reason != "" {
				reason += ": " + req.reason
			}
			b := &Breach{Rule: "hot switch", Kind: KindSwitch, At: time.Now(), Consecutive: 1, Reason: reason}
			return finish(b, &req)
		case <-poll.C:
		}
	}
}

// checkFile stops when the hot switch file exists.
func (g *Guard) checkFile(now time.Time) *Breach {
	f := g.cfg.Switch.File
	if f == "" {
		return nil
	}
	if _, err := os.Stat(f); err != nil {
		return nil
	}
	return &Breach{Rule: "hot switch", Kind: KindSwitch, At: now, Consecutive: 1,
		Reason: fmt.Sprintf("hot switch: file %s exists", f)}
}

// checkSignal declares a signal loss when a PromQL rule has had no data
// (no real sample, or no answer from Prometheus) for longer than the grace.
func (g *Guard) checkSignal(now time.Time) *Breach {
	g.mu.Lock()
	defer g.mu.Unlock()
	grace := g.cfg.SignalLoss.Grace
	for _, r := range g.rules {
		if r.kind != KindPromQL {
			continue
		}
		silent := now.Sub(r.lastOK)
		r.st.SignalLost = silent > grace
		if !r.st.SignalLost || g.cfg.SignalLoss.Action == ActionContinue {
			continue
		}
		why := r.st.LastNoData
		if why == "" {
			why = "no answer yet"
		}
		return &Breach{
			Rule: r.Name, Kind: KindSignal, Value: silent.Seconds(), Limit: grace.Seconds(), Unit: "s", At: now,
			Consecutive: r.fails,
			Reason: fmt.Sprintf("signal lost: no data from rule %q for %.1fs (grace %v; %d evaluations without data): %s",
				r.Name, silent.Seconds(), grace, r.st.NoData, why),
		}
	}
	return nil
}

// apply records an evaluation and returns the breach it completes.
func (g *Guard) apply(o outcome) *Breach {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.rules[o.idx]
	st := &r.st
	st.At, st.State, st.Detail = o.at, o.state, o.detail
	st.Evaluations++
	if o.state == StateError || o.state == StateNoData {
		st.NoData++
		st.LastNoData = o.detail
	}
	if o.state == StateError {
		st.Err = o.detail
		r.fails++
		return nil
	}
	st.Err = ""
	if o.state == StateNoData {
		// Only a real sample restarts the grace: an empty answer is what
		// a crashed service's vanished metrics look like. A rule that
		// expects to be empty says so (NoDataIgnore).
		if r.kind == KindPromQL && r.OnNoData == NoDataIgnore {
			r.lastOK, r.fails, st.SignalLost = o.at, 0, false
		} else {
			r.fails++
		}
		return nil
	}
	r.fails = 0
	if r.kind == KindPromQL {
		r.lastOK = o.at
		st.SignalLost = false
	}
	st.Value, st.Limit, st.Unit = o.value, o.limit, o.unit
	if o.state == StateOK {
		st.Consecutive = 0
		return nil
	}
	st.Consecutive++
	if st.Consecutive < r.Breaches {
		return nil
	}
	return &Breach{
		Rule: r.Name, Kind: r.kind, Value: o.value, Limit: o.limit, Unit: o.unit, At: time.Now(), Consecutive: st.Consecutive,
		Reason: fmt.Sprintf("rule %q (%s) breached %d evaluations in a row: %s", r.Name, r.kind, st.Consecutive, o.detail),
	}
}

// probeLoop evaluates one PromQL or health rule now and every Every.
func (g *Guard) probeLoop(ctx context.Context, i int, out chan<- outcome) {
	t := time.NewTicker(g.cfg.Every)
	defer t.Stop()
	for {
		o := g.probe(ctx, i)
		select {
		case out <- o:
		case <-ctx.Done():
			return
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// probe evaluates rule i once, bounded by its timeout.
func (g *Guard) probe(ctx context.Context, i int) outcome {
	r := g.rules[i]
	ctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	var o outcome
	if r.kind == KindPromQL {
		o = evalPromQL(ctx, g.querier, r.Rule)
	} else {
		o = evalHealth(ctx, g.client, r.Rule)
	}
	o.idx, o.at = i, time.Now()
	return o
}

// evalTraffic moves the observed intervals into the window and evaluates
// the SLO rules over every window that fills.
func (g *Guard) evalTraffic() *Breach {
	g.mu.Lock()
	ivs := g.pending
	g.pending = nil
	g.mu.Unlock()
	for _, iv := range ivs {
		g.window = append(g.window, iv)
		if len(g.window) < g.span {
			continue
		}
		w := g.merger.Merge(g.window)
		g.window = g.window[:0]
		now := time.Now()
		for i, r := range g.rules {
			if r.kind != KindTraffic {
				continue
			}
			o := evalSLO(r.slo, r.MinRequests, &w)
			o.idx, o.at = i, now
			if b := g.apply(o); b != nil {
				return b
			}
		}
	}
	return nil
}

// Check probes every PromQL and health rule once and looks for a left-over
// hot switch file: a drill's pre-flight. It returns every problem, joined:
// a query that fails or returns no data (unless the rule ignores no data),
// a rule already breached, a health URL that does not answer 2xx.
func (g *Guard) Check(ctx context.Context) error {
	var errs []error
	if f := g.cfg.Switch.File; f != "" {
		if _, err := os.Stat(f); err == nil {
			errs = append(errs, fmt.Errorf("guard hot switch file %s exists: remove it, or the drill stops at once", f))
		}
	}
	outs := make([]outcome, len(g.rules))
	var wg sync.WaitGroup
	for i, r := range g.rules {
		if r.kind == KindPromQL || r.kind == KindHealth {
			wg.Go(func() { outs[i] = g.probe(ctx, i) })
		}
	}
	wg.Wait()
	for i, r := range g.rules {
		o := outs[i]
		switch {
		case r.kind == KindTraffic:
		case o.state == StateError:
			errs = append(errs, fmt.Errorf("guard rule %q: %s", r.Name, o.detail))
		case o.state == StateNoData && r.OnNoData != NoDataIgnore:
			errs = append(errs, fmt.Errorf("guard rule %q: %s: the rule could not see a breach", r.Name, o.detail))
		case o.state == StateBad:
			errs = append(errs, fmt.Errorf("guard rule %q is breached already: %s", r.Name, o.detail))
		}
	}
	return errors.Join(errs...)
}
