package loadgen

import (
	"fmt"
	"sync"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/loadcap/loadcap/scenarios"
)

// Merger rebuilds the Result of a run that several engines ran in parts
// (the segments of one sequence) from their Snapshots, as if one engine had
// run it all: the same series, intervals, thresholds, progress lines and
// totals. Histograms are merged bucket by bucket, so every percentile is
// the one a single recorder of the same requests would report.
//
// Interval T is merged once every part still running has sent its T (or
// ended). Add, Finish, Lose, Abort and Result are safe for concurrent use;
// progress and the interval hook run inside them, one at a time.
type Merger struct {
	f     *scenarios.File
	o     options
	rec   *Recorder
	prog  *progress
	names []string // per series: its request name

	mu            sync.Mutex
	parts         []mergePart
	next          int // the next interval to merge
	start         time.Time
	cause, reason string
	stoppedAt     time.Duration // since the start, when Abort was first called
	lost          []Lost
	lostPart      []int // the part of each lost

	// The interval being merged: latency of all series and per request
	// name. Dense, so that merging a part's histogram costs its populated
	// buckets only (a sparse aggregate costs its own size per merge, which
	// grows with the parts: quadratic over a hundred agents).
	ivAll  *hdr.Histogram
	ivName []*hdr.Histogram // per series: its name's (shared by series of one name)
}

type mergePart struct {
	pending map[int]*Snapshot
	done    bool
	final   *Final
	sum     Totals // of the snapshots received
	status  []map[int]int64
	samples []map[string]string
	vus     int
	peak    int
	end     time.Duration // End of the last snapshot
}

// WithPartSegments tells a Merger the segment each part runs, in order, so
// that a lost part's unsent arrivals are counted (Lost.Unsent).
func WithPartSegments(segs []*Segment) Option {
	return func(o *options) { o.partSegs = segs }
}

// NewMerger returns a merger for a run of f split into parts parts. Of the
// options, WithProgress, WithIntervalHook, WithPartSegments and
// WithIntervalRetention apply.
func NewMerger(f *scenarios.File, parts int, opts ...Option) (*Merger, error) {
	o := options{plainEach: 5}
	for _, fn := range opts {
		fn(&o)
	}
	if len(f.Scenarios) == 0 || len(f.Requests) == 0 {
		return nil, fmt.Errorf("%s: nothing to run: no scenarios or no requests", f.Path)
	}
	if parts < 1 {
		return nil, fmt.Errorf("merge a run of %d parts: need at least 1", parts)
	}
	if o.partSegs != nil && len(o.partSegs) != parts {
		return nil, fmt.Errorf("merge a run of %d parts: %d segments given", parts, len(o.partSegs))
	}
	series, _ := seriesOf(f)
	_, top, total := limits(f)
	m := &Merger{f: f, o: o, rec: NewRecorder(series, top), parts: make([]mergePart, parts)}
	m.rec.keep = o.keep
	m.prog = newProgress(o.progress, o.live, o.plainEach, total)
	m.ivAll = m.rec.newHist()
	byName := map[string]*hdr.Histogram{}
	for _, s := range series {
		m.names = append(m.names, s.Name)
		h, ok := byName[s.Name]
		if !ok {
			h = m.rec.newHist()
			byName[s.Name] = h
		}
		m.ivName = append(m.ivName, h)
	}
	for i := range m.parts {
		m.parts[i] = mergePart{
			pending: map[int]*Snapshot{},
			status:  make([]map[int]int64, len(series)),
			samples: make([]map[string]string, len(series)),
		}
	}
	return m, nil
}

// Start sets the run's start: every part's interval T is [T, T+1) s after it.
func (m *Merger) Start(t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.start = t
	m.rec.Start(t)
}

// Add takes part's next snapshot and merges every interval now complete.
// abort is set, once, when an abortOnFail threshold of the file is crossed
// by the merged figures: the caller stops the parts; the result is aborted
// with CauseThreshold. A snapshot that does not fit the file is an error.
func (m *Merger) Add(part int, s *Snapshot) (abort string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if part < 0 || part >= len(m.parts) {
		return "", fmt.Errorf("merge: no part %d of %d", part, len(m.parts))
	}
	if len(s.Series) != len(m.names) {
		return "", fmt.Errorf("merge: part %d sent %d series, the file has %d", part, len(s.Series), len(m.names))
	}
	p := &m.parts[part]
	if p.done {
		return "", fmt.Errorf("merge: part %d sent a snapshot after it ended", part)
	}
	if _, dup := p.pending[s.T]; dup || s.T < m.next {
		return "", fmt.Errorf("merge: part %d sent interval %d twice", part, s.T)
	}
	p.pending[s.T] = s
	p.sum.Scheduled += s.Scheduled
	p.sum.Dropped += s.Dropped
	for j := range s.Series {
		sd := &s.Series[j]
		p.sum.Sent += sd.Sent
		p.sum.Completed += sd.Completed
		p.sum.Failed += sd.Failed
	}
	had := m.cause
	m.mergeReady()
	if had == "" && m.cause == CauseThreshold {
		return m.reason, nil
	}
	return "", nil
}

