package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/loadgen/cluster/clusterpb"
	"github.com/loadcap/loadcap/loadgen/live"
	"github.com/loadcap/loadcap/scenarios"
)

// Agent defaults.
const (
	// DefaultPrepareTTL is how long an agent keeps a prepared plan that is
	// not started.
	DefaultPrepareTTL = 2 * time.Minute
	// MaxStartDelay is the furthest in the future a start may be set.
	MaxStartDelay = 5 * time.Minute
	// CoordinatorTimeout is how long an agent goes without hearing from
	// its coordinator before it stops generating: keepalive pings every
	// second, answered within two.
	CoordinatorTimeout = 3 * time.Second
	// warmTimeout bounds one connection test to a target at Prepare.
	warmTimeout = 3 * time.Second
)

// Causes of an agent's own abort (loadgen.Result.AbortCause).
const (
	CauseCoordinatorLost = "coordinator-lost"
	CauseTargetRefused   = "target-refused" // a replayed request aimed at a host not checked at prepare
)

// DefaultSecretHeaders are the header names whose values an agent never
// logs, besides AgentConfig.SecretHeaders.
var DefaultSecretHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie", "X-Api-Key", "X-Auth-Token"}

// ReplayFunc opens the replay source of a scenario file an agent prepares
// (f.Replay is set; its recording lies in the plan's directory). It calls
// f.SetReplayRequests and returns the whole recording's source (the engine
// takes the agent's segment of it) and every host (host:port) its requests
// go to, which the allow list checks. A source that is an io.Closer is
// closed after the run.
type ReplayFunc func(f *scenarios.File) (src loadgen.ReplaySource, hosts []string, err error)

// AgentConfig configures ServeAgent.
type AgentConfig struct {
	Listen string // host:port of the gRPC service, e.g. "0.0.0.0:7070"

	// Mutual TLS: the agent's certificate and key, and the CA that
	// coordinators' client certificates must chain to. TLS, when set, is
	// used instead and must require and verify client certificates.
	CertFile, KeyFile, ClientCAFile string
	TLS                             *tls.Config
	// Insecure serves plaintext, without client authentication; accepted
	// only when Listen is a loopback address.
	Insecure bool

	// AllowTargets lists the hosts and CIDR ranges the agent may send to
	// (ParseAllowList); empty allows loopback only.
	AllowTargets []string
	// SecretHeaders are header names whose values are never logged, besides
	// DefaultSecretHeaders.
	SecretHeaders []string

	MetricsListen string        // host:port for Prometheus metrics at /metrics; "" for none
	Replay        ReplayFunc    // nil refuses plans with replay:
	PrepareTTL    time.Duration // a prepared plan not started within it is dropped; 0 = DefaultPrepareTTL
	Logger        *slog.Logger  // nil discards
	// OnListen, when set, is called once the agent serves, with its bound
	// addresses (metrics "" when not served): Listen may ask for port 0.
	OnListen func(agent, metrics string)

	// K6Command starts the k6 child for a k6 archive (argv; k6.Child with
	// the k6 arguments appended), with K6Env added to its environment;
	// nil runs this executable's k6.ChildCommand (k6.FindChild).
	K6Command []string
	K6Env     []string

	// OnPart, when set, is called with the agent's own result of every
	// scenario run it finished (not of k6 archives), on its own clock and
	// without thresholds (the coordinator evaluates those over every part):
	// what it sent, to audit a merged result against (loadcap agent
	// --parts-dir writes it as a run.json).
	OnPart func(Part)

	now func() time.Time // the agent's clock; tests skew it
}

