// Package loadgen is loadcap's load engine: it paces requests by the open
// (arrival-rate) or closed (virtual-user) model, sends them through
// loadgen/httpc, and records every outcome in HDR histograms (Recorder).
//
// Latency contract (docs/ARCHITECTURE.md): in the open model a request's latency runs
// from its intended send time on the arrival schedule, so a stalled server
// shows in the percentiles even when every VU is busy; arrivals that find no
// free VU under maxVUs are counted as dropped, never lost. In the closed
// model latency runs from the actual send.
package loadgen

import (
	"context"
	"fmt"
	"io"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loadcap/loadcap/loadgen/httpc"
	"github.com/loadcap/loadcap/loadgen/stall"
	"github.com/loadcap/loadcap/scenarios"
)

// Abort causes, in Result.AbortCause.
const (
	CauseSignal    = "signal"
	CauseThreshold = "threshold"
)

// Engine runs the scenarios of one file. Create it with New, run it once
// with Run; Stop and Kill may be called from any goroutine.
type Engine struct {
	f      *scenarios.File
	o      options
	rec    *Recorder
	tr     *httpc.Transport
	grpc   *grpcTargets // nil without gRPC requests
	watch  *stall.Watch // while Run runs
	mixes  []mix        // by scenario
	series []Series
	index  map[Series]int

	stopOnce, killOnce sync.Once
	stopCh, killCh     chan struct{}
	mu                 sync.Mutex
	reason, cause      string

	vuSeq     atomic.Int64
	activeVUs atomic.Int64
	peakVUs   atomic.Int64
	timeout   time.Duration // per request
	total     time.Duration // planned length: max over scenarios of startTime + duration
}

type options struct {
	progress  io.Writer
	live      bool
	plainEach int // plain progress: one line every plainEach intervals
	transport func(httpc.Options) httpc.Options
	onRotate  func(Interval)
	replay    ReplaySource
	seg       *Segment
	snapshots func(*Snapshot)
	partSegs  []*Segment // a Merger's parts' segments
	keep      int        // WithIntervalRetention
	noPoll    bool       // WithoutEventLoops
}

// Option tunes an Engine.
type Option func(*options)

// WithProgress writes progress to w after every interval: live rewrites
// one line in place (a terminal), otherwise one plain line every 5 s.
func WithProgress(w io.Writer, live bool) Option {
	return func(o *options) { o.progress, o.live = w, live }
}

// WithTransportOptions lets the caller adjust the HTTP client options that
// New derives from the scenario file.
func WithTransportOptions(fn func(httpc.Options) httpc.Options) Option {
	return func(o *options) { o.transport = fn }
}

// WithIntervalHook calls fn after every 1-second interval closes, on the
// engine's ticker goroutine.
func WithIntervalHook(fn func(Interval)) Option {
	return func(o *options) { o.onRotate = fn }
}

// WithIntervalRetention keeps only about the last n closed intervals in
// memory (between n and 2n) for the Result, whose Earlier counts those let
// go; n <= 0 keeps them all. It is for long runs whose intervals a hook
// streams to disk as they close (reports.IntervalStream): the engine's
// memory then stays flat however long the run.
func WithIntervalRetention(n int) Option {
	return func(o *options) { o.keep = max(n, 0) }
}

// WithoutEventLoops runs every VU on a goroutine of its own, the way VUs
// run whenever a file needs more than plain HTTP/1.1 in closed scenarios
// (see pollPool): for comparing the two and for tests.
func WithoutEventLoops() Option { return func(o *options) { o.noPoll = true } }