// Finish records that part ended normally with fin (its engine's
// FinalOf). It is an error when the part's snapshots do not add up to its
// final totals: a snapshot went missing.
func (m *Merger) Finish(part int, fin Final) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := &m.parts[part]
	p.done, p.final = true, &fin
	p.peak = max(p.peak, fin.MaxVUs)
	m.mergeReady()
	t, s := fin.Totals, p.sum
	if t.Scheduled != s.Scheduled || t.Sent != s.Sent || t.Completed != s.Completed || t.Failed != s.Failed || t.Dropped != s.Dropped {
		return fmt.Errorf("merge: part %d's snapshots add up to scheduled %d, sent %d, completed %d, failed %d, dropped %d; its totals say %d, %d, %d, %d, %d",
			part, s.Scheduled, s.Sent, s.Completed, s.Failed, s.Dropped, t.Scheduled, t.Sent, t.Completed, t.Failed, t.Dropped)
	}
	return nil
}

// Lose records that part ended early: what it sent until then stays in
// the result, which is marked partial (Result.Lost).
func (m *Merger) Lose(part int, l Lost) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.parts[part].done = true
	m.lost = append(m.lost, l)
	m.lostPart = append(m.lostPart, part)
	m.mergeReady()
}

// Abort marks the run aborted (CauseSignal, CauseThreshold), unless it
// already is.
func (m *Merger) Abort(cause, reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cause == "" {
		m.cause, m.reason = cause, reason
		if !m.start.IsZero() {
			m.stoppedAt = max(0, time.Since(m.start))
		}
	}
}

// mergeReady merges the intervals every part has sent or will never send.
func (m *Merger) mergeReady() {
	for {
		have := false
		for i := range m.parts {
			p := &m.parts[i]
			if _, ok := p.pending[m.next]; ok {
				have = true
			} else if !p.done {
				return
			}
		}
		if !have {
			return
		}
		m.merge(m.next)
		m.next++
	}
}

// merge adds every part's interval t to the totals and closes it.
func (m *Merger) merge(t int) {
	r := m.rec
	iv := Interval{T: t, Hists: map[string]*hdr.PackedHistogram{}, Steal: -1}
	m.ivAll.Reset()
	for _, h := range m.ivName {
		h.Reset() // twice for a name shared by series: cheap, and simpler
	}
	for i := range m.parts {
		p := &m.parts[i]
		s, ok := p.pending[t]
		if !ok {
			continue
		}
		delete(p.pending, t)
		iv.End = max(iv.End, s.End)
		iv.Stall = max(iv.Stall, s.Stall) // the worst agent's
		iv.Steal = max(iv.Steal, s.Steal)
		iv.Scheduled += s.Scheduled
		iv.Dropped += s.Dropped
		iv.Inflight += s.Inflight
		iv.Busy += s.Busy
		r.scheduled.Add(s.Scheduled)
		r.dropped.Add(s.Dropped)
		r.late.Add(s.Late)
		if int64(s.MaxLag) > r.maxLag.Load() {
			r.maxLag.Store(int64(s.MaxLag))
		}
		p.vus, p.peak, p.end = s.VUs, max(p.peak, s.PeakVUs), s.End
		for j := range s.Series {
			sd := &s.Series[j]
			c := counters{
				Completed: sd.Completed, Failed: sd.Failed, BytesSent: sd.BytesSent, BytesRecv: sd.BytesRecv,
				ServiceSum: sd.ServiceSum, LatencySum: sd.LatencySum, Classes: sd.Classes,
			}
			r.totals[j].add(&c)
			r.sent[j].Add(sd.Sent)
			iv.Sent += sd.Sent
			iv.Completed += c.Completed
			iv.Failed += c.Failed
			iv.BytesSent += c.BytesSent
			iv.BytesRecv += c.BytesRecv
			iv.ServiceSum += c.ServiceSum
			iv.LatencySum += c.LatencySum
			for k := range c.Classes {
				iv.Classes[k] += c.Classes[k]
			}
			if sd.Latency != nil {
				sd.Latency.MergeInto(r.lat[j])
				sd.Latency.MergeInto(m.ivAll)
				sd.Latency.MergeInto(m.ivName[j])
			}
			if b := sd.LatencyBuckets; b != nil {
				b.addTo(r.lat[j])
				b.addTo(m.ivAll)
				b.addTo(m.ivName[j])
			}
			if sd.Service != nil {
				sd.Service.MergeInto(r.svc[j])
			}
			if b := sd.ServiceBuckets; b != nil {
				b.addTo(r.svc[j])
			}
			if sd.StatusCodes != nil {
				p.status[j] = sd.StatusCodes
			}
			if sd.ErrorSamples != nil {
				p.samples[j] = sd.ErrorSamples
			}
		}
	}
	iv.Latency = Summarize(m.ivAll)
	for j, h := range m.ivName {
		if _, done := iv.Hists[m.names[j]]; !done && h.TotalCount() > 0 {
			c := r.newPacked()
			c.MergeFrom(h)
			c.Compact()
			iv.Hists[m.names[j]] = c
		}
	}
	r.mu.Lock()
	r.retainLocked(iv)
	r.maxStall = max(r.maxStall, iv.Stall)
	if iv.Steal >= 0 {
		r.stealSum += iv.Steal
		r.stealN++
	}
	r.mu.Unlock()
	vus := 0
	for i := range m.parts {
		if !m.parts[i].done {
			vus += m.parts[i].vus
		}
	}
	m.prog.interval(iv, vus)
	if m.o.onRotate != nil {
		m.o.onRotate(iv)
	}
	if m.cause == "" {
		if reason := abortReason(m.f, r, iv.End); reason != "" {
			m.cause, m.reason, m.stoppedAt = CauseThreshold, reason, iv.End
		}
	}
}

