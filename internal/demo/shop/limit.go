package shop

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// errOverloaded is a request refused because the wait queue was full.
var errOverloaded = errors.New("overloaded: wait queue full")

// limiter enforces a Capacity: Workers slots, each held for one service
// time; requests that find every slot busy wait in line.
type limiter struct {
	c       Capacity
	slots   chan *slot
	waiting atomic.Int64
	refused atomic.Uint64
	busy    atomic.Int64 // Σ service time held by workers, ns: the utilization law's input
}

// slot is one worker. end is when its last request's service time ended
// on an ideal clock: a request starts at its arrival or at that end,
// whichever is later, and ends one service time after. Sleeping to these
// ideal ends rather than for a service time makes timer slack and
// scheduling delays cancel out, so that over a busy stretch a worker serves
// exactly one request per (mean) service time.
type slot struct {
	end time.Time
	rng *rand.Rand
}

// maxLag bounds how far a worker's ideal clock may trail the real one
// (after a stall), so that it never makes up more than this in a burst.
func (l *limiter) maxLag() time.Duration {
	return min(max(10*l.c.ServiceTime, 5*time.Millisecond), 50*time.Millisecond)
}

func newLimiter(c Capacity, seed uint64) *limiter {
	l := &limiter{c: c, slots: make(chan *slot, c.Workers)}
	for i := 0; i < c.Workers; i++ {
		l.slots <- &slot{rng: rand.New(rand.NewPCG(seed, uint64(i)))}
	}
	return l
}

// serve waits for a worker and holds it for one service time. It returns
// errOverloaded when the queue is full, ctx's error when ctx ends first.
func (l *limiter) serve(ctx context.Context) error {
	if l.c.ServiceTime <= 0 {
		return nil
	}
	arrival := time.Now()
	var s *slot
	select {
	case s = <-l.slots:
	default:
		if n := l.waiting.Add(1); l.c.QueueLimit > 0 && n > int64(l.c.QueueLimit) {
			l.waiting.Add(-1)
			l.refused.Add(1)
			return errOverloaded
		}
		select {
		case s = <-l.slots:
			l.waiting.Add(-1)
		case <-ctx.Done():
			l.waiting.Add(-1)
			return ctx.Err()
		}
	}
	defer func() { l.slots <- s }()
	d := l.c.ServiceTime
	if l.c.Exponential {
		d = time.Duration(s.rng.ExpFloat64() * float64(d))
	}
	l.busy.Add(int64(d))
	start := arrival
	if s.end.After(start) {
		start = s.end
	}
	now := time.Now()
	if lag := now.Sub(start); lag > l.maxLag() {
		start = now.Add(-l.maxLag())
	}
	s.end = start.Add(d)
	wait := s.end.Sub(now)
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