// New prepares an engine for f.
func New(f *scenarios.File, opts ...Option) (*Engine, error) {
	o := options{plainEach: 5}
	for _, fn := range opts {
		fn(&o)
	}
	if len(f.Scenarios) == 0 || len(f.Requests) == 0 {
		return nil, fmt.Errorf("%s: nothing to run: no scenarios or no requests", f.Path)
	}
	if f.Replay != nil && o.replay == nil {
		return nil, fmt.Errorf("%s: replay: needs a replay source (WithReplay)", f.Path)
	}
	if o.seg != nil && o.replay != nil {
		o.replay = SegmentReplay(o.replay, o.seg)
	}
	e := &Engine{f: f, o: o, stopCh: make(chan struct{}), killCh: make(chan struct{})}
	e.series, e.index = seriesOf(f)
	var top time.Duration
	e.timeout, top, e.total = limits(f)
	e.rec = NewRecorder(e.series, top)
	e.rec.keep = o.keep
	ho := httpc.Options{Timeout: e.timeout, HTTP2: f.HTTP2, UserAgent: "loadcap"}
	if f.Insecure {
		ho.TLSConfig = insecureTLS()
	}
	if o.transport != nil {
		ho = o.transport(ho)
	}
	vus := 0
	for i := range f.Scenarios {
		vus += f.Scenarios[i].Workload.MaxVUsNeeded()
	}
	var err error
	if e.grpc, err = prepareGRPC(f, vus); err != nil {
		return nil, err
	}
	for i := range f.Scenarios {
		m := newMix(f, &f.Scenarios[i], e.index)
		if e.grpc != nil {
			if err := m.addGRPC(f, e.grpc); err != nil {
				e.grpc.close()
				return nil, err
			}
		}
		e.mixes = append(e.mixes, m)
	}
	e.tr = httpc.NewTransport(ho)
	return e, nil
}

// seriesOf lists what the recorder keeps apart for f, in the order every
// engine and Merger of f share.
func seriesOf(f *scenarios.File) ([]Series, map[Series]int) {
	var series []Series
	index := map[Series]int{}
	for i := range f.Scenarios {
		sc := &f.Scenarios[i]
		for _, ri := range sc.Requests {
			k := Series{Scenario: sc.Name, Name: f.Requests[ri].Name}
			if _, ok := index[k]; !ok {
				index[k] = len(series)
				series = append(series, k)
			}
		}
	}
	return series, index
}

// SeriesOf lists the series an engine running f records, in the order of
// Snapshot.Series.
func SeriesOf(f *scenarios.File) []Series {
	s, _ := seriesOf(f)
	return s
}

// limits returns f's per-request timeout, the top of its histograms and
// its planned length.
func limits(f *scenarios.File) (timeout, top, total time.Duration) {
	timeout = f.Timeout
	if timeout <= 0 {
		timeout = scenarios.DefaultTimeout
	}
	for _, sc := range f.Scenarios {
		w := sc.Workload
		if end := w.StartTime + w.Duration(); end > total {
			total = end
		}
		// The longest latency a request can show: its arrival waits out a
		// full timeout plus the graceful stop.
		if t := timeout + w.GracefulStop + time.Second; t > top {
			top = t
		}
	}
	return timeout, top, total
}

// Stop ends the run early and gracefully: no new requests are scheduled,
// in-flight ones get their scenario's gracefulStop to finish, and the result
// has status aborted with the reason.
func (e *Engine) Stop(cause, reason string) {
	e.stopOnce.Do(func() {
		e.mu.Lock()
		e.cause, e.reason = cause, reason
		e.mu.Unlock()
		close(e.stopCh)
	})
}

// Kill ends the run at once: like Stop, without the graceful wait.
func (e *Engine) Kill(cause, reason string) {
	e.Stop(cause, reason)
	e.killOnce.Do(func() { close(e.killCh) })
}

// PlannedDuration is the run's length without graceful stops.
func (e *Engine) PlannedDuration() time.Duration { return e.total }