// ServeAgent serves the agent until ctx is done; then it kills a run in
// progress (the coordinator gets its final snapshot) and returns nil. The
// error is for failures to start serving or to keep serving.
func ServeAgent(ctx context.Context, cfg AgentConfig) error {
	creds, err := cfg.credentials()
	if err != nil {
		return err
	}
	allow := DefaultAllowList()
	if len(cfg.AllowTargets) > 0 {
		if allow, err = ParseAllowList(cfg.AllowTargets...); err != nil {
			return err
		}
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	if cfg.PrepareTTL <= 0 {
		cfg.PrepareTTL = DefaultPrepareTTL
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	a := &agent{cfg: cfg, allow: allow, log: log, metrics: live.New(), secrets: map[string]bool{}}
	a.metrics.Running(false) // loadcap_agent_running is 0 until a plan runs
	for _, h := range append(append([]string{}, DefaultSecretHeaders...), cfg.SecretHeaders...) {
		a.secrets[strings.ToLower(h)] = true
	}
	mctx, stopMetrics := context.WithCancel(context.Background())
	defer stopMetrics()
	var metricsAddr string
	if cfg.MetricsListen != "" {
		addr, err := live.Serve(mctx, cfg.MetricsListen, a.metrics.Registry())
		if err != nil {
			lis.Close()
			return fmt.Errorf("agent metrics: %w", err)
		}
		metricsAddr = addr.String()
	}
	if !cfg.Insecure {
		creds = handshakeLog{TransportCredentials: creds, log: log}
	}
	srv := grpc.NewServer(
		grpc.Creds(creds),
		grpc.MaxRecvMsgSize(MaxPlanSize+1<<20),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: time.Second, Timeout: CoordinatorTimeout - time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 500 * time.Millisecond, PermitWithoutStream: true}),
	)
	clusterpb.RegisterAgentServer(srv, a)
	log.Info("agent listening", "addr", lis.Addr().String(), "mtls", !cfg.Insecure, "allow", allow.String(), "metrics", metricsAddr)
	if cfg.OnListen != nil {
		cfg.OnListen(lis.Addr().String(), metricsAddr)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		return fmt.Errorf("agent: %w", err)
	case <-ctx.Done():
	}
	a.shutdown("agent shutting down: " + context.Cause(ctx).Error())
	done := make(chan struct{})
	go func() { srv.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		srv.Stop()
	}
	return nil
}

// credentials checks the security settings: mutual TLS, or plaintext on
// loopback only.
func (c *AgentConfig) credentials() (credentials.TransportCredentials, error) {
	if c.Insecure {
		if !isLoopback(c.Listen) {
			return nil, fmt.Errorf("agent: --insecure is accepted only on a loopback address, not %q: use mutual TLS (loadcap certs makes a CA and certificates)", c.Listen)
		}
		return insecure.NewCredentials(), nil
	}
	cfg := c.TLS
	if cfg == nil {
		if c.CertFile == "" || c.KeyFile == "" || c.ClientCAFile == "" {
			return nil, errors.New("agent: mutual TLS needs a certificate, its key and the client CA (--tls-cert, --tls-key, --client-ca); loadcap certs makes them")
		}
		var err error
		if cfg, err = ServerTLS(c.CertFile, c.KeyFile, c.ClientCAFile); err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
	} else if cfg.ClientAuth != tls.RequireAndVerifyClientCert || cfg.ClientCAs == nil {
		return nil, errors.New("agent: its TLS configuration must require and verify client certificates")
	}
	return credentials.NewTLS(cfg), nil
}

// agent is the gRPC service. It holds at most one plan, prepared or
// running.
type agent struct {
	clusterpb.UnimplementedAgentServer
	cfg     AgentConfig
	allow   *AllowList
	log     *slog.Logger
	metrics *live.Metrics
	secrets map[string]bool // lower-case header names

	mu       sync.Mutex
	prepared *plannedRun
	running  *plannedRun
	closed   bool
}

// Part is one agent's part of a distributed run (AgentConfig.OnPart).
type Part struct {
	RunID    string           // the coordinator's run id
	Scenario string           // the scenario file's name, as the coordinator sent it
	File     *scenarios.File  // the plan as the agent parsed it
	Segment  *loadgen.Segment // the agent's part of the load
	Result   *loadgen.Result
}

