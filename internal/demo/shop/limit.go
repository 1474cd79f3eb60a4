package shop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// MaxReplicas bounds a service's replicas in the shop.
const MaxReplicas = 64

// errOverloaded is a request refused because the wait queue was full.
var errOverloaded = errors.New("overloaded: wait queue full")

// limiter enforces a Capacity per replica: each ready replica brings
// Workers slots, each held for one service time; requests that find every
// slot busy wait in line, as behind a least-connections load balancer.
// scale changes the replicas: new ones bring their slots after a start-up
// delay, removed ones take theirs out at once (a busy slot as it frees).
type limiter struct {
	c       Capacity
	slots   chan *slot
	waiting atomic.Int64
	refused atomic.Uint64
	busy    atomic.Int64 // Σ service time held by workers, ns: the utilization law's input

	ready   atomic.Int64 // replicas whose slots are in
	drop    atomic.Int64 // slots still to take out as they come free
	seed    uint64
	mu      sync.Mutex
	desired int
	pending []*time.Timer // replicas starting up
	made    uint64        // slots created, for their random streams
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
	return newReplicas(c, seed, 1)
}

// newReplicas is a limiter of n ready replicas.
func newReplicas(c Capacity, seed uint64, n int) *limiter {
	l := &limiter{c: c, slots: make(chan *slot, c.Workers*MaxReplicas), seed: seed, desired: n}
	for i := 0; i < n; i++ {
		l.addReplica()
	}
	return l
}

// addReplica puts one replica's slots in.
func (l *limiter) addReplica() {
	for i := 0; i < l.c.Workers; i++ {
		l.slots <- &slot{rng: rand.New(rand.NewPCG(l.seed, l.made))}
		l.made++
	}
	l.ready.Add(1)
}

// Replicas are a service's replicas: asked for and ready. Backends lists
// the gateway's replicas when nginx fronts them (Config.Nginx).
type Replicas struct {
	Desired  int       `json:"desired"`
	Ready    int       `json:"ready"`
	Backends []Backend `json:"backends,omitempty"`
}

// Backend is one gateway replica behind nginx: its own listener, and the
// API requests it has served.
type Backend struct {
	Addr     string `json:"addr"`
	Requests uint64 `json:"requests"`
}

// pool is a service's replicas as its metrics and its scaling endpoint see
// them: in-process replicas behind one queue (limiter), or the gateway's
// replicas as listeners behind nginx (fleet).
type pool interface {
	capacity() Capacity
	replicas() Replicas
	// scale sets the replicas to n; the new ones serve startup from now.
	scale(n int, startup time.Duration) error
	// load reports the requests waiting for a worker now, those refused
	// so far and the worker time spent serving, all replicas summed.
	load() (waiting int64, refused uint64, busy time.Duration)
}

var (
	_ pool = (*limiter)(nil)
	_ pool = (*fleet)(nil)
)

func (l *limiter) capacity() Capacity { return l.c }

func (l *limiter) load() (int64, uint64, time.Duration) {
	return l.waiting.Load(), l.refused.Load(), time.Duration(l.busy.Load())
}

// replicas reports the desired and the ready replicas.
func (l *limiter) replicas() Replicas {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Replicas{Desired: l.desired, Ready: int(l.ready.Load())}
}

// scale sets the replicas to n: the missing ones are ready startup from
// now; surplus ones go at once, those still starting first.
func (l *limiter) scale(n int, startup time.Duration) error {
	if n < 1 || n > MaxReplicas {
		return fmt.Errorf("replicas %d: want 1 to %d", n, MaxReplicas)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for have := int(l.ready.Load()) + len(l.pending); have < n; have++ {
		var t *time.Timer
		t = time.AfterFunc(startup, func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			for i, p := range l.pending {
				if p == t {
					l.pending = append(l.pending[:i], l.pending[i+1:]...)
					l.addReplica()
					return
				}
			}
		})
		l.pending = append(l.pending, t)
	}
	for have := int(l.ready.Load()) + len(l.pending); have > n; have-- {
		if k := len(l.pending); k > 0 {
			l.pending[k-1].Stop()
			l.pending = l.pending[:k-1]
			continue
		}
		l.ready.Add(-1)
		for i := 0; i < l.c.Workers; i++ {
			select {
			case <-l.slots: // an idle slot goes now
			default:
				l.drop.Add(1) // a busy one when it frees
			}
		}
	}
	l.desired = n
	return nil
}

// release returns a slot, unless a removed replica still owes one.
func (l *limiter) release(s *slot) {
	for {
		d := l.drop.Load()
		if d <= 0 {
			l.slots <- s
			return
		}
		if l.drop.CompareAndSwap(d, d-1) {
			return
		}
	}
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
		if n := l.waiting.Add(1); l.c.QueueLimit > 0 && n > int64(l.c.QueueLimit)*max(l.ready.Load(), 1) {
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
	defer l.release(s)
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

// replicasHandler is a service's scaling endpoint: GET /admin/replicas
// answers {"desired":N,"ready":M}; POST /admin/replicas?n=N scales to N.
func replicasHandler(l pool, startup time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
		case http.MethodPost:
			n, err := strconv.Atoi(r.URL.Query().Get("n"))
			if err == nil {
				err = l.scale(n, startup)
			}
			if err != nil {
				http.Error(w, fmt.Sprintf("n: %v", err), http.StatusBadRequest)
				return
			}
		default:
			w.Header().Set("Allow", "GET, POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(l.replicas())
	})
}
