package loadgen

import (
	"runtime"
	"sync/atomic"
	"time"

	"github.com/loadcap/loadcap/loadgen/httpc"
	"github.com/loadcap/loadcap/scenarios"
)

// pollPool runs a closed scenario's VUs on event loops (httpc.Poller)
// instead of a goroutine per VU, when every request of the file can go
// that way: plain HTTP/1.1 to one host or h2c to any, no gRPC, no replay,
// and no open scenario (whose pacer must not wait behind a loop's
// processor). Over HTTP/2 each loop has its own connection per host,
// which its VUs' streams share. It is the same VU
// loop as closedLoop, request for request: the same mix, rendering, send
// time, outcome and recorder calls.
//
// A loop holds its processor while it waits for its sockets (at most
// pollWait at a time) and yields it at least every pollYield. There is
// one loop per processor but one, which stays free for the rest of the
// process (the ticker, signals, the stall watch, a server in the same
// process); with a single processor the one loop shares it that way.
type pollPool struct {
	s     *scenarioRun
	loops []chan *vu
	next  int
	off   bool // no poller here: add returns nil
}

// pollLoopsStarted counts the event loops started, for tests.
var pollLoopsStarted atomic.Int64

// loopsHolding counts the processors the process's event loops hold, all
// engines' (a capacity search or a test may run several at once).
var loopsHolding atomic.Int64

// reserveLoops takes up to n processors for event loops, leaving one to
// the rest of the process (a target served from it, the ticker, another
// engine's pacer), and returns how many it took; each loop gives its own
// back when it ends. Loops wait holding their processor, so more of them
// than processors but one would starve everything else.
func reserveLoops(n int) int {
	for {
		held := loopsHolding.Load()
		take := min(int64(n), int64(runtime.GOMAXPROCS(0)-1)-held)
		if take <= 0 {
			return 0
		}
		if loopsHolding.CompareAndSwap(held, held+take) {
			return int(take)
		}
	}
}

// pollWait bounds one wait of a loop for its sockets. Shorter waits cost
// the kernel a timer reprogramming each (on a 4 ms scheduler tick):
// measured with engprof as README runs it, this constant changed, 1 ms
// gave 115-118k requests per CPU-second, 3 ms 154-159k, 5 ms 175-177k,
// 10 ms 173-190k. It stays below the stall watch's threshold
// (StallAfter), which a waiting loop delays on a single processor.
const pollWait = 5 * time.Millisecond

// pollYield is how long a busy loop runs before it yields its processor.
const pollYield = time.Millisecond

// newPollPool returns s's pool, or nil when s's VUs keep goroutines.
func newPollPool(s *scenarioRun) *pollPool {
	if !s.pollable() {
		return nil
	}
	return &pollPool{s: s}
}

// pollable reports whether s's closed-model VUs can run on event loops:
// its requests can, and no open scenario in the file has a pacer whose
// processor a loop could hold.
func (s *scenarioRun) pollable() bool {
	for i := range s.e.f.Scenarios {
		if s.e.f.Scenarios[i].Workload.Model == scenarios.Open {
			return false
		}
	}
	return s.pollableRequests()
}

// pollableRequests reports whether every request of s can go through an
// event loop.
func (s *scenarioRun) pollableRequests() bool {
	e := s.e
	if !httpc.PollerSupported || e.o.noPoll || e.grpc != nil || e.o.replay != nil {
		return false
	}
	// Plain HTTP (h2c for HTTP/2); HTTP/1.1 to one host: an exchange
	// keeps one connection, where a Client keeps one per host (HTTP/2
	// streams go on their host's connection, whichever it is).
	host := ""
	for i, ri := range s.sc.Requests {
		ent := &s.mix.entries[ri]
		if ent.scheme == "https" || (!e.f.HTTP2 && i > 0 && ent.host != host) {
			return false
		}
		host = ent.host
	}
	return true
}