// Result merges what is left and returns the run's result: status,
// thresholds and totals as a single engine would have them, Lost for the
// parts that ended early. Call it once, after every part finished or was
// lost (parts still running are taken as ended).
func (m *Merger) Result() *Result {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.parts {
		m.parts[i].done = true
	}
	m.mergeReady()
	r := m.rec
	// Status codes and error samples are cumulative per part: the last
	// ones received are the part's.
	sh := &r.shards[0]
	var dur time.Duration
	peak := 0
	for i := range m.parts {
		p := &m.parts[i]
		for j := range m.names {
			for code, n := range p.status[j] {
				sh.names[j].status[code] += n
			}
			for cn, msg := range p.samples[j] {
				r.samples.LoadOrStore(seriesKey(j, cn), msg)
			}
		}
		end := p.end
		if p.final != nil {
			end = max(end, p.final.Duration)
			if p.final.Status == StatusAborted && m.cause == "" {
				m.cause, m.reason = p.final.AbortCause, p.final.AbortReason
			}
		}
		dur = max(dur, end)
		peak += p.peak
	}
	res := r.result()
	res.Started, res.Duration = m.start, dur
	res.Ended = m.start.Add(dur)
	res.MaxVUs = peak
	m.countLost(res, dur)
	res.Thresholds = evaluate(m.f, m.f.Thresholds, res)
	res.Status = StatusPassed
	for _, t := range res.Thresholds {
		if !t.Passed {
			res.Status = StatusFailed
		}
	}
	if m.cause != "" {
		res.Status, res.AbortCause, res.AbortReason = StatusAborted, m.cause, m.reason
	}
	m.prog.finish(res)
	return res
}

// countLost puts the lost parts in res: each one's loss time clamped
// inside the run (a coordinator that was itself frozen notices a loss
// late) and the arrivals planned for it and never scheduled, which the
// totals count as lost and scheduled.
func (m *Merger) countLost(res *Result, dur time.Duration) {
	_, _, total := limits(m.f)
	until := total
	if m.cause != "" && m.stoppedAt > 0 {
		until = min(until, m.stoppedAt)
	}
	for k, l := range m.lost {
		l.At = min(max(l.At, 0), max(dur, until))
		if m.o.partSegs == nil {
			if l.Uncounted == "" {
				l.Uncounted = "the parts' segments are not known"
			}
			res.Lost = append(res.Lost, l)
			continue
		}
		planned, uncounted := PlannedArrivals(m.f, m.o.partSegs[m.lostPart[k]], until)
		// What it scheduled but had neither sent nor dropped by its last
		// snapshot (its backlog) is lost with it.
		got := &m.parts[m.lostPart[k]].sum
		planned = max(planned, got.Scheduled)
		l.Unsent = planned - got.Sent - got.Dropped
		if l.Uncounted == "" {
			l.Uncounted = uncounted
		}
		res.Totals.Lost += l.Unsent
		res.Totals.Scheduled += planned - got.Scheduled
		res.Lost = append(res.Lost, l)
	}
}
