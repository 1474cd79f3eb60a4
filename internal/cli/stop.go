package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// ErrInterrupted is the cause of a Stopper's context after the first
// signal: context.Cause reports it wrapped with the signal's name.
var ErrInterrupted = errors.New("interrupted")

// ErrStoppedAtOnce is what Wait returns when the second signal arrived
// before the work ended: the graceful path was abandoned.
var ErrStoppedAtOnce = errors.New("stopped at once by a second signal: no result was written")

// Stopper turns interrupts into the stop every long command shares. The
// first signal stops gracefully: Context is cancelled (and the handlers
// given to Forward are told to stop), so the command ends its load, keeps
// what it measured and writes it as a partial result; it then exits
// ExitAborted. The second signal stops at once: Now is closed (and the
// kill handler called), so Wait returns at once and the process exits
// ExitAborted without finishing the graceful path. Each signal is noted on
// the writer given to NewStopper.
//
// A Stopper is safe for concurrent use. Close it when the command ends.
type Stopper struct {
	ctx      context.Context
	cancel   context.CancelCauseFunc
	now      chan struct{}
	closed   chan struct{} // Close was called
	exited   chan struct{} // watch returned
	note     io.Writer
	graceful string

	mu         sync.Mutex
	sig        os.Signal // the first signal; nil before
	n          int       // signals seen
	stop, kill func(reason string)
	closeOnce  sync.Once
	release    func() // hands the signals back to the Router that opened s; nil for none
}

// NewStopper watches signals until Close or until parent is done. note
// (nil: nowhere) gets a line per signal; graceful says what the first
// signal lets finish, e.g. "in-flight requests get their gracefulStop"
// (may be empty).
func NewStopper(parent context.Context, signals <-chan os.Signal, note io.Writer, graceful string) *Stopper {
	ctx, cancel := context.WithCancelCause(parent)
	s := &Stopper{ctx: ctx, cancel: cancel, now: make(chan struct{}), closed: make(chan struct{}),
		exited: make(chan struct{}), note: note, graceful: graceful}
	go s.watch(parent, signals)
	return s
}

func (s *Stopper) watch(parent context.Context, signals <-chan os.Signal) {
	defer close(s.exited)
	for {
		select {
		case <-s.closed:
			return
		case <-parent.Done():
			return
		case sig, ok := <-signals:
			if !ok {
				return
			}
			s.signal(sig)
		}
	}
}

func (s *Stopper) signal(sig os.Signal) {
	s.mu.Lock()
	s.n++
	n := s.n
	if n == 1 {
		s.sig = sig
	}
	stop, kill := s.stop, s.kill
	s.mu.Unlock()
	reason := "interrupted by " + sig.String()
	switch n {
	case 1:
		if s.note != nil {
			detail := ""
			if s.graceful != "" {
				detail = " (" + s.graceful + ")"
			}
			fmt.Fprintf(s.note, "\n%s: stopping gracefully%s; send again to stop at once\n", sig, detail)
		}
		s.cancel(fmt.Errorf("%w by %s", ErrInterrupted, sig))
		if stop != nil {
			stop(reason)
		}
	case 2:
		if s.note != nil {
			fmt.Fprintf(s.note, "\n%s: stopping at once\n", sig)
		}
		if kill != nil {
			kill(reason)
		}
		close(s.now)
	}
}

// Context is done at the first signal (its cause wraps ErrInterrupted), or
// when the parent is.
func (s *Stopper) Context() context.Context { return s.ctx }

// Now is closed at the second signal.
func (s *Stopper) Now() <-chan struct{} { return s.now }

// Interrupted reports whether a signal arrived.
func (s *Stopper) Interrupted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sig != nil
}

// Reason says what stopped the command ("interrupted by interrupt"), empty
// before a signal.
func (s *Stopper) Reason() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sig == nil {
		return ""
	}
	return "interrupted by " + s.sig.String()
}

// Forward hands the signals to something that stops by itself, like an
// engine whose context must outlive the first signal: stop is called at
// the first signal, kill at the second, each with the reason. Signals that
// arrived before are handed over at once. Forward replaces earlier
// handlers; the context is cancelled at the first signal either way.
func (s *Stopper) Forward(stop, kill func(reason string)) {
	s.mu.Lock()
	s.stop, s.kill = stop, kill
	n, sig := s.n, s.sig
	s.mu.Unlock()
	if n == 0 {
		return
	}
	reason := "interrupted by " + sig.String()
	if stop != nil {
		stop(reason)
	}
	if n >= 2 && kill != nil {
		kill(reason)
	}
}

// Wait runs work and returns its error; when the second signal arrives
// first, it returns at once with ErrStoppedAtOnce (exit code ExitAborted)
// and leaves work running in its goroutine: the process is about to exit.
func (s *Stopper) Wait(work func() error) error {
	done := make(chan error, 1)
	go func() { done <- work() }()
	select {
	case err := <-done:
		return err
	case <-s.now:
		select {
		case err := <-done: // it ended too: its outcome is the better answer
			return err
		default:
			return WithCode(ExitAborted, ErrStoppedAtOnce)
		}
	}
}

// Close stops watching the signals: once it returns, later ones stay
// unread, for whatever watches next. The context is released (cancelled,
// without a signal cause).
func (s *Stopper) Close() {
	s.closeOnce.Do(func() {
		if s.release != nil {
			s.release()
		}
		close(s.closed)
		<-s.exited
		s.cancel(context.Canceled)
	})
}