// plannedRun is a prepared plan: parsed, checked, an engine ready.
type plannedRun struct {
	id     string
	dir    string
	eng    *loadgen.Engine
	src    loadgen.ReplaySource
	snaps  chan *loadgen.Snapshot
	stop   chan struct{} // closed by a Stop before the start
	expire *time.Timer
	once   sync.Once

	k6 *k6Run // a k6 archive's run instead of eng

	name string // the scenario file's name
	file *scenarios.File
	seg  *loadgen.Segment
}

// stopper ends a run early: a loadgen.Engine or a k6.Runner.
type stopper interface {
	Stop(cause, reason string)
	Kill(cause, reason string)
}

// ctl is what stops p's run.
func (p *plannedRun) ctl() stopper {
	if p.k6 != nil {
		return p.k6.runner
	}
	return p.eng
}

func (p *plannedRun) cleanup() {
	p.once.Do(func() {
		if p.expire != nil {
			p.expire.Stop()
		}
		os.RemoveAll(p.dir)
		if c, ok := p.src.(io.Closer); ok {
			c.Close()
		}
	})
}

func (a *agent) shutdown(reason string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	if a.prepared != nil {
		a.prepared.cleanup()
		a.prepared = nil
	}
	if a.running != nil {
		a.running.ctl().Kill(loadgen.CauseSignal, reason)
	}
}

// peerName names the caller for logs: its certificate's subject, or its
// address.
func peerName(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "unknown"
	}
	if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 {
		return ti.State.PeerCertificates[0].Subject.CommonName + "@" + p.Addr.String()
	}
	return p.Addr.String()
}

// Prepare implements clusterpb.AgentServer.
func (a *agent) Prepare(ctx context.Context, req *clusterpb.PrepareRequest) (*clusterpb.PrepareResponse, error) {
	if req.RunId == "" {
		return nil, status.Error(codes.InvalidArgument, "prepare: no run id")
	}
	a.mu.Lock()
	if a.running != nil {
		id := a.running.id
		a.mu.Unlock()
		return nil, status.Errorf(codes.FailedPrecondition, "agent busy with run %s", id)
	}
	a.mu.Unlock()
	p, resp, err := a.prepare(ctx, req)
	if err != nil {
		a.log.Warn("plan refused", "run", req.RunId, "from", peerName(ctx), "err", err)
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.running != nil || a.closed {
		p.cleanup()
		return nil, status.Error(codes.FailedPrecondition, "agent busy or shutting down")
	}
	if a.prepared != nil {
		a.prepared.cleanup()
	}
	a.prepared = p
	p.expire = time.AfterFunc(a.cfg.PrepareTTL, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.prepared == p {
			a.prepared = nil
			p.cleanup()
			a.log.Info("prepared plan expired", "run", p.id)
		}
	})
	return resp, nil
}

