package loadgen

import (
	"runtime"
	"sync/atomic"
	"time"

	"github.com/loadcap/loadcap/loadgen/httpc"
)

// The open model on event loops. Each loop paces its own share of the
// scenario's arrivals: it waits in epoll for its sockets and for its next
// arrival at once, with a timeout to the nanosecond (epoll_pwait2), on a
// thread whose timer slack is tightened as the pacer's is. So no thread
// wakes another to send a request, where the goroutine engine's pacer
// hands each arrival to a VU goroutine, and the earlier trial's pacer
// woke a loop through an eventfd (about 0.3 ms at p99; docs/ARCHITECTURE.md).
//
// A loop's VUs are its exchanges. The rules are runOpen's and openLoop's:
// an arrival goes to an idle VU, or to a new one while the scenario's VUs
// (all loops') are fewer than maxVUs, or waits in the loop's FIFO backlog
// (its latency still counted from its intended time) and is dropped when
// the backlog is full, when it waited longer than the request timeout, or
// when the scenario ended more than endGrace before a VU came free. The
// one difference from a single pool: once maxVUs are made, an arrival waits
// for a VU of its own loop, even while another loop's VU is idle. So the
// loops are few enough that each has openLoopVUs of maxVUs to itself.

// openLoops is how many event loops run s's open workload, 0 when it
// keeps the pacer and goroutines: the file's only scenario, no replay,
// requests a loop can send, and a kernel that waits to the nanosecond.
// One loop per processor but one, as for closed scenarios, and at most
// one per openLoopVUs of maxVUs.
func (s *scenarioRun) openLoops() int {
	if len(s.e.f.Scenarios) != 1 || s.e.f.Replay != nil || !s.pollableRequests() || !httpc.PreciseWait() {
		return 0
	}
	w := &s.sc.Workload
	maxVUs := max(s.e.o.seg.scaleVUs(w.MaxVUs), s.e.o.seg.scaleVUs(w.PreAllocatedVUs))
	return max(1, min(runtime.GOMAXPROCS(0)-1, maxVUs/openLoopVUs))
}

// openLoopVUs is the fewest of maxVUs an open scenario's loop has to
// itself: below it, the loops' separate backlogs would make arrivals wait
// for a VU that another loop has idle often enough to show in the
// percentiles.
const openLoopVUs = 64

// openYieldGap is how far off the next arrival must be for an open loop
// to yield its processor (a hand-off to another thread and back, tens of
// microseconds) at its pollYield.
const openYieldGap = 200 * time.Microsecond

// runOpenOnLoops runs s's open workload on n event loops, whose
// processors the caller reserved (reserveLoops), until its end (or the
// engine's stop), then marks it stopping; the loops drain after that, and
// finish waits for them as for VUs. false: no loop could start (the
// reservation is returned), and the caller paces with goroutines.
func (s *scenarioRun) runOpenOnLoops(t0 time.Time, n int) bool {
	w := &s.sc.Workload
	seg := s.e.o.seg
	pre := seg.scaleVUs(w.PreAllocatedVUs)
	maxVUs := max(seg.scaleVUs(w.MaxVUs), pre, 1) // at least one per loop (openLoops)
	made := new(atomic.Int64)
	polls := make([]*httpc.Poller, 0, n)
	for range n {
		p, err := s.e.tr.NewPoller()
		if err != nil {
			for _, p := range polls {
				p.Close()
			}
			loopsHolding.Add(int64(-n))
			return false
		}
		polls = append(polls, p)
	}
	backlog := max(1, backlogSize(w)/n)
	for j, p := range polls {
		l := &openLoop{
			s: s, p: p, t0: t0, end: t0.Add(w.Duration()),
			arr:     loopArrivals{sched: newSchedule(w.StartRatePerSec, w.RateStages), owned: &stripe{s: seg}, j: j, n: n},
			pre:     share(pre, j, n),
			maxVUs:  int64(maxVUs),
			made:    made,
			backlog: offsetQueue{max: backlog},
			vus:     map[*vu]struct{}{},
		}
		s.vuWG.Add(1) // the loop's own: finish waits for it, and it never adds a VU after the count reached 0
		go l.run()
	}
	// The scenario lasts its full duration even after its last arrival.
	s.sleepUntil(t0.Add(w.Duration()))
	s.stopping.Store(true)
	return true
}

// share is part j of total split n ways as evenly as can be.
func share(total, j, n int) int {
	v := total / n
	if j < total%n {
		v++
	}
	return v
}

// loopArrivals yields a loop's arrivals: of the arrivals the engine owns
// (its segment's, or all), those at positions j, j+n, j+2n, ...
type loopArrivals struct {
	sched *schedule
	owned *stripe
	pos   int64 // position in the owned sequence of the next index
	j, n  int
}

// next returns the offset of the loop's next arrival from the scenario's
// start, or false when the schedule is exhausted.
func (a *loopArrivals) next() (time.Duration, bool) {
	for {
		i := a.owned.next()
		pos := a.pos
		a.pos++
		if pos%int64(a.n) == int64(a.j) {
			return a.sched.At(i)
		}
	}
}

// offsetQueue is the backlog of a loop: the intended times of arrivals
// waiting for a VU, as offsets from the scenario's start, first in first
// out, at most max of them. It grows as it fills.
type offsetQueue struct {
	buf  []time.Duration
	head int
	n    int
	max  int
}

