package k6

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/scenarios"
)

// NoRequests is the request name of the one empty series a result gets
// when the script sent no HTTP or gRPC request at all.
const NoRequests = "(no requests)"

// maxFrame bounds one line of the child's stream.
const maxFrame = 64 << 20

// collector rebuilds the run from the frames of one or more k6 children,
// each running a segment of one test (a part). The set of series is
// known only as requests happen, while a loadgen.Merger needs it up front:
// whenever a new series (or a latency above the merger's histogram top)
// shows up, the merger is rebuilt and every interval so far replayed into
// it, with progress and the interval hook muted. Names appear in a run's
// first seconds, and DefaultMaxSeries bounds them. The intervals replayed
// wait in an ivLog (memory, then a temporary file), and the merger keeps
// only the last keep of them when keep is set (the caller streams every
// second to disk through hook): a run of any length costs flat memory.
//
// Its methods are called one at a time (Runner.Run's reader; Merge holds
// a lock); outcome comes last.
type collector struct {
	path       string
	thresholds []scenarios.Threshold
	progress   *muteWriter
	live       bool
	hook       func(loadgen.Interval)
	stop       func(cause, reason string)
	frameHook  func(line []byte) // every frame as received, before it is merged
	keep       int               // intervals the merger keeps (loadgen.WithIntervalRetention); 0 all
	log        ivLog             // every interval received, for rebuild

	parts   []*partState
	start   time.Time
	startAt bool // start set by the caller (Merge), not by part 0's first interval
	names   []seriesName
	index   map[seriesName]int
	maxUs   int64
	iters   map[string]*Iterations
	checks  map[checkKey]*Check

	// single-part view of parts[0], kept for Runner and the tests
	hello *helloFrame
	final *finalFrame

	m          *loadgen.Merger
	mSeries    int   // series the merger has
	mNames     int   // len(names) when it was built
	mTop       int64 // µs its histograms hold
	perm       []int // series number → the merger's series position
	replaying  bool
	abortCause string
	abortWhy   string
}

// partState is what one part (a k6 child) sent.
type partState struct {
	hello   *helloFrame
	final   *finalFrame
	local   []int               // the part's series number → the collector's
	status  []map[int]int64     // per collector series, cumulative
	samples []map[string]string // per collector series, cumulative
	n       int                 // intervals received
	lastEnd time.Duration       // the last one's End
	busy    time.Duration
	sums    loadgen.Totals
	peak    int
	ended   *loadgen.Final // set when the part ended normally
	lost    *loadgen.Lost  // set when it was lost
}

// storedInterval is one interval as received, its histograms decoded.
type storedInterval struct {
	T         int
	End       time.Duration
	Dropped   int64
	Busy      time.Duration // cumulative
	VUs, Peak int
	Series    []storedDelta
}

type storedDelta struct {
	i                    int // the collector's series number
	completed, failed    int64
	sum                  time.Duration
	hist                 *hdr.PackedHistogram
	classes              [loadgen.NumClasses]int64
	bytesSent, bytesRecv int64
}

// muteWriter drops what is written while muted (a replay).
type muteWriter struct {
	w     io.Writer
	muted bool
}

func (m *muteWriter) Write(p []byte) (int, error) {
	if m.muted {
		return len(p), nil
	}
	return m.w.Write(p)
}

// classIndex maps loadgen's class names to their index in
// SeriesDelta.Classes; unknown names count as "other".
var classIndex = func() map[string]int {
	m := map[string]int{}
	for c := 1; c < loadgen.NumClasses; c++ {
		m[loadgen.ClassName(uint8(c))] = c
	}
	return m
}()

func classOf(name string) int {
	if i, ok := classIndex[name]; ok {
		return i
	}
	return classIndex["other"]
}

// part returns part i's state, creating the parts up to it.
func (c *collector) part(i int) *partState {
	for len(c.parts) <= i {
		p := &partState{}
		for range c.names {
			p.status = append(p.status, map[int]int64{})
			p.samples = append(p.samples, map[string]string{})
		}
		c.parts = append(c.parts, p)
	}
	return c.parts[i]
}

// read consumes part 0's stream until EOF.
func (c *collector) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxFrame)
	for sc.Scan() {
		if c.frameHook != nil {
			c.frameHook(sc.Bytes())
		}
		if err := c.line(0, sc.Bytes()); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("k6 child stream: %w", err)
	}
	return nil
}

