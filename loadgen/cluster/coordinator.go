package cluster

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/loadgen/cluster/clusterpb"
	"github.com/loadcap/loadcap/loadgen/k6"
	"github.com/loadcap/loadcap/loadgen/live"
	"github.com/loadcap/loadcap/scenarios"
)

// Coordinator defaults.
const (
	DefaultPrepareTimeout = 30 * time.Second
	DefaultStartMargin    = time.Second
	// AgentSilence is how long an agent may go without a snapshot, once
	// running, before the coordinator counts it lost.
	AgentSilence = 5 * time.Second
	// KillWait is how long the coordinator waits for agents' final
	// snapshots after Kill (or ctx done) before it counts them lost.
	KillWait = 3 * time.Second
	// clockSamples is the number of clock exchanges per agent; the one
	// with the shortest round trip gives the offset.
	clockSamples = 8
	// stopTimeout bounds one Stop call to an agent.
	stopTimeout = time.Second
)

// agentBackoff spaces the coordinator's tries to connect to an agent.
var agentBackoff = backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second}

// Agent states in a Report.
const (
	AgentPending = "pending" // not prepared (yet)
	AgentRefused = "refused" // Prepare failed: the error says why
	AgentReady   = "ready"   // prepared, clock measured
	AgentDone    = "done"    // ran its segment to the end (or to the run's stop)
	AgentLost    = "lost"    // stopped streaming mid-run, or aborted on its own
)

// CoordinatorConfig configures a distributed run.
type CoordinatorConfig struct {
	Agents []string // host:port of every agent
	// Sequence is the execution segment sequence, one segment per agent in
	// order ("0,1/2,3/4,1"); "" splits the load evenly.
	Sequence string
	// Segment, when set ("0:1/2"), is the part of the load this coordinator
	// runs, for runs wider than one coordinator: Sequence is then the
	// sequence of every agent of every coordinator, and this one's agents
	// take its segments within Segment, in order. The coordinators' results
	// add up to one run's (reports.Merge).
	Segment string

	// Mutual TLS: the coordinator's client certificate and key, and the CA
	// agents' certificates must chain to. TLS, when set, is used instead.
	CertFile, KeyFile, CAFile string
	TLS                       *tls.Config
	// Insecure talks plaintext; accepted only when every agent address is
	// loopback.
	Insecure bool

	Progress       io.Writer     // progress lines, as a local run writes them; nil for none
	Live           bool          // rewrite one progress line in place (a terminal)
	PrepareTimeout time.Duration // how long agents get to prepare; 0 = DefaultPrepareTimeout
	StartMargin    time.Duration // start this long after the last agent is ready; 0 = DefaultStartMargin
	MetricsListen  string        // host:port for Prometheus metrics at /metrics; "" for none
	// Metrics, when set, are the live metrics the merged intervals and
	// the agents' count feed (the caller serves or pushes them); nil is
	// metrics of the coordinator's own, served on MetricsListen.
	Metrics *live.Metrics
	Logger  *slog.Logger // nil discards
	RunID   string       // "" picks a random one
	// OnListen, when set, is called with the metrics address once served.
	OnListen func(metrics string)
	// OnStart, when set, is called once with the agreed start (on this
	// machine's clock, up to StartMargin ahead) before any agent starts:
	// the time zero of the merged intervals.
	OnStart func(start time.Time)
	// OnInterval, when set, is called with every merged 1-second interval
	// as soon as every running agent has sent it, one at a time, inside
	// the merger: it must return quickly and must not call Stop or Kill
	// itself (hand a decision to another goroutine).
	OnInterval func(loadgen.Interval)
	// KeepIntervals, when positive, keeps only about the last so many
	// merged intervals in memory (loadgen.WithIntervalRetention), for a
	// caller whose OnInterval streams them to disk: a coordinator then
	// costs flat memory over a run of any length, as a local run does.
	KeepIntervals int
}

// Report is the cluster section of a distributed run's result: which agent
// ran which segment, its clock, and how it went.
type Report struct {
	RunID    string        `json:"run_id"`
	Sequence string        `json:"sequence"`
	Segment  string        `json:"segment,omitempty"` // this coordinator's part of the load, when not all of it
	Start    time.Time     `json:"start"`             // the agreed start, on the coordinator's clock
	Agents   []AgentReport `json:"agents"`
}

