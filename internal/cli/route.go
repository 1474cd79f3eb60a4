package cli

import (
	"context"
	"io"
	"os"
	"sync"
)

// Router reads a process's interrupts and hands each to the Stopper open
// at the time, which stops its command gracefully. A signal that arrives
// while no Stopper is open (a command with no graceful path to take, or
// one before or after its stoppable part) goes to Unhandled: the command
// has nothing to keep, and stops at once. Without a Router such a signal
// would go unread, and the command would ignore it.
//
// One Stopper is open at a time: opening one hands the signals to it, and
// closing it hands them back to Unhandled.
type Router struct {
	mu        sync.Mutex
	cur       chan os.Signal // the open Stopper's signals; nil when none is open
	unhandled chan os.Signal
	closed    chan struct{}
	exited    chan struct{}
	closeOnce sync.Once
}

// NewRouter reads signals until Close.
func NewRouter(signals <-chan os.Signal) *Router {
	r := &Router{unhandled: make(chan os.Signal, 1), closed: make(chan struct{}), exited: make(chan struct{})}
	go r.route(signals)
	return r
}

func (r *Router) route(signals <-chan os.Signal) {
	defer close(r.exited)
	for {
		select {
		case <-r.closed:
			return
		case sig, ok := <-signals:
			if !ok {
				return
			}
			r.mu.Lock()
			to := r.cur
			if to == nil {
				to = r.unhandled
			}
			r.mu.Unlock()
			select { // a Stopper acts on two signals, Unhandled on one: more are noise
			case to <- sig:
			default:
			}
		}
	}
}

// Unhandled gets a signal that arrived while no Stopper was open.
func (r *Router) Unhandled() <-chan os.Signal { return r.unhandled }

// Stopper opens a Stopper (see NewStopper) that gets the signals until it
// is closed.
func (r *Router) Stopper(ctx context.Context, note io.Writer, graceful string) *Stopper {
	ch := make(chan os.Signal, 2)
	r.mu.Lock()
	r.cur = ch
	r.mu.Unlock()
	s := NewStopper(ctx, ch, note, graceful)
	s.release = func() {
		r.mu.Lock()
		if r.cur == ch {
			r.cur = nil
		}
		r.mu.Unlock()
	}
	return s
}

// Close stops reading the signals.
func (r *Router) Close() {
	r.closeOnce.Do(func() {
		close(r.closed)
		<-r.exited
	})
}