// line takes one frame of part's stream, as JSON.
func (c *collector) line(part int, b []byte) error {
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("k6 child stream: %w", err)
	}
	p := c.part(part)
	switch {
	case f.Hello != nil:
		p.hello = f.Hello
		if part == 0 {
			c.hello = f.Hello
		}
	case f.Interval != nil:
		if err := c.intervalOf(part, f.Interval); err != nil {
			return fmt.Errorf("k6 child stream: %w", err)
		}
	case f.Final != nil:
		p.final = f.Final
		if part == 0 {
			c.final = f.Final
		}
	}
	return nil
}

// interval takes part 0's next interval frame and merges it.
func (c *collector) interval(f *intervalFrame) error { return c.intervalOf(0, f) }

// intervalOf takes part's next interval frame and merges it.
func (c *collector) intervalOf(part int, f *intervalFrame) error {
	p := c.part(part)
	if p.ended != nil || p.lost != nil {
		return fmt.Errorf("interval %d after the end", f.T)
	}
	if f.T != p.n {
		return fmt.Errorf("interval %d after %d intervals", f.T, p.n)
	}
	if f.T == 0 && !c.startAt && c.start.IsZero() {
		c.start = time.Unix(0, f.Start)
	}
	for _, n := range f.NewSeries {
		g, ok := c.index[n]
		if !ok {
			if c.index == nil {
				c.index = map[seriesName]int{}
			}
			g = len(c.names)
			c.index[n] = g
			c.names = append(c.names, n)
			for _, q := range c.parts {
				q.status = append(q.status, map[int]int64{})
				q.samples = append(q.samples, map[string]string{})
			}
		}
		p.local = append(p.local, g)
	}
	si := &storedInterval{T: f.T, End: f.End, Dropped: f.Dropped, VUs: f.VUs, Peak: f.PeakVUs}
	var sent int64
	for _, d := range f.Series {
		if d.I < 0 || d.I >= len(p.local) {
			return fmt.Errorf("interval %d: series %d of %d", f.T, d.I, len(p.local))
		}
		g := p.local[d.I]
		h, err := decodeHist(d.Hist)
		if err != nil {
			return fmt.Errorf("interval %d: %w", f.T, err)
		}
		if h != nil {
			c.maxUs = max(c.maxUs, h.Max())
		}
		sd := storedDelta{i: g, completed: d.Completed, failed: d.Failed, sum: d.Sum, hist: h, bytesSent: d.BytesSent, bytesRecv: d.BytesRecv}
		for name, n := range d.Classes {
			sd.classes[classOf(name)] += n
		}
		for code, n := range d.Status {
			p.status[g][code] += n
		}
		for cl, msg := range d.Samples {
			if _, ok := p.samples[g][cl]; !ok {
				p.samples[g][cl] = msg
			}
		}
		// Requests are seen only when done, so in flight is 0 at every
		// interval's end, and ∫ inflight dt adds each request's whole
		// duration in the interval it ended.
		p.busy += d.Sum
		sent += d.Completed + d.Failed
		p.sums.Completed += d.Completed
		p.sums.Failed += d.Failed
		p.sums.BytesSent += d.BytesSent
		p.sums.BytesRecv += d.BytesRecv
		si.Series = append(si.Series, sd)
	}
	si.Busy = p.busy
	p.sums.Sent += sent
	p.sums.Dropped += f.Dropped
	p.sums.Scheduled += sent + f.Dropped
	p.peak = max(p.peak, f.PeakVUs)
	for _, it := range f.Iters {
		if err := c.addIters(it); err != nil {
			return fmt.Errorf("interval %d: %w", f.T, err)
		}
	}
	for _, ch := range f.Checks {
		k := checkKey{group: ch.Group, name: ch.Name}
		if c.checks[k] == nil {
			c.checks[k] = &Check{Group: ch.Group, Name: ch.Name}
		}
		c.checks[k].Passes += ch.Pass
		c.checks[k].Fails += ch.Fail
	}
	p.n, p.lastEnd = p.n+1, si.End
	if c.m == nil || len(c.names) > c.mNames || c.maxUs >= c.mTop {
		if err := c.rebuild(); err != nil {
			return err
		}
	}
	c.log.add(part, si)
	return c.add(part, si)
}

func (c *collector) addIters(d iterDelta) error {
	h, err := decodeHist(d.Hist)
	if err != nil {
		return err
	}
	it := c.iters[d.Scenario]
	if it == nil {
		it = &Iterations{Scenario: d.Scenario, Duration: hdr.New(1, maxHistTop, histDigits)}
		c.iters[d.Scenario] = it
	}
	it.Count += d.Count
	if h != nil {
		h.MergeInto(it.Duration)
	}
	return nil
}