// AgentReport is one agent's part of a Report. Counts are its totals (as
// far as received, when lost).
type AgentReport struct {
	Addr        string        `json:"addr"`
	Segment     string        `json:"segment"`
	Share       float64       `json:"share"`
	ClockOffset time.Duration `json:"clock_offset_ns"` // agent's clock − coordinator's
	ClockRTT    time.Duration `json:"clock_rtt_ns"`    // round trip of the exchange that measured it
	Status      string        `json:"status"`
	Error       string        `json:"error,omitempty"`
	LostAt      time.Duration `json:"lost_at_ns,omitempty"` // since the start, within the run
	// Unsent counts the arrivals planned for a lost agent that it never
	// reported sent or dropped (loadgen.Lost.Unsent).
	Unsent    int64         `json:"unsent,omitempty"`
	Scheduled int64         `json:"scheduled"`
	Sent      int64         `json:"sent"`
	Dropped   int64         `json:"dropped"`
	Late      int64         `json:"late"`
	MaxLag    time.Duration `json:"max_lag_ns"`
}

// Shortfall is the fraction of its scheduled arrivals the agent dropped.
func (a *AgentReport) Shortfall() float64 {
	if a.Scheduled == 0 {
		return 0
	}
	return float64(a.Dropped) / float64(a.Scheduled)
}

// Saturated reports whether the agent could not keep its rate: it dropped
// arrivals or dispatched some late.
func (a *AgentReport) Saturated() bool { return a.Dropped > 0 || a.Late > 0 }

// Problems lists, one line each, the agents that were lost or could not
// keep their rate, for a summary.
func (r *Report) Problems() []string {
	var out []string
	for _, a := range r.Agents {
		switch {
		case a.Status == AgentLost:
			out = append(out, fmt.Sprintf("agent %s lost at %s (%.1f%% of the load, %d planned arrivals not reported sent): %s", a.Addr, a.LostAt.Round(time.Millisecond), a.Share*100, a.Unsent, a.Error))
		case a.Status == AgentRefused:
			out = append(out, fmt.Sprintf("agent %s refused: %s", a.Addr, a.Error))
		}
		if a.Saturated() {
			out = append(out, fmt.Sprintf("agent %s could not keep its rate: dropped %d of %d arrivals (%.2f%%), %d sent late, max lag %s",
				a.Addr, a.Dropped, a.Scheduled, a.Shortfall()*100, a.Late, a.MaxLag.Round(time.Millisecond)))
		}
	}
	return out
}

// Coordinator runs one scenario over several agents and merges what they
// measured into one loadgen.Result. Create it with NewCoordinator, run it
// once with Run; Stop and Kill may be called from any goroutine.
type Coordinator struct {
	f      *scenarios.File
	plan   *Plan
	cfg    CoordinatorConfig
	segs   []*loadgen.Segment
	series []loadgen.Series
	creds  credentials.TransportCredentials
	log    *slog.Logger

	merger  *loadgen.Merger
	metrics *live.Metrics

	k6plan *K6Plan   // a k6 test instead of f and plan
	k6m    *k6.Merge // merges the agents' k6 frames

	mu        sync.Mutex
	rep       *Report
	clients   []clusterpb.AgentClient
	watches   []*rejectionWatch // per agent: a certificate rejected on its connection
	ended     []bool
	connected int

	stopOnce, killOnce sync.Once
	stopping           atomic.Bool
	stopCh, killCh     chan struct{}
}

// Run runs f over the agents of cfg (see Coordinator).
func Run(ctx context.Context, f *scenarios.File, plan *Plan, cfg CoordinatorConfig) (*loadgen.Result, *Report, error) {
	c, err := NewCoordinator(f, plan, cfg)
	if err != nil {
		return nil, nil, err
	}
	return c.Run(ctx)
}

