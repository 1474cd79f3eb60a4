package loadgen

import (
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram geometry (docs/ARCHITECTURE.md): microseconds, 1 µs up to the top, 3
// significant digits.
const (
	histLowest     = 1
	histDigits     = 3
	DefaultHistTop = 60 * time.Second
)

// Error classes of failed requests: the transport classes of httpc (timeout,
// refused, reset, dns, tls, protocol, other), the HTTP status classes, and
// one class per gRPC status code other than OK (grpc_canceled ...
// grpc_unauthenticated). New classes go at the end: agents and
// coordinators exchange classes by number.
const (
	class4xx = uint8(numTransportClasses + iota)
	class5xx
	classGRPC  // gRPC code 1 (Canceled); code c is classGRPC + c - 1
	numClasses = classGRPC + numGRPCCodes
)

// numGRPCCodes is the number of gRPC status codes besides OK.
const numGRPCCodes = 16

// Series names what the recorder keeps apart: one request of one scenario.
type Series struct{ Scenario, Name string }

// Outcome is what one request came to, as the recorder sees it.
type Outcome struct {
	Name      int           // index of the series (Recorder's series order)
	Latency   time.Duration // response end − intended send time
	Service   time.Duration // response end − actual send time
	Status    int           // 0 without a response
	Class     uint8         // 0 = success, else an error class
	BytesSent int64
	BytesRecv int64
	End       time.Time // when the response ended
	Err       string    // a sample message for the class (only read when Class != 0 and the class has none yet)
}

// counters is the per-name set of counts the recorder keeps.
type counters struct {
	Completed, Failed    int64
	BytesSent, BytesRecv int64
	ServiceSum           time.Duration // Σ service time: its time average is the mean concurrency
	LatencySum           time.Duration // Σ latency from the intended send time
	Classes              [numClasses]int64
}

func (c *counters) add(o *counters) {
	c.Completed += o.Completed
	c.Failed += o.Failed
	c.BytesSent += o.BytesSent
	c.BytesRecv += o.BytesRecv
	c.ServiceSum += o.ServiceSum
	c.LatencySum += o.LatencySum
	for i := range c.Classes {
		c.Classes[i] += o.Classes[i]
	}
}

// shardName is one request name's state inside one shard: what arrived since
// the last interval rotation.
type shardName struct {
	lat, svc *hdr.Histogram
	cur      counters
	status   map[int]int64 // cumulative, never rotated
}

type shard struct {
	mu    sync.Mutex
	names []shardName
	// The shard's requests since the start, for the in-flight integral:
	// sends (their count and the sum of their times, µs since start) and
	// completions (count and sum of end times), all under mu, so that one
	// read sees a consistent shard. Read apart, a request sent or ended
	// while an interval closed moved the integral by its time (seconds).
	// last is the latest of those times.
	sent, sendSum, done, endSum, last int64
	_                                 [64]byte // keep shards on separate cache lines
}

// Recorder aggregates outcomes into HDR histograms per series (scenario and
// request name), overall and per 1-second interval. Record is safe for concurrent use; VUs spread
// over shards so that they rarely contend. Rotate is called by one goroutine
// (the engine's ticker) once per second.
type Recorder struct {
	series []Series
	names  []string // distinct request names, in first-seen order
	top    int64    // histogram top, µs
	shards []shard

	sent      []atomic.Int64 // per name, counted before the request is written
	scheduled atomic.Int64
	dropped   atomic.Int64
	late      atomic.Int64 // arrivals dispatched more than LateAfter behind schedule
	maxLag    atomic.Int64 // ns

	mu        sync.Mutex // guards everything below (rotation state and results)
	start     time.Time
	lat, svc  []*hdr.Histogram // overall per name
	totals    []counters       // overall per name
	status    []map[int]int64
	errSample []map[string]string
	intervals []Interval
	lastSent  int64
	lastDrop  int64
	lastSched int64
	host      hostReading // for the next rotation (noteHost)
	maxStall  time.Duration
	stealSum  float64 // Σ known intervals' steal share
	stealN    int
	packL     []*hdr.PackedHistogram // per series, reused each rotation
	packS     []*hdr.PackedHistogram
	allPacked *hdr.PackedHistogram            // interval latency, all series
	perName   map[string]*hdr.PackedHistogram // interval latency per request name

	// keep bounds intervals (WithIntervalRetention): past 2·keep, all but
	// the last keep are let go; earlier counts them and earlierStalled
	// those of them HostStalled. 0 keeps every interval. Guarded by mu.
	keep, earlier, earlierStalled int

	samples sync.Map        // "name\x00class" → the first error message seen
	sampled []atomic.Uint32 // per name: bit c set once class c has a sample

	// Snapshots (WithSnapshots): what the last rotation had sent.
	lastSentS []int64 // per series, at the last rotation
	lastLate  int64
}

// NewRecorder returns a recorder for the given series. top is the highest
// latency the histograms hold; larger values are clamped to it.
func NewRecorder(series []Series, top time.Duration) *Recorder {
	if top < DefaultHistTop {
		top = DefaultHistTop
	}
	r := &Recorder{series: series, top: top.Microseconds(), perName: map[string]*hdr.PackedHistogram{}}
	for _, sr := range series {
		if _, ok := r.perName[sr.Name]; !ok {
			r.perName[sr.Name] = r.newPacked()
			r.names = append(r.names, sr.Name)
		}
	}
	n := runtime.GOMAXPROCS(0)
	if n > 8 {
		n = 8
	}
	r.shards = make([]shard, n)
	for i := range r.shards {
		r.shards[i].names = make([]shardName, len(series))
		for j := range series {
			r.shards[i].names[j] = shardName{lat: r.newHist(), svc: r.newHist(), status: map[int]int64{}}
		}
	}
	r.sent = make([]atomic.Int64, len(series))
	r.lastSentS = make([]int64, len(series))
	r.sampled = make([]atomic.Uint32, len(series))
	for range series {
		r.lat = append(r.lat, r.newHist())
		r.svc = append(r.svc, r.newHist())
		r.packL = append(r.packL, r.newPacked())
		r.packS = append(r.packS, r.newPacked())
		r.status = append(r.status, map[int]int64{})
		r.errSample = append(r.errSample, map[string]string{})
	}
	r.totals = make([]counters, len(series))
	r.allPacked = r.newPacked()
	return r
}

func (r *Recorder) newHist() *hdr.Histogram { return hdr.New(histLowest, r.top, histDigits) }

func (r *Recorder) newPacked() *hdr.PackedHistogram {
	return hdr.NewPacked(histLowest, r.top, histDigits)
}

// Start marks the run's start: interval 0 begins now.
func (r *Recorder) Start(t time.Time) {
	r.mu.Lock()
	r.start = t
	r.mu.Unlock()
}

// Scheduled counts n arrivals the schedule produced (open model) or
// iterations begun (closed model).
func (r *Recorder) Scheduled(n int64) { r.scheduled.Add(n) }

// LateAfter is how far behind its schedule the pacer may dispatch an
// arrival before the run reports the generator as saturated.
const LateAfter = 10 * time.Millisecond

// hostReading is what the engine's stall watch saw during an interval.
type hostReading struct {
	stall time.Duration
	steal float64
	set   bool
}

// noteHost hands the recorder the stall watch's reading for the interval
// the next rotation closes.
func (r *Recorder) noteHost(stall time.Duration, steal float64) {
	r.mu.Lock()
	r.host = hostReading{stall, steal, true}
	r.mu.Unlock()
}

// StallAfter is how long the generator may be kept from running before a
// run reports its latency figures as disturbed by its host.
const StallAfter = 10 * time.Millisecond

// StealAfter is the share of the host's CPU time its hypervisor may give
// to other guests before a run reports its figures as disturbed.
const StealAfter = 0.05

// HostStalled tells whether a stall or steal share (as in Interval and
// Totals) means the generator's host, not the target, may have set some of
// the latency figures.
func HostStalled(stall time.Duration, steal float64) bool {
	return stall > StallAfter || steal > StealAfter
}

// Lag notes that the pacer (or an event loop pacing its own arrivals)
// dispatched an arrival d after its intended time.
func (r *Recorder) Lag(d time.Duration) {
	if d > LateAfter {
		r.late.Add(1)
	}
	for {
		m := r.maxLag.Load()
		if int64(d) <= m || r.maxLag.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// Dropped counts an arrival that found no free VU (the in-flight cap).
func (r *Recorder) Dropped() { r.dropped.Add(1) }

// Sent counts a request about to be written at time at; shardHint is the
// same as Record's. Every Sent is later matched by a Record, or the request
// is in flight when the run stops.
func (r *Recorder) Sent(name, shardHint int, at time.Time) {
	r.sent[name].Add(1)
	s := &r.shards[shardHint%len(r.shards)]
	us := at.Sub(r.start).Microseconds()
	s.mu.Lock()
	s.sent++
	s.sendSum += us
	s.last = max(s.last, us)
	s.mu.Unlock()
}

// Record adds one finished request. shard is any small integer (the VU's
// number); it only spreads contention.
func (r *Recorder) Record(shardHint int, o *Outcome) {
	s := &r.shards[shardHint%len(r.shards)]
	lat := clampMicros(o.Latency, r.top)
	svc := clampMicros(o.Service, r.top)
	s.mu.Lock()
	sn := &s.names[o.Name]
	_ = sn.lat.RecordValue(lat)
	_ = sn.svc.RecordValue(svc)
	if o.Class == 0 {
		sn.cur.Completed++
	} else {
		sn.cur.Failed++
		sn.cur.Classes[o.Class]++
	}
	sn.cur.BytesSent += o.BytesSent
	sn.cur.BytesRecv += o.BytesRecv
	sn.cur.ServiceSum += o.Service
	sn.cur.LatencySum += o.Latency
	end := o.End.Sub(r.start).Microseconds()
	s.done++
	s.endSum += end
	s.last = max(s.last, end)
	if o.Status != 0 {
		sn.status[o.Status]++
	}
	s.mu.Unlock()
	if o.Class != 0 && o.Err != "" {
		r.samples.LoadOrStore(seriesKey(o.Name, ClassName(o.Class)), o.Err)
		r.sampled[o.Name].Or(1 << o.Class)
	}
}

// WantSample reports whether an error message of this class is still
// wanted for this name, so that callers format one only when it is.
func (r *Recorder) WantSample(name int, class uint8) bool {
	return r.sampled[name].Load()&(1<<class) == 0
}

func clampMicros(d time.Duration, top int64) int64 {
	v := d.Microseconds()
	if v < histLowest {
		return histLowest
	}
	if v > top {
		return top
	}
	return v
}

// Rotate closes the current interval: everything recorded since the last
// rotation becomes interval number len(intervals), and is added to the
// overall figures. inflight is sampled by the caller at the same moment.
func (r *Recorder) Rotate(now time.Time) Interval { return r.rotate(now, nil) }

// rotate is Rotate; when snap is not nil (an engine WithSnapshots), it
// also fills snap with the interval's per-series figures.
func (r *Recorder) rotate(now time.Time, snap *Snapshot) Interval {
	r.mu.Lock()
	defer r.mu.Unlock()
	iv := Interval{
		T:     r.earlier + len(r.intervals),
		End:   now.Sub(r.start),
		Hists: make(map[string]*hdr.PackedHistogram, len(r.names)),
		Stall: r.host.stall,
		Steal: r.host.steal,
	}
	if !r.host.set {
		iv.Steal = -1
	}
	r.host = hostReading{}
	r.maxStall = max(r.maxStall, iv.Stall)
	if iv.Steal >= 0 {
		r.stealSum += iv.Steal
		r.stealN++
	}
	// Each shard's dense histograms are drained through a packed one: one
	// linear scan each, after which every merge costs only the populated
	// buckets. On a one-core generator this runs between the pacer's
	// arrivals, so it must stay well under a millisecond.
	for _, h := range r.perName {
		h.Reset()
	}
	r.allPacked.Reset()
	cs := make([]counters, len(r.series))
	if snap != nil {
		snap.Series = make([]SeriesDelta, len(r.series))
	}
	var sentTotal int64
	for j, sr := range r.series {
		pl, ps := r.packL[j], r.packS[j]
		pl.Reset()
		ps.Reset()
		for i := range r.shards {
			s := &r.shards[i]
			s.mu.Lock()
			sn := &s.names[j]
			if sn.lat.TotalCount() > 0 { // an idle series costs no scan
				pl.MergeFrom(sn.lat)
				ps.MergeFrom(sn.svc)
				sn.lat.Reset()
				sn.svc.Reset()
			}
			cs[j].add(&sn.cur)
			sn.cur = counters{}
			if snap != nil {
				sd := &snap.Series[j]
				if sd.StatusCodes == nil {
					sd.StatusCodes = map[int]int64{}
				}
				for code, n := range sn.status {
					sd.StatusCodes[code] += n
				}
			}
			s.mu.Unlock()
		}
		pl.MergeInto(r.lat[j])
		ps.MergeInto(r.svc[j])
		r.allPacked.Merge(pl)
		r.perName[sr.Name].Merge(pl)
		sj := r.sent[j].Load()
		sentTotal += sj
		if snap != nil {
			r.fillDelta(&snap.Series[j], j, sj, &cs[j])
		}
		r.totals[j].add(&cs[j])
		iv.Completed += cs[j].Completed
		iv.Failed += cs[j].Failed
		iv.BytesSent += cs[j].BytesSent
		iv.BytesRecv += cs[j].BytesRecv
		iv.ServiceSum += cs[j].ServiceSum
		iv.LatencySum += cs[j].LatencySum
		for c := range cs[j].Classes {
			iv.Classes[c] += cs[j].Classes[c]
		}
	}
	iv.Latency = summarizePacked(r.allPacked)
	for name, h := range r.perName {
		if h.TotalCount() > 0 {
			c := h.Clone()
			c.Compact()
			iv.Hists[name] = c
		}
	}
	drop, sched := r.dropped.Load(), r.scheduled.Load()
	iv.Sent = sentTotal - r.lastSent
	iv.Dropped = drop - r.lastDrop
	iv.Scheduled = sched - r.lastSched
	r.lastSent, r.lastDrop, r.lastSched = sentTotal, drop, sched
	var done int64
	for j := range r.totals {
		done += r.totals[j].Completed + r.totals[j].Failed
	}
	iv.Inflight = sentTotal - done
	// ∫₀ᵀ inflight dt = T·inflight(T) − Σ send times + Σ end times: the
	// exact time integral, requests straddling the edges included. Each
	// shard is read whole at once, and T is the interval's end or, when a
	// send or an end read is later (it happened while the interval
	// closed), that: no time counts back from the future. A request of a
	// shard that ends after the shard was read is counted in flight to T,
	// past its end by at most the time the reads took (a shard has at
	// most its VUs' in flight); the next interval takes that back.
	var sent, sendSum, ended, endTimes int64
	at := iv.End.Microseconds()
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		sent, sendSum = sent+sh.sent, sendSum+sh.sendSum
		ended, endTimes = ended+sh.done, endTimes+sh.endSum
		at = max(at, sh.last)
		sh.mu.Unlock()
	}
	iv.Busy = time.Duration(at*(sent-ended)-sendSum+endTimes) * time.Microsecond
	r.retainLocked(iv)
	if snap != nil {
		late := r.late.Load()
		*snap = Snapshot{
			T: iv.T, End: iv.End, Scheduled: iv.Scheduled, Dropped: iv.Dropped,
			Late: late - r.lastLate, MaxLag: time.Duration(r.maxLag.Load()),
			Inflight: iv.Inflight, Busy: iv.Busy, Series: snap.Series,
			Stall: iv.Stall, Steal: iv.Steal,
		}
		r.lastLate = late
	}
	return iv
}

// Retain keeps only about the last n closed intervals for the result
// (between n and 2n; n <= 0 keeps them all), as WithIntervalRetention does
// for an engine's recorder. Call it before the first Rotate.
func (r *Recorder) Retain(n int) {
	r.mu.Lock()
	r.keep = max(n, 0)
	r.mu.Unlock()
}

// retainLocked keeps a closed interval for the result. With a retention
// bound, the intervals past it are let go in one copy every keep
// rotations, so a run of any length holds at most 2·keep of them (their
// consumers had them from the interval hook as they closed).
func (r *Recorder) retainLocked(iv Interval) {
	r.intervals = append(r.intervals, iv)
	if r.keep <= 0 || len(r.intervals) < 2*r.keep {
		return
	}
	cut := len(r.intervals) - r.keep
	for _, old := range r.intervals[:cut] {
		if HostStalled(old.Stall, old.Steal) {
			r.earlierStalled++
		}
	}
	r.earlier += cut
	r.intervals = append(make([]Interval, 0, 2*r.keep), r.intervals[cut:]...)
}

// fillDelta completes series j's part of a snapshot: sent is its Sent
// counter as read for this rotation, c its counters since the last one.
// packL and packS hold its histograms since then.
func (r *Recorder) fillDelta(sd *SeriesDelta, j int, sent int64, c *counters) {
	sd.Sent = sent - r.lastSentS[j]
	r.lastSentS[j] = sent
	sd.Completed, sd.Failed = c.Completed, c.Failed
	sd.BytesSent, sd.BytesRecv = c.BytesSent, c.BytesRecv
	sd.ServiceSum, sd.LatencySum = c.ServiceSum, c.LatencySum
	sd.Classes = c.Classes
	if r.packL[j].TotalCount() > 0 {
		sd.Latency, sd.Service = r.packL[j].Clone(), r.packS[j].Clone()
		sd.Latency.Compact()
		sd.Service.Compact()
	}
	if bits := r.sampled[j].Load(); bits != 0 {
		sd.ErrorSamples = map[string]string{}
		for c := range numClasses {
			if bits&(1<<c) == 0 {
				continue
			}
			cn := ClassName(c)
			if v, ok := r.samples.Load(seriesKey(j, cn)); ok {
				sd.ErrorSamples[cn] = v.(string)
			}
		}
	}
}

// Totals is the run-wide count of requests. Invariants, once a run has
// stopped: Scheduled = Sent + Dropped + Lost (open model) and
// Sent = Completed + Failed + InflightAtStop.
type Totals struct {
	Scheduled, Sent, Completed, Failed, Dropped, InflightAtStop int64
	BytesSent, BytesRecv                                        int64

	// Lost counts the arrivals a distributed run planned for agents it
	// lost and that they never scheduled (Lost.Unsent): Scheduled counts
	// them too, so that Scheduled = Sent + Dropped + Lost.
	Lost int64

	// Late counts open-model arrivals the pacer dispatched more than
	// LateAfter behind schedule, MaxLag the worst delay: the generator,
	// not the target, was short of CPU, and latency includes that delay.
	Late   int64
	MaxLag time.Duration

	// MaxStall is the longest the generator's process was kept from
	// running (longest first: see HostStalled); Steal the mean share of
	// the host's CPU time its hypervisor gave to others (-1: unknown).
	MaxStall time.Duration
	Steal    float64
}

// snapshot returns the cumulative figures as of the last rotation plus the
// live counters (used for live thresholds and the final result).
func (r *Recorder) totalsLocked() (Totals, []counters) {
	var t Totals
	for j := range r.series {
		t.Sent += r.sent[j].Load()
	}
	for j := range r.totals {
		c := &r.totals[j]
		t.Completed += c.Completed
		t.Failed += c.Failed
		t.BytesSent += c.BytesSent
		t.BytesRecv += c.BytesRecv
	}
	t.Scheduled = r.scheduled.Load()
	t.Dropped = r.dropped.Load()
	t.Late = r.late.Load()
	t.MaxLag = time.Duration(r.maxLag.Load())
	t.MaxStall, t.Steal = r.maxStall, -1
	if r.stealN > 0 {
		t.Steal = r.stealSum / float64(r.stealN)
	}
	t.InflightAtStop = t.Sent - t.Completed - t.Failed
	return t, r.totals
}

func seriesKey(series int, class string) string { return strconv.Itoa(series) + "\x00" + class }

// mergeAll returns a new histogram holding all of hs.
func mergeAll(hs []*hdr.Histogram, top int64) *hdr.Histogram {
	m := hdr.New(histLowest, top, histDigits)
	for _, h := range hs {
		m.Merge(h)
	}
	return m
}