// add merges one stored interval of part into the merger.
func (c *collector) add(part int, si *storedInterval) error {
	abort, err := c.m.Add(part, c.snapshot(c.parts[part], si))
	if err != nil {
		return err
	}
	if abort != "" && c.stop != nil {
		c.stop(loadgen.CauseThreshold, abort)
	}
	return nil
}

// snapshot is si of p as a Snapshot of the current merger's series.
func (c *collector) snapshot(p *partState, si *storedInterval) *loadgen.Snapshot {
	s := &loadgen.Snapshot{
		T: si.T, End: si.End, Dropped: si.Dropped, Busy: si.Busy, VUs: si.VUs, PeakVUs: si.Peak, Steal: -1, // k6 runs in a child: no stall watch
		Series: make([]loadgen.SeriesDelta, c.mSeries),
	}
	s.Scheduled = si.Dropped
	for _, d := range si.Series {
		sd := &s.Series[c.perm[d.i]]
		*sd = loadgen.SeriesDelta{
			Sent: d.completed + d.failed, Completed: d.completed, Failed: d.failed,
			BytesSent: d.bytesSent, BytesRecv: d.bytesRecv,
			ServiceSum: d.sum, LatencySum: d.sum, Classes: d.classes,
			// k6 times a request from its actual send: there is no
			// intended send time, so latency and service time are one.
			Latency: d.hist, Service: d.hist,
			// The merger keeps the last cumulative maps it was given and
			// reads them in Result: the live ones are the last.
			StatusCodes: p.status[d.i], ErrorSamples: p.samples[d.i],
		}
		s.Scheduled += sd.Sent
	}
	return s
}

// file builds the scenario file the merger needs: the script's scenarios,
// each with the request names it used, and the caller's thresholds.
func (c *collector) file() *scenarios.File {
	timeout := scenarios.DefaultTimeout
	if top := time.Duration(c.maxUs)*time.Microsecond + time.Second; top > timeout {
		timeout = top.Round(time.Second) + time.Second
	}
	f := &scenarios.File{Path: c.path, Timeout: timeout, Thresholds: c.thresholds}
	var order []string
	reqs := map[string][]int{}
	add := func(sc string) {
		if _, ok := reqs[sc]; !ok {
			reqs[sc] = []int{}
			order = append(order, sc)
		}
	}
	var planned time.Duration
	for _, p := range c.parts {
		if p.hello != nil {
			for _, sc := range p.hello.Scenarios {
				add(sc)
			}
			planned = max(planned, p.hello.Planned)
		}
	}
	reqIdx := map[string]int{}
	names := c.names
	if len(names) == 0 {
		sc := "default"
		if len(order) > 0 {
			sc = order[0]
		}
		names = []seriesName{{Scenario: sc, Name: NoRequests}}
	}
	for _, n := range names {
		add(n.Scenario)
		i, ok := reqIdx[n.Name]
		if !ok {
			i = len(f.Requests)
			reqIdx[n.Name] = i
			f.Requests = append(f.Requests, scenarios.Request{Name: n.Name, Weight: 1})
		}
		reqs[n.Scenario] = append(reqs[n.Scenario], i)
	}
	w := scenarios.Workload{Model: scenarios.Closed, StartVUs: 1, VUStages: []scenarios.VUStage{{Target: 1, Duration: planned}}}
	for _, sc := range order {
		f.Scenarios = append(f.Scenarios, f.NewScenario(sc, w, reqs[sc]))
	}
	return f
}