// NewCoordinator checks cfg and prepares a run of f (whose file and data
// plan holds, NewPlan) over cfg.Agents.
func NewCoordinator(f *scenarios.File, plan *Plan, cfg CoordinatorConfig) (*Coordinator, error) {
	c, err := newCoordinator(cfg)
	if err != nil {
		return nil, err
	}
	opts := []loadgen.Option{loadgen.WithPartSegments(c.segs)}
	if cfg.Progress != nil {
		opts = append(opts, loadgen.WithProgress(cfg.Progress, cfg.Live))
	}
	opts = append(opts, loadgen.WithIntervalHook(c.metrics.Hook(cfg.OnInterval)))
	if cfg.KeepIntervals > 0 {
		opts = append(opts, loadgen.WithIntervalRetention(cfg.KeepIntervals))
	}
	if c.merger, err = loadgen.NewMerger(f, len(cfg.Agents), opts...); err != nil {
		return nil, err
	}
	c.f, c.plan, c.series = f, plan, loadgen.SeriesOf(f)
	return c, nil
}

// newCoordinator checks cfg and builds what every distributed run needs.
func newCoordinator(cfg CoordinatorConfig) (*Coordinator, error) {
	if len(cfg.Agents) == 0 {
		return nil, errors.New("cluster: no agents")
	}
	seen := map[string]bool{}
	for _, a := range cfg.Agents {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("cluster: agent address %q: want host:port", a)
		}
		if seen[a] {
			return nil, fmt.Errorf("cluster: agent %s is listed twice", a)
		}
		seen[a] = true
	}
	creds, err := cfg.credentials()
	if err != nil {
		return nil, err
	}
	segs, err := segmentsOf(cfg.Sequence, cfg.Segment, len(cfg.Agents))
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	if cfg.PrepareTimeout <= 0 {
		cfg.PrepareTimeout = DefaultPrepareTimeout
	}
	if cfg.StartMargin <= 0 {
		cfg.StartMargin = DefaultStartMargin
	}
	if cfg.RunID == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		cfg.RunID = hex.EncodeToString(b[:])
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	metrics := cfg.Metrics
	if metrics == nil {
		metrics = live.New()
	}
	c := &Coordinator{
		cfg: cfg, segs: segs, creds: creds, log: log,
		metrics: metrics, stopCh: make(chan struct{}), killCh: make(chan struct{}),
		ended: make([]bool, len(cfg.Agents)),
		rep:   &Report{RunID: cfg.RunID, Sequence: segs[0].Sequence(), Segment: cfg.Segment},
	}
	for i, a := range cfg.Agents {
		c.rep.Agents = append(c.rep.Agents, AgentReport{Addr: a, Segment: segs[i].String(), Share: segs[i].Share(), Status: AgentPending})
	}
	return c, nil
}

func (c *CoordinatorConfig) credentials() (credentials.TransportCredentials, error) {
	if c.Insecure {
		for _, a := range c.Agents {
			if !isLoopback(a) {
				return nil, fmt.Errorf("cluster: --insecure is accepted only when every agent is on loopback, not %s: use mutual TLS (loadcap certs makes a CA and certificates)", a)
			}
		}
		return insecure.NewCredentials(), nil
	}
	cfg := c.TLS
	if cfg == nil {
		if c.CertFile == "" || c.KeyFile == "" || c.CAFile == "" {
			return nil, errors.New("cluster: mutual TLS needs the coordinator's certificate, its key and the agents' CA (--tls-cert, --tls-key, --ca); loadcap certs makes them")
		}
		var err error
		if cfg, err = ClientTLS(c.CertFile, c.KeyFile, c.CAFile); err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
	}
	return credentials.NewTLS(cfg), nil
}

// Stop ends the run early and gracefully: agents schedule nothing more
// (within a second), in-flight requests get their gracefulStop, and the
// result is aborted with the reason.
func (c *Coordinator) Stop(cause, reason string) {
	c.stopOnce.Do(func() {
		c.stopping.Store(true)
		if c.k6m != nil {
			c.k6m.Abort(cause, reason)
		} else {
			c.merger.Abort(cause, reason)
		}
		close(c.stopCh)
		c.broadcastStop(clusterpb.StopRequest_GRACEFUL, cause, reason)
	})
}