// Run runs every scenario to its end (or until Stop, Kill or ctx is done,
// which kills) and returns what was measured. The error is for the engine's
// own failures; request failures are data in the Result.
func (e *Engine) Run(ctx context.Context) (*Result, error) {
	open := 0
	for _, sc := range e.f.Scenarios {
		if sc.Workload.Model == scenarios.Open {
			open++
		}
	}
	defer runtime.GOMAXPROCS(pacerProcs(open))
	watch := stall.Start()
	defer watch.Stop()
	e.watch = watch
	start := time.Now()
	e.rec.Start(start)
	var wg sync.WaitGroup
	for i := range e.f.Scenarios {
		sr := &scenarioRun{e: e, sc: &e.f.Scenarios[i], mix: e.mixes[i]}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sr.run(start)
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	prog := newProgress(e.o.progress, e.o.live, e.o.plainEach, e.total)
loop:
	for {
		select {
		case <-done:
			break loop
		case <-ctx.Done():
			e.Kill(CauseSignal, "context: "+context.Cause(ctx).Error())
			<-done
			break loop
		case now := <-tick.C:
			iv := e.rotate(now)
			prog.interval(iv, int(e.activeVUs.Load()))
			if e.o.onRotate != nil {
				e.o.onRotate(iv)
			}
			e.checkAbort(now.Sub(start))
		}
	}
	end := time.Now()
	last := e.rotate(end)
	if e.o.onRotate != nil {
		e.o.onRotate(last)
	}
	e.tr.Close()
	e.grpc.close()
	res := e.rec.result()
	res.Started, res.Ended, res.Duration = start, end, end.Sub(start)
	res.MaxVUs = int(e.peakVUs.Load())
	res.Thresholds = evaluate(e.f, e.f.Thresholds, res)
	res.Status = StatusPassed
	for _, t := range res.Thresholds {
		if !t.Passed {
			res.Status = StatusFailed
		}
	}
	e.mu.Lock()
	if e.cause != "" {
		res.Status, res.AbortCause, res.AbortReason = StatusAborted, e.cause, e.reason
	}
	e.mu.Unlock()
	prog.finish(res)
	return res, nil
}

// rotate closes an interval, handing its snapshot to WithSnapshots.
func (e *Engine) rotate(now time.Time) Interval {
	if e.watch != nil {
		h := e.watch.Take()
		e.rec.noteHost(h.Max, h.Steal)
	}
	if e.o.snapshots == nil {
		return e.rec.Rotate(now)
	}
	snap := &Snapshot{}
	iv := e.rec.rotate(now, snap)
	snap.VUs = int(e.activeVUs.Load())
	snap.PeakVUs = int(e.peakVUs.Load())
	e.o.snapshots(snap)
	return iv
}

// checkAbort evaluates abortOnFail thresholds once their delay has passed.
func (e *Engine) checkAbort(elapsed time.Duration) {
	if reason := abortReason(e.f, e.rec, elapsed); reason != "" {
		e.Stop(CauseThreshold, reason)
	}
}

// abortReason evaluates the abortOnFail thresholds of f whose delay has
// passed against what rec holds, and names the first one crossed; "" when
// none is.
func abortReason(f *scenarios.File, rec *Recorder, elapsed time.Duration) string {
	var due []scenarios.Threshold
	for _, t := range f.Thresholds {
		if t.AbortOnFail && elapsed >= t.DelayAbortEval {
			due = append(due, t)
		}
	}
	if len(due) == 0 {
		return ""
	}
	res := rec.result()
	res.Duration = elapsed
	for _, r := range evaluate(f, due, res) {
		if !r.Passed {
			return fmt.Sprintf("threshold %s %s crossed (value %.4g), abortOnFail", r.Metric, r.Expr, r.Value)
		}
	}
	return ""
}

// scenarioRun is one scenario's execution.
type scenarioRun struct {
	e   *Engine
	sc  *scenarios.Scenario
	mix mix

	stopping atomic.Bool  // no new requests
	idle     atomic.Int64 // open model: VUs waiting for an arrival
	hardStop atomic.Bool  // in-flight requests no longer count: they are in flight at stop
	vuWG     sync.WaitGroup
	mu       sync.Mutex
	vus      map[*vu]struct{} // not yet exited: the hard stop closes their clients
}

func (s *scenarioRun) run(runStart time.Time) {
	w := &s.sc.Workload
	t0 := runStart.Add(w.StartTime)
	if !s.sleepUntil(t0) {
		return
	}
	if w.Model == scenarios.Open {
		s.runOpen(t0)
	} else {
		s.runClosed(t0)
	}
	s.finish()
}

// sleepUntil waits for t; false when the engine stopped first.
func (s *scenarioRun) sleepUntil(t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return !s.stopped()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-s.e.stopCh:
		return false
	}
}