func (q *offsetQueue) push(d time.Duration) bool {
	if q.n == q.max {
		return false
	}
	if q.n == len(q.buf) {
		grown := make([]time.Duration, min(q.max, max(64, 2*len(q.buf))))
		for i := range q.n {
			grown[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = grown, 0
	}
	q.buf[(q.head+q.n)%len(q.buf)] = d
	q.n++
	return true
}

func (q *offsetQueue) pop() time.Duration {
	d := q.buf[q.head]
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	return d
}

// openLoop is one event loop of an open scenario.
type openLoop struct {
	s       *scenarioRun
	p       *httpc.Poller
	t0, end time.Time // the scenario's start and end
	arr     loopArrivals
	pre     int
	maxVUs  int64         // the scenario's, for all its loops
	made    *atomic.Int64 // VUs the scenario's loops have made and not yet ended
	backlog offsetQueue
	vus     map[*vu]struct{} // not yet exited
	idle    []*vu
	busy    int
	more    bool // the schedule has arrivals left for this loop
}

func (l *openLoop) run() {
	pollLoopsStarted.Add(1)
	s, rec := l.s, l.s.e.rec
	defer s.vuWG.Done()
	defer loopsHolding.Add(-1)
	defer l.p.Close()
	defer preciseThread()()
	for range l.pre {
		l.made.Add(1)
		l.idle = append(l.idle, l.newVU())
	}
	off, more := l.arr.next()
	l.more = more
	next := l.t0.Add(off)
	var yielded time.Time
	for {
		if s.hardStop.Load() {
			for v := range l.vus {
				v.exit() // abandoned: counted as in flight at stop
			}
			for ; l.backlog.n > 0; l.backlog.n-- {
				rec.Dropped() // never sent, as the goroutine engine's backlog after its VUs
			}
			return
		}
		now := time.Now()
		if more && s.stopped() {
			more = false
		}
		if !now.Before(l.end) {
			s.stopping.Store(true) // as runOpenOnLoops will at the end: no need to wait for it
		}
		// Every arrival of the schedule is dispatched, also one the loop
		// reaches after the scenario's end (as the pacer hands out its
		// last ones before it marks the end); the stale rule decides.
		for sent := false; more && !next.After(now); sent = true {
			if sent {
				now = time.Now() // sending the last one took time
			}
			rec.Scheduled(1)
			if lag := now.Sub(next); lag > 0 {
				rec.Lag(lag)
			}
			l.arrive(next, now)
			if off, more = l.arr.next(); more {
				next = l.t0.Add(off)
			}
		}
		l.more = more
		if !more && s.stopping.Load() {
			for _, v := range l.idle {
				l.exitVU(v)
			}
			l.idle = l.idle[:0]
			if l.busy == 0 {
				return
			}
		}
		now = time.Now()
		wait := pollWait
		if d := l.end.Sub(now); !more && d > 0 && d < wait {
			wait = d // to leave on time once the scenario ends
		}
		if more {
			// Wake a little early and poll for the rest, as the pacer
			// spins its last microseconds.
			switch d := next.Sub(now); {
			case d <= spinBelow:
				wait = 0
			case d-spinBelow/2 < wait:
				wait = d - spinBelow/2
			}
		}
		done := l.p.Wait(wait)
		end := l.p.Now()
		for _, x := range done {
			if s.hardStop.Load() {
				break // the next turn abandons what is left
			}
			v := x.User.(*vu)
			v.pollDone(x, end)
			l.busy--
			l.free(v, end)
		}
		// The thread is locked: Gosched hands the processor to another
		// thread and back, two wake-ups. So yield only every pollYield,
		// and not just before an arrival, unless that is ten times as long.
		if since := end.Sub(yielded); since >= 10*pollYield ||
			since >= pollYield && (!more || next.Sub(end) > openYieldGap) {
			runtime.Gosched() // let the processor's other goroutines run
			yielded = time.Now()
		}
	}
}

// arrive sends the arrival intended at t, or queues or drops it.
// As in the goroutine engine, an idle VU applies the stale rule to what it
// is handed and a new VU sends its first arrival as it is.
func (l *openLoop) arrive(t, now time.Time) {
	switch {
	case len(l.idle) > 0:
		if l.stale(now.Sub(t)) {
			l.s.e.rec.Dropped()
			return
		}
		v := l.idle[len(l.idle)-1]
		l.idle = l.idle[:len(l.idle)-1]
		l.start(v, t)
	case l.made.Add(1) <= l.maxVUs:
		l.start(l.newVU(), t)
	default:
		l.made.Add(-1)
		if !l.backlog.push(t.Sub(l.t0)) {
			l.s.e.rec.Dropped() // backlog full
		}
	}
}

// free gives v, whose request just ended at now, the oldest arrival
// still worth sending, or lets it idle (exit, once the scenario is
// stopping and the loop has no arrivals left).
func (l *openLoop) free(v *vu, now time.Time) {
	s := l.s
	for l.backlog.n > 0 {
		t := l.t0.Add(l.backlog.pop())
		if l.stale(now.Sub(t)) {
			s.e.rec.Dropped()
			continue
		}
		l.start(v, t)
		return
	}
	if s.stopping.Load() && !l.more {
		l.exitVU(v)
		return
	}
	l.idle = append(l.idle, v)
}

// stale reports whether an arrival that has waited this long is never
// to be sent, as openLoop's rule: longer than a request may take, or,
// once the scenario ended, longer than endGrace.
func (l *openLoop) stale(wait time.Duration) bool {
	return wait > l.s.e.timeout || (l.s.stopping.Load() && wait > endGrace)
}

func (l *openLoop) start(v *vu, t time.Time) {
	l.busy++
	v.pollStart(l.p, t)
}

func (l *openLoop) newVU() *vu {
	v := l.s.newVUWith(false)
	v.x = l.p.NewExchange(v)
	l.vus[v] = struct{}{}
	return v
}

func (l *openLoop) exitVU(v *vu) {
	l.p.Release(v.x)
	delete(l.vus, v)
	l.made.Add(-1)
	v.exit()
}