// rebuild makes a merger for the series known now and replays every
// logged interval, and every part's end, into it.
func (c *collector) rebuild() error {
	f := c.file()
	var opts []loadgen.Option
	if c.progress != nil {
		opts = append(opts, loadgen.WithProgress(c.progress, c.live))
	}
	opts = append(opts, loadgen.WithIntervalHook(func(iv loadgen.Interval) {
		if !c.replaying && c.hook != nil {
			c.hook(iv)
		}
	}))
	if c.keep > 0 {
		opts = append(opts, loadgen.WithIntervalRetention(c.keep))
	}
	c.part(0)
	m, err := loadgen.NewMerger(f, len(c.parts), opts...)
	if err != nil {
		return err
	}
	m.Start(c.start)
	pos := map[loadgen.Series]int{}
	series := loadgen.SeriesOf(f)
	for j, s := range series {
		pos[s] = j
	}
	c.perm = make([]int, len(c.names))
	for i, n := range c.names {
		c.perm[i] = pos[loadgen.Series{Scenario: n.Scenario, Name: n.Name}]
	}
	c.m, c.mSeries, c.mNames = m, len(series), len(c.names)
	c.mTop = (f.Timeout + time.Second).Microseconds()
	if c.abortCause != "" {
		m.Abort(c.abortCause, c.abortWhy)
	}
	c.replaying = true
	if c.progress != nil {
		c.progress.muted = true
	}
	defer func() {
		c.replaying = false
		if c.progress != nil {
			c.progress.muted = false
		}
	}()
	// In the order they came, so that the merger holds at most a few
	// seconds that wait for another part.
	if err := c.log.each(c.add); err != nil {
		return err
	}
	for i, p := range c.parts {
		switch {
		case p.ended != nil:
			_ = m.Finish(i, *p.ended)
		case p.lost != nil:
			m.Lose(i, *p.lost)
		}
	}
	return nil
}

// partFinal is part p's loadgen.Final, from its own sums (so they agree).
func partFinal(p *partState) loadgen.Final {
	fin := loadgen.Final{Status: loadgen.StatusPassed, Totals: p.sums, MaxVUs: p.peak}
	fin.Duration = p.lastEnd
	if p.final != nil {
		fin.Duration = max(fin.Duration, p.final.End)
	}
	return fin
}

// ensure makes sure a merger exists for every series known.
func (c *collector) ensure() error {
	if c.m == nil || len(c.names) > c.mNames {
		return c.rebuild()
	}
	return nil
}

// outcome ends the merge of one part. The run is aborted with cause when
// cause is set (the caller stopped it), else as k6 says it ended; exit is
// k6's exit code. The Result is nil when the test never started.
func (c *collector) outcome(exit int, cause, reason, k6err string) *Outcome {
	defer c.log.close()
	out := &Outcome{ExitCode: exit, Err: k6err}
	c.fillCounts(out)
	p := c.part(0)
	if p.hello == nil && p.n == 0 {
		return out
	}
	if err := c.ensure(); err != nil {
		out.Err = err.Error()
		return out
	}
	fin := partFinal(p)
	if cause == "" {
		cause, reason = k6Cause(p.final, exit)
	}
	if cause != "" {
		fin.Status, fin.AbortCause, fin.AbortReason = loadgen.StatusAborted, cause, reason
		c.m.Abort(cause, reason)
	}
	p.ended = &fin
	// The sums are of the intervals merged, so they always agree.
	_ = c.m.Finish(0, fin)
	res := c.m.Result()
	if p.final != nil {
		for _, t := range p.final.Thresholds {
			v := math.NaN()
			if t.Value != nil {
				v = *t.Value
			}
			res.Thresholds = append(res.Thresholds, loadgen.ThresholdResult{
				Metric: t.Metric, Expr: t.Expr, Passed: !t.Failed, Value: v, Abort: t.Abort,
			})
			if t.Failed && res.Status == loadgen.StatusPassed {
				res.Status = loadgen.StatusFailed
			}
		}
	}
	out.Result = res
	return out
}

// fillCounts copies the iterations and checks into out, sorted.
func (c *collector) fillCounts(out *Outcome) {
	for _, sc := range sortedKeys(c.iters) {
		out.Iterations = append(out.Iterations, *c.iters[sc])
	}
	for _, ch := range c.checks {
		out.Checks = append(out.Checks, *ch)
	}
	slices.SortFunc(out.Checks, func(a, b Check) int {
		if x := strings.Compare(a.Group, b.Group); x != 0 {
			return x
		}
		return strings.Compare(a.Name, b.Name)
	})
}

// CauseScript is Result.AbortCause when k6 ended the test early for a
// reason of its own: a script exception, test.abort(), a setup or
// teardown timeout, an output's error.
const CauseScript = "script"

// k6Cause is why k6 stopped the test early, "" when it ran to its end.
func k6Cause(f *finalFrame, exit int) (cause, reason string) {
	if f == nil {
		switch exit {
		case 0:
			return "", ""
		case exitExternalAbort:
			return loadgen.CauseSignal, "k6 stopped by a signal"
		}
		return CauseScript, fmt.Sprintf("k6 exited with code %d before reporting its end", exit)
	}
	switch f.AbortReason {
	case abortUser:
		return loadgen.CauseSignal, f.Error
	case abortThreshold:
		return loadgen.CauseThreshold, f.Error
	case abortScript:
		return CauseScript, f.Error
	}
	return "", ""
}