// Kill ends the run at once: like Stop, and agents abandon in-flight
// requests. Agents that send no final snapshot within KillWait are counted
// lost.
func (c *Coordinator) Kill(cause, reason string) {
	c.Stop(cause, reason)
	c.killOnce.Do(func() {
		close(c.killCh)
		c.broadcastStop(clusterpb.StopRequest_KILL, cause, reason)
	})
}

// broadcastStop asks every agent still running to stop; the caller may
// wait for the answers (at most stopTimeout).
func (c *Coordinator) broadcastStop(mode clusterpb.StopRequest_Mode, cause, reason string) *sync.WaitGroup {
	c.mu.Lock()
	defer c.mu.Unlock()
	var wg sync.WaitGroup
	for i, cl := range c.clients {
		if cl == nil || c.ended[i] || c.watches != nil && c.watches[i].Err() != nil {
			continue // no connection to ask it on
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
			defer cancel()
			_, err := cl.Stop(ctx, &clusterpb.StopRequest{RunId: c.cfg.RunID, Mode: mode, Cause: cause, Reason: reason})
			if err != nil {
				c.log.Warn("stop agent", "agent", c.cfg.Agents[i], "err", err)
			}
		}()
	}
	return &wg
}

// Run prepares every agent (or fails, naming those that refused or did not
// answer within the prepare timeout), measures their clocks, starts them
// together and merges their snapshots until every one finished or was
// lost. ctx done kills the run; the result is still returned. The error
// is for a run that could not start; a run that lost agents returns a
// partial result (Result.Lost) and no error.
func (c *Coordinator) Run(ctx context.Context) (*loadgen.Result, *Report, error) {
	if c.k6plan != nil {
		return nil, c.rep, errors.New("cluster: a k6 test runs with RunK6")
	}
	if err := c.run(ctx); err != nil {
		return nil, c.rep, err
	}
	res := c.merger.Result()
	c.noteLost(res)
	return res, c.rep, nil
}

// noteLost copies the merged result's view of each lost agent (its loss
// time within the run, its unsent arrivals) into the report.
func (c *Coordinator) noteLost(res *loadgen.Result) {
	if res == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range res.Lost {
		for i := range c.rep.Agents {
			if a := &c.rep.Agents[i]; a.Addr == l.Agent {
				a.LostAt, a.Unsent = l.At, l.Unsent
			}
		}
	}
}

// run prepares, starts and follows the agents until each ended.
func (c *Coordinator) run(ctx context.Context) error {
	n := len(c.cfg.Agents)
	conns := make([]*grpc.ClientConn, n)
	clients := make([]clusterpb.AgentClient, n)
	c.watches = make([]*rejectionWatch, n)
	for i, addr := range c.cfg.Agents {
		c.watches[i] = newRejectionWatch(c.creds)
		conn, err := grpc.NewClient(addr,
			grpc.WithTransportCredentials(c.watches[i]),
			// An agent still starting is retried within a second or two,
			// not gRPC's default of 1 s growing to 2 min between tries.
			grpc.WithConnectParams(grpc.ConnectParams{Backoff: agentBackoff, MinConnectTimeout: 20 * time.Second}),
			grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 2 * time.Second, PermitWithoutStream: true}),
		)
		if err != nil {
			return fmt.Errorf("cluster: agent %s: %w", addr, err)
		}
		conns[i], clients[i] = conn, clusterpb.NewAgentClient(conn)
	}
	defer func() {
		for _, conn := range conns {
			conn.Close()
		}
	}()
	mctx, stopMetrics := context.WithCancel(context.Background())
	defer stopMetrics()
	c.metrics.Agents(n, 0)
	if c.cfg.MetricsListen != "" && c.cfg.Metrics == nil {
		addr, err := live.Serve(mctx, c.cfg.MetricsListen, c.metrics.Registry())
		if err != nil {
			return fmt.Errorf("cluster: metrics: %w", err)
		}
		if c.cfg.OnListen != nil {
			c.cfg.OnListen(addr.String())
		}
	}
	c.mu.Lock()
	c.clients = clients
	c.mu.Unlock()

	if err := c.prepareAll(ctx, clients); err != nil {
		// Agents that did prepare drop their plans.
		c.broadcastStop(clusterpb.StopRequest_KILL, loadgen.CauseSignal, "the run did not start").Wait()
		return err
	}
	select {
	case <-c.stopCh:
		c.broadcastStop(clusterpb.StopRequest_KILL, loadgen.CauseSignal, "the run did not start").Wait()
		return errors.New("cluster: stopped before the start")
	default:
	}

	start := time.Now().Add(c.cfg.StartMargin)
	if c.cfg.OnStart != nil {
		c.cfg.OnStart(start)
	}
	if c.k6m != nil {
		c.k6m.Start(start)
	} else {
		c.merger.Start(start)
	}
	c.rep.Start = start
	c.log.Info("starting", "run", c.cfg.RunID, "agents", n, "at", start)
	streams, cancelStreams := context.WithCancel(context.Background())
	defer cancelStreams()
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.follow(streams, i, clients[i], start)
		}()
	}
	all := make(chan struct{})
	go func() { wg.Wait(); close(all) }()
	done, killed := ctx.Done(), (<-chan struct{})(c.killCh)
	var giveUp <-chan time.Time