func (s *scenarioRun) stopped() bool {
	select {
	case <-s.e.stopCh:
		return true
	default:
		return false
	}
}

// finish waits up to gracefulStop for the scenario's VUs, then abandons what
// is still in flight.
func (s *scenarioRun) finish() {
	s.stopping.Store(true)
	done := make(chan struct{})
	go func() { s.vuWG.Wait(); close(done) }()
	tm := time.NewTimer(s.sc.Workload.GracefulStop)
	defer tm.Stop()
	select {
	case <-done:
		return
	case <-tm.C:
	case <-s.e.killCh:
	}
	s.hardStop.Store(true)
	s.mu.Lock()
	for v := range s.vus {
		if v.client != nil {
			v.client.Close()
		}
		if v.gcancel != nil {
			v.gcancel()
		}
	}
	s.mu.Unlock()
	<-done
}

func (s *scenarioRun) newVU() *vu { return s.newVUWith(true) }

// newVUWith makes a VU; one that runs on an event loop (client false) has
// no Client.
func (s *scenarioRun) newVUWith(client bool) *vu {
	id := int(s.e.vuSeq.Add(1))
	v := &vu{id: id, s: s}
	if client {
		v.client = s.e.tr.NewClient()
	}
	v.rd.st = s.e.f.NewState(id)
	if s.e.grpc != nil {
		// Created here, not lazily: finish may cancel it from another
		// goroutine.
		v.g = &vuGRPC{}
		v.g.ctx, v.gcancel = context.WithCancel(context.Background())
	}
	s.mu.Lock()
	if s.vus == nil {
		s.vus = map[*vu]struct{}{}
	}
	s.vus[v] = struct{}{}
	s.mu.Unlock()
	if n := s.e.activeVUs.Add(1); n > s.e.peakVUs.Load() {
		s.e.peakVUs.Store(n) // only the ticker reads it; a lost race costs nothing
	}
	s.vuWG.Add(1)
	return v
}

// runOpen paces arrivals and hands each to an idle VU, growing the pool up
// to maxVUs. When every VU is busy, arrivals wait in a FIFO backlog (as in
// wrk2) and are sent late, their latency still counted from the intended
// time: that is what keeps a stall visible in the percentiles under a VU
// cap. An arrival is dropped only when the backlog is full, when it waited
// longer than the request timeout, or when the scenario ends first.
func (s *scenarioRun) runOpen(t0 time.Time) {
	if n := reserveLoops(s.openLoops()); n > 0 && s.runOpenOnLoops(t0, n) {
		return
	}
	w := &s.sc.Workload
	rec := s.e.rec
	work := make(chan arrival, backlogSize(w))
	src := s.e.replaySource()
	timed := src != nil && s.e.f.Replay.Mode == scenarios.ReplayTimed
	seg := s.e.o.seg
	pre := seg.scaleVUs(w.PreAllocatedVUs)
	maxVUs := max(seg.scaleVUs(w.MaxVUs), pre)
	// With a segment, this engine sends only the arrivals it owns.
	var owned *stripe
	if seg != nil {
		owned = &stripe{s: seg}
	}
	nvus := 0
	for ; nvus < pre; nvus++ {
		v := s.newVU()
		go v.openLoop(work, arrival{})
	}
	sched := newSchedule(w.StartRatePerSec, w.RateStages)
	tm := time.NewTimer(time.Hour)
	tm.Stop()
	defer tm.Stop()
	defer preciseThread()()
	for {
		var a arrival
		var off time.Duration
		var ok bool
		if timed {
			// The recording is the schedule.
			if a.item, ok = src.Next(); ok {
				off = a.item.At
			}
		} else if off, ok = nextArrival(sched, owned); ok && src != nil {
			a.item, ok = src.Next()
		}
		if !ok {
			break
		}
		intended := t0.Add(off)
		a.t = intended
		if d := time.Until(intended); d > 0 {
			if !waitUntil(intended, tm, s.e.stopCh) {
				break
			}
		} else {
			if s.stopped() {
				break
			}
			rec.Lag(-d)
		}
		rec.Scheduled(1)
		if s.idle.Load() == 0 && nvus < maxVUs {
			nvus++
			v := s.newVU()
			go v.openLoop(work, a)
			continue
		}
		select {
		case work <- a:
		default:
			rec.Dropped() // backlog full
			s.release(a.item)
		}
	}
	// The scenario lasts its full duration even after its last arrival.
	s.sleepUntil(t0.Add(w.Duration()))
	s.stopping.Store(true)
	close(work)
}

