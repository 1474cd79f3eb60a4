package target

import (
	"sync"
	"sync/atomic"
	"time"
)

// acquire outcomes.
const (
	acquired = iota
	rejected // queue full
	canceled // cancel or done closed while waiting
)

// pool is the fixed set of workers with a FIFO wait queue. Times are
// monotonic durations since the server's origin. A worker handed from one
// request to the next carries the ideal end of the previous service, so a
// queued request starts at that ideal instant (see serve) and timer overshoot
// does not accumulate into lost capacity.
type pool struct {
	maxQueue int
	queueLen *atomic.Int64 // mirrors n for Stats

	mu         sync.Mutex
	free       int
	head, tail *waiter
	n          int
	waiters    sync.Pool
}

type waiter struct {
	prev, next *waiter
	queued     bool               // still in the list (guarded by pool.mu)
	ready      chan time.Duration // buffered 1: the ideal start handed over by release
}

func newPool(workers, maxQueue int, queueLen *atomic.Int64) *pool {
	return &pool{free: workers, maxQueue: maxQueue, queueLen: queueLen}
}

// acquire takes a worker for a request that started waiting at enq. It
// returns the ideal start of service: enq if a worker was free, else the
// ideal end of the service that freed the worker (never before enq).
func (p *pool) acquire(enq time.Duration, cancel, done <-chan struct{}) (time.Duration, int) {
	p.mu.Lock()
	if p.free > 0 {
		p.free--
		p.mu.Unlock()
		return enq, acquired
	}
	if p.maxQueue > 0 && p.n >= p.maxQueue {
		p.mu.Unlock()
		return 0, rejected
	}
	w, _ := p.waiters.Get().(*waiter)
	if w == nil {
		w = &waiter{ready: make(chan time.Duration, 1)}
	}
	w.queued = true
	w.prev, w.next = p.tail, nil
	if p.tail != nil {
		p.tail.next = w
	} else {
		p.head = w
	}
	p.tail = w
	p.n++
	p.queueLen.Store(int64(p.n))
	p.mu.Unlock()

	select {
	case start := <-w.ready:
		p.waiters.Put(w)
		return max(start, enq), acquired
	case <-cancel:
	case <-done:
	}
	p.mu.Lock()
	if w.queued {
		p.unlink(w)
		p.mu.Unlock()
		p.waiters.Put(w)
		return 0, canceled
	}
	p.mu.Unlock()
	// Granted while we gave up: pass the worker on.
	p.release(<-w.ready)
	p.waiters.Put(w)
	return 0, canceled
}

// release returns a worker whose service ideally ended at end.
func (p *pool) release(end time.Duration) {
	p.mu.Lock()
	if w := p.head; w != nil {
		p.unlink(w)
		w.ready <- end
	} else {
		p.free++
	}
	p.mu.Unlock()
}

// unlink removes w from the queue; p.mu must be held.
func (p *pool) unlink(w *waiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		p.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		p.tail = w.prev
	}
	w.prev, w.next, w.queued = nil, nil, false
	p.n--
	p.queueLen.Store(int64(p.n))
}