loop:
	for {
		select {
		case <-all:
			break loop
		case <-done:
			done = nil
			c.Kill(loadgen.CauseSignal, "context: "+context.Cause(ctx).Error())
		case <-killed:
			killed = nil
			giveUp = time.After(KillWait)
		case <-giveUp:
			cancelStreams() // agents without a final by now are lost
			giveUp = nil
		}
	}
	return nil
}

// prepareAll prepares every agent and measures its clock, in parallel.
func (c *Coordinator) prepareAll(ctx context.Context, clients []clusterpb.AgentClient) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.PrepareTimeout)
	defer cancel()
	go func() {
		select {
		case <-c.stopCh: // Stop before the start ends the wait
			cancel()
		case <-ctx.Done():
		}
	}()
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	for i, cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.prepare(ctx, i, cl)
		}()
	}
	wg.Wait()
	var failed []error
	for i, err := range errs {
		if err != nil {
			c.mu.Lock()
			c.rep.Agents[i].Status, c.rep.Agents[i].Error = AgentRefused, err.Error()
			c.mu.Unlock()
			failed = append(failed, fmt.Errorf("agent %s: %w", c.cfg.Agents[i], err))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("cluster: the run did not start: %w", errors.Join(failed...))
	}
	return nil
}

func (c *Coordinator) prepare(ctx context.Context, i int, cl clusterpb.AgentClient) error {
	req := &clusterpb.PrepareRequest{RunId: c.cfg.RunID, Segment: c.segs[i].String(), Sequence: c.segs[i].Sequence()}
	if p := c.k6plan; p != nil {
		req.ScenarioName, req.K6Archive, req.K6Args, req.DrillId = p.Name, p.Archive, p.Args, p.DrillID
	} else {
		req.ScenarioName, req.Scenario, req.Files, req.Target, req.DrillId = c.plan.Name, c.plan.Source, c.plan.Files, c.plan.Target, c.f.DrillID
	}
	// WaitForReady waits for an agent still starting; a certificate
	// either side rejects ends the wait at once.
	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	w := c.watches[i]
	go func() {
		select {
		case <-w.Rejected():
			cancel(w.Err())
		case <-pctx.Done():
		}
	}()
	resp, err := cl.Prepare(pctx, req, grpc.WaitForReady(true))
	switch {
	case err == nil:
	case w.Err() != nil:
		return rejectedErr(w.Err())
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("not ready within %v: %s", c.cfg.PrepareTimeout, status.Convert(err).Message())
	case ctx.Err() != nil:
		return errors.New("interrupted before the start")
	default:
		return errors.New(status.Convert(err).Message())
	}
	if c.k6plan == nil && len(resp.Series) != len(c.series) {
		return fmt.Errorf("it records %d series, this scenario has %d: do agent and coordinator run the same loadcap version?", len(resp.Series), len(c.series))
	}
	for j, s := range resp.Series {
		if c.k6plan != nil {
			break
		}
		if s.Scenario != c.series[j].Scenario || s.Name != c.series[j].Name {
			return fmt.Errorf("its series %d is %s/%s, here %s/%s", j, s.Scenario, s.Name, c.series[j].Scenario, c.series[j].Name)
		}
	}
	off, rtt, err := measureClock(ctx, cl)
	if err != nil {
		return fmt.Errorf("clock: %s", status.Convert(err).Message())
	}
	c.mu.Lock()
	a := &c.rep.Agents[i]
	a.Status, a.ClockOffset, a.ClockRTT = AgentReady, off, rtt
	c.mu.Unlock()
	c.log.Info("agent ready", "agent", c.cfg.Agents[i], "segment", c.segs[i].String(), "clock_offset", off, "rtt", rtt)
	return nil
}

