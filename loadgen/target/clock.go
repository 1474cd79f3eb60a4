package target

import (
	"runtime"
	"sync"
	"time"

	"github.com/loadcap/loadcap/loadgen/internal/clock"
)

// Go timers on an idle Linux process wake through epoll_wait, whose timeout
// is whole milliseconds: a 1.5 ms sleep takes ~2.1 ms. preciseSleeper fixes
// that for service times: one helper goroutine keeps a heap of deadlines,
// waits with a Go timer until coarseMargin before the earliest one, then
// steps with nanosleep (OS-precise, ~50 µs slack) and wakes sleepers on time.
const (
	coarseMargin = 2 * time.Millisecond    // switch from Go timer to nanosleep this close to a deadline
	coarseEarly  = 1500 * time.Microsecond // aim the Go timer this far before the deadline
	fineStep     = 250 * time.Microsecond  // longest nanosleep, bounds lateness for a newly added earlier deadline
)

// preciseSleeper wakes goroutines at monotonic deadlines (durations since
// origin). It is safe for concurrent use; run must be running.
type preciseSleeper struct {
	origin time.Time
	done   <-chan struct{}

	mu   sync.Mutex
	heap []sleepEntry
	kick chan struct{} // buffered 1: a new earliest deadline, or the first one
	chs  sync.Pool     // chan struct{} (buffered 1), only returned when drained
}

type sleepEntry struct {
	at time.Duration
	ch chan struct{}
}

func newPreciseSleeper(origin time.Time, done <-chan struct{}) *preciseSleeper {
	return &preciseSleeper{origin: origin, done: done, kick: make(chan struct{}, 1)}
}

func (p *preciseSleeper) now() time.Duration { return time.Since(p.origin) }

// sleepUntil blocks until the monotonic time at (since origin). It returns
// false early when cancel or the sleeper's done channel is closed.
func (p *preciseSleeper) sleepUntil(at time.Duration, cancel <-chan struct{}) bool {
	if at <= p.now() {
		return true
	}
	ch, _ := p.chs.Get().(chan struct{})
	if ch == nil {
		ch = make(chan struct{}, 1)
	}
	p.mu.Lock()
	first := len(p.heap) == 0 || at < p.heap[0].at
	p.push(sleepEntry{at, ch})
	p.mu.Unlock()
	if first {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
	select {
	case <-ch:
		p.chs.Put(ch)
		return true
	case <-cancel:
	case <-p.done:
	}
	// The entry stays in the heap; its (buffered) channel receives the wake
	// later and is then garbage, never reused.
	return false
}

// run is the helper loop; it returns when done is closed.
func (p *preciseSleeper) run() {
	t := time.NewTimer(time.Hour)
	t.Stop()
	for {
		p.mu.Lock()
		now := p.now()
		for len(p.heap) > 0 && p.heap[0].at <= now {
			e := p.pop()
			select {
			case e.ch <- struct{}{}:
			default:
			}
		}
		next := time.Duration(-1)
		if len(p.heap) > 0 {
			next = p.heap[0].at
		}
		p.mu.Unlock()

		if next < 0 {
			select {
			case <-p.kick:
			case <-p.done:
				return
			}
			continue
		}
		d := next - now
		if d > coarseMargin {
			t.Reset(d - coarseEarly)
			select {
			case <-p.kick:
				t.Stop()
			case <-t.C:
			case <-p.done:
				t.Stop()
				return
			}
			continue
		}
		select {
		case <-p.done:
			return
		default:
		}
		// Yield before the syscall: goroutines readied by this loop sit in
		// this P's run queue, and a P blocked in a short syscall is rarely
		// retaken by the runtime, so without the yield they could wait
		// behind a busy process indefinitely.
		runtime.Gosched()
		clock.Sleep(min(d, fineStep))
	}
}

// push and pop maintain a binary min-heap on at; p.mu must be held.
func (p *preciseSleeper) push(e sleepEntry) {
	h := append(p.heap, e)
	i := len(h) - 1
	for i > 0 {
		parent := (i - 1) / 2
		if h[parent].at <= h[i].at {
			break
		}
		h[parent], h[i] = h[i], h[parent]
		i = parent
	}
	p.heap = h
}

func (p *preciseSleeper) pop() sleepEntry {
	h := p.heap
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h[last] = sleepEntry{}
	h = h[:last]
	i := 0
	for {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(h) && h[l].at < h[m].at {
			m = l
		}
		if r < len(h) && h[r].at < h[m].at {
			m = r
		}
		if m == i {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	p.heap = h
	return top
}