// prepare does Prepare's work: materialize, parse, check, warm, build.
func (a *agent) prepare(ctx context.Context, req *clusterpb.PrepareRequest) (_ *plannedRun, _ *clusterpb.PrepareResponse, err error) {
	dir, err := os.MkdirTemp("", "loadcap-agent-")
	if err != nil {
		return nil, nil, status.Errorf(codes.Internal, "prepare: %v", err)
	}
	p := &plannedRun{id: req.RunId, dir: dir, stop: make(chan struct{})}
	defer func() {
		if err != nil {
			p.cleanup()
		}
	}()
	if len(req.K6Archive) > 0 {
		resp, err := a.prepareK6(ctx, req, p)
		if err != nil {
			return nil, nil, err
		}
		return p, resp, nil
	}
	plan := Plan{Name: req.ScenarioName, Source: req.Scenario, Files: req.Files, Target: req.Target}
	path, err := plan.materialize(dir)
	if err != nil {
		return nil, nil, status.Errorf(codes.InvalidArgument, "prepare: %v", err)
	}
	// Confined: the plan's file references are checked before anything
	// is opened, so it reads (and probes) nothing but what it shipped.
	opts := []scenarios.Option{scenarios.Confined()}
	if req.Target != "" {
		opts = append(opts, scenarios.WithTarget(req.Target))
	}
	f, err := scenarios.Parse(path, req.Scenario, opts...)
	if err != nil {
		return nil, nil, status.Errorf(codes.InvalidArgument, "prepare: %s", strings.ReplaceAll(err.Error(), dir+string(os.PathSeparator), ""))
	}
	if err := confine(f, dir); err != nil {
		return nil, nil, status.Errorf(codes.InvalidArgument, "prepare: %s", strings.ReplaceAll(err.Error(), dir+string(os.PathSeparator), ""))
	}
	if req.DrillId != f.DrillID {
		return nil, nil, status.Errorf(codes.InvalidArgument, "prepare: the plan says drill %q, its scenario %q", req.DrillId, f.DrillID)
	}
	hosts := map[string]bool{}
	if f.Target != "" {
		h, err := urlHost(f.Target)
		if err != nil {
			return nil, nil, status.Errorf(codes.InvalidArgument, "prepare: target: %v", err)
		}
		hosts[h] = true
	}
	var replayHosts map[string]bool
	if f.Replay != nil {
		if a.cfg.Replay == nil {
			return nil, nil, status.Error(codes.FailedPrecondition, "prepare: this agent cannot replay recordings")
		}
		src, hs, err := a.cfg.Replay(f)
		if err != nil {
			return nil, nil, status.Errorf(codes.InvalidArgument, "prepare: replay: %s", strings.ReplaceAll(err.Error(), dir+string(os.PathSeparator), ""))
		}
		p.src = src
		replayHosts = map[string]bool{}
		for _, h := range hs {
			hosts[h], replayHosts[h] = true, true
		}
	} else {
		for _, r := range f.Requests {
			if r.GRPC != nil {
				hosts[r.GRPC.Target] = true // a gRPC call dials its own target
				continue
			}
			hosts[r.Host] = true
		}
	}
	list := make([]string, 0, len(hosts))
	for h := range hosts {
		list = append(list, h)
	}
	sort.Strings(list)
	for _, h := range list {
		if err := a.allow.Check(ctx, h); err != nil {
			return nil, nil, status.Errorf(codes.PermissionDenied, "agent refuses the plan: %v; start the agent with --allow-target to permit it", err)
		}
	}
	seg, err := loadgen.NewSegment(req.Segment, req.Sequence)
	if err != nil {
		return nil, nil, status.Errorf(codes.InvalidArgument, "prepare: %v", err)
	}
	if err := warm(ctx, list); err != nil {
		return nil, nil, status.Errorf(codes.Unavailable, "prepare: %v", err)
	}
	f.Thresholds = nil // the coordinator evaluates them over every agent's results
	p.snaps = make(chan *loadgen.Snapshot, 4096)
	opts2 := []loadgen.Option{
		loadgen.WithSegment(seg),
		loadgen.WithSnapshots(func(s *loadgen.Snapshot) { p.snaps <- s }),
		loadgen.WithIntervalHook(a.metrics.Observe),
	}
	var guard *guardedSource
	if p.src != nil {
		guard = &guardedSource{src: p.src, hosts: replayHosts}
		opts2 = append(opts2, loadgen.WithReplay(guard))
	}
	if p.eng, err = loadgen.New(f, opts2...); err != nil {
		return nil, nil, status.Errorf(codes.InvalidArgument, "prepare: %v", err)
	}
	if guard != nil {
		eng := p.eng
		guard.refuse = func(host string) {
			eng.Kill(CauseTargetRefused, fmt.Sprintf("a recorded request goes to %q, not one of the hosts checked at prepare", host))
		}
	}
	p.name, p.file, p.seg = req.ScenarioName, f, seg
	resp := &clusterpb.PrepareResponse{Hosts: list}
	for _, s := range p.eng.Series() {
		resp.Series = append(resp.Series, &clusterpb.Series{Scenario: s.Scenario, Name: s.Name})
	}
	a.log.Info("plan prepared", "run", req.RunId, "from", peerName(ctx), "scenario", plan.Name,
		"segment", seg.String(), "sequence", seg.Sequence(), "hosts", list, "drill", f.DrillID)
	a.log.Debug("plan requests", "run", req.RunId, "requests", a.describe(f))
	return p, resp, nil
}