// rejectedErr says that a TLS handshake with an agent failed over a
// certificate, whose, and what to check.
func rejectedErr(err error) error {
	s := err.Error()
	if strings.Contains(s, "remote error") {
		return fmt.Errorf("certificate rejected by the agent (%s): is this coordinator's --tls-cert signed by the CA of the agent's --client-ca?", s)
	}
	return fmt.Errorf("certificate rejected: the agent's certificate (%s): is it signed by the CA given as --ca, and for the address used?", s)
}

// measureClock estimates the agent's clock offset (agent − coordinator)
// from NTP-style exchanges: offset = ((t2−t1) + (t3−t4)) / 2 of the one
// with the shortest round trip, whose error is at most half that trip.
func measureClock(ctx context.Context, cl clusterpb.AgentClient) (offset, rtt time.Duration, err error) {
	rtt = -1
	for range clockSamples {
		t1 := time.Now()
		resp, err := cl.Clock(ctx, &clusterpb.ClockRequest{T1UnixNano: t1.UnixNano()})
		if err != nil {
			return 0, 0, err
		}
		t4 := time.Now()
		t2, t3 := time.Unix(0, resp.T2UnixNano), time.Unix(0, resp.T3UnixNano)
		trip := t4.Sub(t1) - t3.Sub(t2)
		if rtt < 0 || trip < rtt {
			// t1 and t4 as wall times: t2 and t3 carry no monotonic reading.
			w1, w4 := time.Unix(0, t1.UnixNano()), time.Unix(0, t4.UnixNano())
			rtt, offset = trip, (t2.Sub(w1)+t3.Sub(w4))/2
		}
	}
	return offset, rtt, nil
}