// nextArrival is the offset of the schedule's next arrival, or of the next
// one owned when owned is set.
func nextArrival(sched *schedule, owned *stripe) (time.Duration, bool) {
	if owned == nil {
		return sched.Next()
	}
	return sched.At(owned.next())
}

// endGrace is how long an arrival may have waited for a VU and still be
// sent after its scenario ended: long enough for an idle VU to wake, far
// shorter than a backlog waits.
const endGrace = 10 * time.Millisecond

// backlogSize bounds the open model's queue of late arrivals: ten seconds
// of the peak rate, within [1024, 1M] entries.
func backlogSize(w *scenarios.Workload) int {
	peak := w.StartRatePerSec
	for _, st := range w.RateStages {
		peak = math.Max(peak, st.TargetPerSec)
	}
	return int(math.Min(math.Max(peak*10, 1024), 1<<20))
}

// runClosed keeps the planned number of VUs looping until the end.
func (s *scenarioRun) runClosed(t0 time.Time) {
	w := &s.sc.Workload
	end := t0.Add(w.Duration())
	var active []*vu
	pool := newPollPool(s)
	defer pool.close()
	tm := time.NewTimer(0)
	defer tm.Stop()
	for {
		now := time.Now()
		if !now.Before(end) {
			break
		}
		target := int(s.e.o.seg.Scale(int64(vuTarget(w, now.Sub(t0)))))
		for len(active) < target {
			if v := pool.add(); v != nil {
				active = append(active, v)
				continue
			}
			v := s.newVU()
			active = append(active, v)
			go v.closedLoop()
		}
		for len(active) > target {
			active[len(active)-1].quit.Store(true)
			active = active[:len(active)-1]
		}
		next := 50 * time.Millisecond
		if len(w.VUStages) == 1 && w.VUStages[0].Target == w.StartVUs {
			next = end.Sub(now) // constant: nothing to adjust
		}
		if r := end.Sub(now); r < next {
			next = r
		}
		tm.Reset(next)
		select {
		case <-tm.C:
		case <-s.e.stopCh:
			return
		}
	}
}

// vuTarget is the number of VUs a closed workload plans at offset t: linear
// between stages, rounded towards the earlier stage's value (k6 adds a VU
// when the ramp reaches it and removes one when the ramp falls past it).
func vuTarget(w *scenarios.Workload, t time.Duration) int {
	from := float64(w.StartVUs)
	var at time.Duration
	for _, st := range w.VUStages {
		if t < at+st.Duration {
			frac := float64(t-at) / float64(st.Duration)
			v := from + (float64(st.Target)-from)*frac
			if float64(st.Target) >= from {
				return int(math.Floor(v + 1e-9))
			}
			return int(math.Ceil(v - 1e-9))
		}
		at += st.Duration
		from = float64(st.Target)
	}
	return int(from)
}

// vu is one virtual user: a connection, generator state and buffers, used by
// one goroutine.
type vu struct {
	id      int
	s       *scenarioRun
	client  httpc.Client
	rd      renderer
	res     httpc.Result
	out     Outcome
	quit    atomic.Bool
	g       *vuGRPC            // gRPC state; nil when the file has no gRPC requests
	gcancel context.CancelFunc // ends g's calls (a hard stop)

	// on an event loop (pollLoop) instead of a goroutine of its own
	x     *httpc.Exchange
	pent  *entry    // the request in flight
	psent time.Time // ... its send time
	pint  time.Time // ... and its arrival time (open model; zero in the closed)
}