// urlHost returns a base URL's host:port.
func urlHost(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", err
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if strings.EqualFold(u.Scheme, "https") {
			port = "443"
		}
	}
	return net.JoinHostPort(u.Hostname(), port), nil
}

// warm opens (and closes) a connection to every host:port, so that an
// unreachable target fails the prepare instead of the run.
func warm(ctx context.Context, hosts []string) error {
	d := net.Dialer{Timeout: warmTimeout}
	for _, h := range hosts {
		if _, _, err := net.SplitHostPort(h); err != nil {
			continue // no port known: the run will tell
		}
		c, err := d.DialContext(ctx, "tcp", h)
		if err != nil {
			return fmt.Errorf("cannot reach target %s from the agent: %w", h, err)
		}
		c.Close()
	}
	return nil
}

// describe lists f's requests for a log, secret header values redacted.
func (a *agent) describe(f *scenarios.File) []string {
	hdrs := func(hs []scenarios.Header) string {
		var parts []string
		for _, h := range hs {
			v := "[redacted]"
			if !a.secrets[strings.ToLower(h.Name)] {
				v = h.Value.String()
			}
			parts = append(parts, h.Name+": "+v)
		}
		return strings.Join(parts, ", ")
	}
	out := []string{"default headers {" + hdrs(f.Headers) + "}"}
	for _, r := range f.Requests {
		path := ""
		if r.Path != nil {
			path = r.Path.String()
		}
		out = append(out, fmt.Sprintf("%s %s %s://%s%s {%s}", r.Name, r.Method, r.Scheme, r.Host, path, hdrs(r.Headers)))
	}
	return out
}

// guardedSource hands out a replay's items only for the hosts checked at
// prepare; an item for another host kills the run.
type guardedSource struct {
	src    loadgen.ReplaySource
	hosts  map[string]bool
	refuse func(host string)
	once   sync.Once
}

func (g *guardedSource) Next() (*loadgen.ReplayItem, bool) {
	it, ok := g.src.Next()
	if ok && !g.hosts[it.Host] {
		g.src.Release(it)
		g.once.Do(func() { g.refuse(it.Host) })
		return nil, false
	}
	return it, ok
}

func (g *guardedSource) Release(it *loadgen.ReplayItem) { g.src.Release(it) }

// Skip passes items over without handing them out.
func (g *guardedSource) Skip(n int64) int64 {
	if sk, ok := g.src.(loadgen.ReplaySkipper); ok {
		return sk.Skip(n)
	}
	for i := int64(0); i < n; i++ {
		it, ok := g.src.Next()
		if !ok {
			return i
		}
		g.src.Release(it)
	}
	return n
}

// Clock implements clusterpb.AgentServer.
func (a *agent) Clock(_ context.Context, req *clusterpb.ClockRequest) (*clusterpb.ClockResponse, error) {
	t2 := a.cfg.now().UnixNano()
	return &clusterpb.ClockResponse{T2UnixNano: t2, T3UnixNano: a.cfg.now().UnixNano()}, nil
}