// follow streams agent i's snapshots into the merger until its final, its
// loss, or its silence.
func (c *Coordinator) follow(streams context.Context, i int, cl clusterpb.AgentClient, start time.Time) {
	ctx, cancel := context.WithCancel(streams)
	defer cancel()
	c.mu.Lock()
	agentStart := start.Add(c.rep.Agents[i].ClockOffset)
	c.mu.Unlock()
	stream, err := cl.Start(ctx, &clusterpb.StartRequest{RunId: c.cfg.RunID, StartUnixNano: agentStart.UnixNano()})
	if err != nil {
		c.lose(i, start, status.Convert(err).Message())
		return
	}
	received := false
	c.setConnected(+1)
	defer c.setConnected(-1)
	// An agent that goes silent is lost, also when its connection does
	// not say so (a partition; gRPC's client pings are 10 s apart).
	grace := time.Second
	if c.k6m != nil {
		grace = k6StartGrace // the child loads the archive and its VUs first
	}
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	var silent atomic.Bool
	go func() {
		tk := time.NewTicker(250 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tk.C:
				from := time.Unix(0, max(last.Load(), start.Add(grace).UnixNano()))
				if now.Sub(from) > AgentSilence {
					silent.Store(true)
					cancel()
					return
				}
			}
		}
	}()
	var sum AgentReport
	// An agent streams an interval a second: one lost was lost within a
	// second of the end of the last interval received (its own clock,
	// since the start), not when that was noticed; a coordinator that was
	// itself frozen (SIGSTOP) notices late.
	lastEnd := time.Duration(0)
	lostAt := func() time.Duration {
		at := time.Since(start)
		if c.k6m == nil {
			at = min(at, lastEnd+time.Second)
		}
		return at
	}
	for {
		msg, err := stream.Recv()
		if err != nil {
			reason := status.Convert(err).Message()
			if errors.Is(err, io.EOF) {
				reason = "stream ended without a final snapshot"
			}
			if silent.Load() {
				reason = fmt.Sprintf("no snapshot for %v", AgentSilence)
			}
			if !received && c.stopping.Load() && status.Code(err) == codes.FailedPrecondition {
				// Killed before the start: the agent dropped its plan.
				if c.k6m != nil {
					c.k6m.End(i, 0, "")
				} else {
					_ = c.merger.Finish(i, loadgen.Final{Status: loadgen.StatusAborted})
				}
				c.mu.Lock()
				c.rep.Agents[i].Status, c.ended[i] = AgentDone, true
				c.mu.Unlock()
				return
			}
			c.record(i, sum)
			c.loseAt(i, lostAt(), reason)
			return
		}
		last.Store(time.Now().UnixNano())
		received = true
		switch k := msg.Kind.(type) {
		case *clusterpb.Snapshot_K6Frame:
			if c.k6m == nil {
				c.lose(i, start, "a k6 frame in a scenario file's run")
				return
			}
			if err := c.k6m.Frame(i, k.K6Frame); err != nil {
				c.lose(i, start, err.Error())
				return
			}
		case *clusterpb.Snapshot_Interval:
			if c.k6m != nil {
				c.lose(i, start, "a scenario interval in a k6 run")
				return
			}
			end, err := c.interval(i, k.Interval, &sum)
			if err != nil {
				c.record(i, sum)
				c.lose(i, start, err.Error())
				return
			}
			lastEnd = max(lastEnd, end)
		case *clusterpb.Snapshot_Final:
			fin := decodeFinal(k.Final)
			t := fin.Totals
			c.record(i, AgentReport{Scheduled: t.Scheduled, Sent: t.Sent, Dropped: t.Dropped, Late: t.Late, MaxLag: t.MaxLag})
			if c.k6m != nil {
				// k6 ended on its own terms (an exception, test.abort()):
				// the merged result says so; the agent did its part.
				c.k6m.End(i, int(k.Final.K6ExitCode), k.Final.K6Error)
				c.mu.Lock()
				c.rep.Agents[i].Status, c.ended[i] = AgentDone, true
				if k.Final.K6ExitCode != 0 {
					c.rep.Agents[i].Error = fmt.Sprintf("k6 exit %d: %s", k.Final.K6ExitCode, k.Final.K6Error)
				}
				c.mu.Unlock()
				return
			}
			if err := c.merger.Finish(i, fin); err != nil {
				c.log.Error("agent's totals disagree with its snapshots", "agent", c.cfg.Agents[i], "err", err)
				c.mu.Lock()
				c.rep.Agents[i].Error = err.Error()
				c.mu.Unlock()
			}
			if fin.Status == loadgen.StatusAborted && !c.stopping.Load() {
				// It stopped on its own (shutting down, killed by its
				// operator): the rest of its segment is missing.
				c.lose(i, start, "aborted: "+fin.AbortReason)
				return
			}
			c.mu.Lock()
			c.rep.Agents[i].Status = AgentDone
			c.ended[i] = true
			c.mu.Unlock()
			return
		}
	}
}

// interval decodes agent i's interval, adds it to the agent's sums and
// merges it: the coordinator's whole per-snapshot cost besides gRPC's
// unmarshalling (BenchmarkCoordinatorSecond measures it for 100 agents).
// It returns the interval's end on the agent's clock.
func (c *Coordinator) interval(i int, iv *clusterpb.Interval, sum *AgentReport) (time.Duration, error) {
	s, err := decodeInterval(iv, len(c.series))
	if err != nil {
		return 0, err
	}
	sum.Scheduled += s.Scheduled
	sum.Dropped += s.Dropped
	sum.Late += s.Late
	sum.MaxLag = max(sum.MaxLag, s.MaxLag)
	for j := range s.Series {
		sum.Sent += s.Series[j].Sent
	}
	if s.Dropped > 0 || s.Late > 0 {
		c.log.Warn("agent cannot keep its rate", "agent", c.cfg.Agents[i], "interval", s.T, "dropped", s.Dropped, "late", s.Late, "max_lag", s.MaxLag)
	}
	abort, err := c.merger.Add(i, s)
	if err != nil {
		return 0, err
	}
	if abort != "" {
		c.log.Warn("threshold crossed: stopping the run", "reason", abort)
		c.Stop(loadgen.CauseThreshold, abort)
	}
	return s.End, nil
}