func (v *vu) exit() {
	if v.client != nil {
		v.client.Close()
	}
	if v.gcancel != nil {
		v.gcancel()
	}
	// A VU that left is forgotten: ramps that come and go for a day must
	// not keep every VU they made (its client's buffers with it).
	v.s.mu.Lock()
	delete(v.s.vus, v)
	v.s.mu.Unlock()
	v.s.e.activeVUs.Add(-1)
	v.s.vuWG.Done()
}

func (v *vu) openLoop(work <-chan arrival, first arrival) {
	defer v.exit()
	if !first.t.IsZero() {
		v.do(first.t, first.item)
	}
	s := v.s
	for {
		s.idle.Add(1)
		a, ok := <-work
		s.idle.Add(-1)
		if !ok {
			return
		}
		intended := a.t
		// Arrivals queued longer than a request may take are never sent,
		// and the scenario's end cuts off a backlog; an arrival handed out
		// just before the end, which only waited for a VU to wake, still
		// goes.
		wait := time.Since(intended)
		if wait > s.e.timeout || (s.stopping.Load() && wait > endGrace) {
			s.e.rec.Dropped()
			s.release(a.item)
			continue
		}
		v.do(intended, a.item)
	}
}

func (v *vu) closedLoop() {
	defer v.exit()
	for !v.quit.Load() && !v.s.stopping.Load() && !v.s.stopped() {
		v.s.e.rec.Scheduled(1)
		var it *ReplayItem
		if src := v.s.e.replaySource(); src != nil {
			var ok bool
			if it, ok = src.Next(); !ok {
				v.s.e.rec.Dropped() // the source failed: counted, never sent
				return
			}
		}
		v.do(time.Time{}, it)
	}
}

// do sends one request: item when replaying, else the next of the mix.
// intended is the arrival time (zero in the closed model, where latency
// runs from the actual send).
func (v *vu) do(intended time.Time, item *ReplayItem) {
	var ent *entry
	var req *httpc.Request
	if item != nil {
		ent = &v.s.mix.entries[item.Request]
		req = v.rd.replay(item, ent)
		defer v.s.release(item)
	} else {
		ent = v.s.mix.pick(v.rd.st)
		if ent.grpc != nil {
			v.doGRPC(intended, ent)
			return
		}
		req = v.rd.render(ent)
	}
	sent := v.send(ent, req)
	if intended.IsZero() {
		intended = sent
	}
	v.res = httpc.Result{}
	v.client.Do(req, &v.res)
	end := time.Now()
	if v.s.hardStop.Load() {
		return // abandoned at the hard stop: counted as in flight at stop
	}
	v.record(ent, req, intended, sent, end, &v.res)
}

// send counts req, an HTTP request of ent, as sent now, and returns now:
// its send time, from which its timeout runs too (the client spares a
// clock read of its own).
func (v *vu) send(ent *entry, req *httpc.Request) time.Time {
	sent := time.Now()
	v.s.e.rec.Sent(ent.name, v.id, sent)
	req.Now = sent
	return sent
}

// record records the outcome res of req, an HTTP request of ent.
func (v *vu) record(ent *entry, req *httpc.Request, intended, sent, end time.Time, res *httpc.Result) {
	e := v.s.e
	o := &v.out
	*o = Outcome{
		Name:      ent.name,
		Latency:   end.Sub(intended),
		Service:   end.Sub(sent),
		End:       end,
		Status:    res.Status,
		BytesSent: res.BytesSent,
		BytesRecv: res.BytesReceived,
	}
	switch {
	case res.Class != httpc.ClassNone:
		o.Class = uint8(res.Class)
		if res.Err != nil && e.rec.WantSample(ent.name, o.Class) {
			o.Err = res.Err.Error()
		}
	case res.Status >= 500:
		o.Class = class5xx
	case res.Status >= 400:
		o.Class = class4xx
	}
	if o.Class >= class4xx && e.rec.WantSample(ent.name, o.Class) {
		o.Err = fmt.Sprintf("%s %s: HTTP %d", req.Method, req.Target, res.Status)
	}
	e.rec.Record(v.id, o)
}