// add starts a VU on a loop; nil means the caller starts one of its own.
func (pp *pollPool) add() *vu {
	if pp == nil || pp.off {
		return nil
	}
	i := pp.next
	pp.next = (pp.next + 1) % max(1, runtime.GOMAXPROCS(0)-1)
	if i >= len(pp.loops) && reserveLoops(1) == 1 {
		if p, err := pp.s.e.tr.NewPoller(); err != nil {
			loopsHolding.Add(-1)
		} else {
			ch := make(chan *vu, 1024)
			pp.loops = append(pp.loops, ch)
			i = len(pp.loops) - 1
			go pp.s.pollLoop(p, ch)
		}
	}
	if len(pp.loops) == 0 {
		pp.off = true // no poller here, or every processor but one is another loop's
		return nil
	}
	i %= len(pp.loops)
	v := pp.s.newVUWith(false)
	pp.loops[i] <- v
	return v
}

// close tells the loops that no VU will join: each ends once its VUs have.
func (pp *pollPool) close() {
	if pp == nil {
		return
	}
	for _, ch := range pp.loops {
		close(ch)
	}
}

// pollLoop runs the VUs sent on add with p until they have all exited
// and add is closed; at the hard stop it abandons those in flight.
func (s *scenarioRun) pollLoop(p *httpc.Poller, add <-chan *vu) {
	pollLoopsStarted.Add(1)
	defer loopsHolding.Add(-1)
	defer p.Close()
	mine := map[*vu]struct{}{} // joined, not yet exited
	join := func(v *vu) {
		v.x = p.NewExchange(v)
		if v.pollNext(p) {
			mine[v] = struct{}{}
		}
	}
	open := true
	var yielded time.Time
	for open || len(mine) > 0 {
		if len(mine) == 0 {
			// Nothing to poll: wait for a VU as goroutines wait.
			v, ok := <-add
			if !ok {
				return
			}
			join(v)
		}
	drain:
		for open {
			select {
			case v, ok := <-add:
				if !ok {
					open = false
					break drain
				}
				join(v)
			default:
				break drain
			}
		}
		if s.hardStop.Load() {
			for v := range mine {
				v.exit() // abandoned: counted as in flight at stop
			}
			return
		}
		done := p.Wait(pollWait)
		for _, x := range done {
			v := x.User.(*vu)
			v.pollDone(x, p.Now())
			if !v.pollNext(p) {
				delete(mine, v)
			}
		}
		if now := p.Now(); len(done) == 0 || now.Sub(yielded) >= pollYield {
			runtime.Gosched() // let the processor's other goroutines run
			yielded = now
		}
	}
}

// pollNext starts v's next request, as closedLoop's iteration does, or
// ends v (false).
func (v *vu) pollNext(p *httpc.Poller) bool {
	s := v.s
	if v.quit.Load() || s.stopping.Load() || s.stopped() {
		p.Release(v.x)
		v.exit()
		return false
	}
	s.e.rec.Scheduled(1)
	v.pollStart(p, time.Time{})
	return true
}

// pollStart sends v's next request of the mix on p; intended is its
// arrival time in the open model (zero in the closed model, where latency
// runs from the send).
func (v *vu) pollStart(p *httpc.Poller, intended time.Time) {
	ent := v.s.mix.pick(v.rd.st)
	req := v.rd.render(ent)
	v.pent, v.pint = ent, intended
	v.psent = v.send(ent, req)
	p.Start(v.x, req)
}

// pollDone records the outcome of v's request, which x returned; end is
// when the wait that reported it ended: one clock read for all the
// requests a wait reports, early by at most the time spent reading them.
func (v *vu) pollDone(x *httpc.Exchange, end time.Time) {
	if v.s.hardStop.Load() {
		return
	}
	intended := v.pint
	if intended.IsZero() {
		intended = v.psent
	}
	v.record(v.pent, &v.rd.req, intended, v.psent, end, &x.Res)
}