// record sets agent i's counts in the report.
func (c *Coordinator) record(i int, s AgentReport) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a := &c.rep.Agents[i]
	a.Scheduled, a.Sent, a.Dropped, a.Late, a.MaxLag = s.Scheduled, s.Sent, s.Dropped, s.Late, s.MaxLag
}

// lose marks agent i lost now: the run goes on without it, partial.
func (c *Coordinator) lose(i int, start time.Time, reason string) {
	c.loseAt(i, time.Since(start), reason)
}

// loseAt marks agent i lost at, since the start.
func (c *Coordinator) loseAt(i int, at time.Duration, reason string) {
	at = max(0, at)
	c.mu.Lock()
	a := &c.rep.Agents[i]
	a.Status, a.Error, a.LostAt = AgentLost, reason, at
	c.ended[i] = true
	c.mu.Unlock()
	c.log.Warn("agent lost", "agent", c.cfg.Agents[i], "at", at.Round(time.Millisecond), "share", c.segs[i].Share(), "reason", reason)
	l := loadgen.Lost{Agent: c.cfg.Agents[i], At: at, Share: c.segs[i].Share(), Reason: reason}
	if c.k6m != nil {
		c.k6m.Lose(i, l)
	} else {
		c.merger.Lose(i, l)
	}
}

func (c *Coordinator) setConnected(d int) {
	c.mu.Lock()
	c.connected += d
	n := c.connected
	c.mu.Unlock()
	c.metrics.Agents(len(c.cfg.Agents), n)
}

// segmentsOf returns the segments n agents run: sequence split among them
// (loadgen.Segments), or, with part set, the segments of sequence that lie
// within part, which must be exactly n and cover it.
func segmentsOf(sequence, part string, n int) ([]*loadgen.Segment, error) {
	if part == "" {
		return loadgen.Segments(sequence, n)
	}
	if sequence == "" {
		return nil, fmt.Errorf("execution segment %q: name the sequence of every coordinator's agents too, so that their parts add up", part)
	}
	from, to, err := ratSegment(part)
	if err != nil {
		return nil, err
	}
	all, err := loadgen.Segments(sequence, strings.Count(sequence, ","))
	if err != nil {
		return nil, err
	}
	var out []*loadgen.Segment
	covered := new(big.Rat).Set(from)
	for _, s := range all {
		a, b, err := ratSegment(s.String())
		if err != nil {
			return nil, err
		}
		if a.Cmp(from) >= 0 && b.Cmp(to) <= 0 {
			if a.Cmp(covered) != 0 {
				break
			}
			out, covered = append(out, s), b
		}
	}
	if covered.Cmp(to) != 0 || len(out) == 0 {
		return nil, fmt.Errorf("execution segment %q is not a run of whole segments of %q", part, sequence)
	}
	if len(out) != n {
		return nil, fmt.Errorf("execution segment %q holds %d segments of %q for %d agents", part, len(out), sequence, n)
	}
	return out, nil
}

// ratSegment parses "from:to" (fractions or decimals).
func ratSegment(s string) (from, to *big.Rat, err error) {
	a, b, ok := strings.Cut(s, ":")
	from, okA := new(big.Rat).SetString(strings.TrimSpace(a))
	to, okB := new(big.Rat).SetString(strings.TrimSpace(b))
	if !ok || !okA || !okB || from.Sign() < 0 || to.Cmp(from) <= 0 || to.Cmp(big.NewRat(1, 1)) > 0 {
		return nil, nil, fmt.Errorf("execution segment %q: want from:to with 0 <= from < to <= 1 (\"0:1/2\")", s)
	}
	return from, to, nil
}