// Start implements clusterpb.AgentServer.
func (a *agent) Start(req *clusterpb.StartRequest, stream clusterpb.Agent_StartServer) error {
	ctx := stream.Context()
	a.mu.Lock()
	p := a.prepared
	if p == nil || p.id != req.RunId {
		a.mu.Unlock()
		return status.Errorf(codes.FailedPrecondition, "no prepared run %s", req.RunId)
	}
	a.prepared, a.running = nil, p
	p.expire.Stop()
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.running = nil
		a.mu.Unlock()
		p.cleanup()
		a.metrics.Running(false)
	}()

	wait := time.Unix(0, req.StartUnixNano).Sub(a.cfg.now())
	if wait > MaxStartDelay {
		return status.Errorf(codes.InvalidArgument, "start is %v away, more than %v", wait.Round(time.Second), MaxStartDelay)
	}
	if wait < -100*time.Millisecond {
		a.log.Warn("start already passed: this agent's part runs late", "run", p.id, "late", -wait)
	}
	a.log.Info("run starting", "run", p.id, "in", wait.Round(time.Millisecond))
	if wait > 0 {
		tm := time.NewTimer(wait)
		select {
		case <-tm.C:
		case <-ctx.Done():
			tm.Stop()
			a.log.Warn("coordinator lost before the start", "run", p.id)
			return ctx.Err()
		case <-p.stop:
			tm.Stop()
			return stream.Send(&clusterpb.Snapshot{Kind: &clusterpb.Snapshot_Final{Final: &clusterpb.Final{
				Status: loadgen.StatusAborted, AbortCause: loadgen.CauseSignal, AbortReason: "stopped before the start"}}})
		}
	}
	select {
	case <-p.stop:
		return stream.Send(&clusterpb.Snapshot{Kind: &clusterpb.Snapshot_Final{Final: &clusterpb.Final{
			Status: loadgen.StatusAborted, AbortCause: loadgen.CauseSignal, AbortReason: "stopped before the start"}}})
	default:
	}
	if p.k6 != nil {
		return a.runK6(p, stream)
	}
	a.metrics.Running(true)
	type outcome struct {
		res *loadgen.Result
		err error
	}
	out := make(chan outcome, 1)
	go func() {
		res, err := p.eng.Run(context.Background())
		close(p.snaps) // Run has handed over its last snapshot
		out <- outcome{res, err}
	}()
	// The coordinator lost (stream broken, keepalive unanswered) stops the
	// run: an agent never generates load nobody watches.
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		select {
		case <-ctx.Done():
			a.log.Warn("coordinator lost: stopping the run", "run", p.id, "err", context.Cause(ctx))
			p.eng.Kill(CauseCoordinatorLost, "coordinator lost")
		case <-finished:
		}
	}()
	var sendErr error
	for s := range p.snaps {
		if sendErr != nil {
			continue // keep draining: the engine must never block on us
		}
		if sendErr = stream.Send(&clusterpb.Snapshot{Kind: &clusterpb.Snapshot_Interval{Interval: encodeInterval(s)}}); sendErr != nil {
			p.eng.Kill(CauseCoordinatorLost, "cannot send to the coordinator: "+sendErr.Error())
		}
	}
	o := <-out
	if o.err != nil {
		return status.Errorf(codes.Internal, "run: %v", o.err)
	}
	a.log.Info("run ended", "run", p.id, "status", o.res.Status, "reason", o.res.AbortReason,
		"sent", o.res.Totals.Sent, "dropped", o.res.Totals.Dropped)
	if a.cfg.OnPart != nil {
		a.cfg.OnPart(Part{RunID: p.id, Scenario: p.name, File: p.file, Segment: p.seg, Result: o.res})
	}
	if sendErr != nil {
		return sendErr
	}
	return stream.Send(&clusterpb.Snapshot{Kind: &clusterpb.Snapshot_Final{Final: encodeFinal(loadgen.FinalOf(o.res))}})
}

// Stop implements clusterpb.AgentServer.
func (a *agent) Stop(ctx context.Context, req *clusterpb.StopRequest) (*clusterpb.StopResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.running != nil && a.running.id == req.RunId:
		cause := req.Cause
		if cause == "" {
			cause = loadgen.CauseSignal
		}
		if req.Mode == clusterpb.StopRequest_KILL {
			a.running.ctl().Kill(cause, req.Reason)
		} else {
			a.running.ctl().Stop(cause, req.Reason)
		}
	case a.prepared != nil && a.prepared.id == req.RunId:
		p := a.prepared
		if req.Mode == clusterpb.StopRequest_KILL {
			// The run will not start: drop the plan.
			a.prepared = nil
			p.cleanup()
			break
		}
		select {
		case <-p.stop:
		default:
			close(p.stop)
		}
	default:
		return nil, status.Errorf(codes.NotFound, "no run %s", req.RunId)
	}
	a.log.Info("stop", "run", req.RunId, "from", peerName(ctx), "mode", req.Mode.String(), "reason", req.Reason)
	return &clusterpb.StopResponse{}, nil
}
