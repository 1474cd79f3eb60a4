package cli

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/loadcap/loadcap/test/testkit"
)

// wait bounds how long a test waits for something that should happen at
// once: generous for a loaded machine, short of a hung test.
const wait = 10 * time.Second

func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func TestStopperFirstSignalCancelsGracefully(t *testing.T) {
	sig := make(chan os.Signal)
	var note testkit.SyncBuffer
	s := NewStopper(context.Background(), sig, &note, "requests finish")
	defer s.Close()
	if s.Interrupted() || s.Reason() != "" || s.Context().Err() != nil {
		t.Fatal("stopped before any signal")
	}
	sig <- syscall.SIGINT // unbuffered: taken by the stopper
	select {
	case <-s.Context().Done():
	case <-time.After(wait):
		t.Fatal("the first signal did not cancel the context")
	}
	if cause := context.Cause(s.Context()); !errors.Is(cause, ErrInterrupted) || !strings.Contains(cause.Error(), "interrupt") {
		t.Errorf("cause %v", cause)
	}
	if !s.Interrupted() || s.Reason() != "interrupted by interrupt" {
		t.Errorf("Interrupted %v, Reason %q", s.Interrupted(), s.Reason())
	}
	if closed(s.Now()) {
		t.Error("one signal closed Now")
	}
	if n := note.String(); !strings.Contains(n, "stopping gracefully (requests finish); send again to stop at once") {
		t.Errorf("note %q", n)
	}
}

func TestStopperSecondSignalStopsAtOnce(t *testing.T) {
	sig := make(chan os.Signal)
	var note testkit.SyncBuffer
	s := NewStopper(context.Background(), sig, &note, "")
	defer s.Close()
	var mu sync.Mutex
	var calls []string
	s.Forward(func(r string) { mu.Lock(); calls = append(calls, "stop: "+r); mu.Unlock() },
		func(r string) { mu.Lock(); calls = append(calls, "kill: "+r); mu.Unlock() })

	block := make(chan struct{})
	defer close(block)
	result := make(chan error, 1)
	go func() {
		// Work that ignores the first signal's cancellation.
		result <- s.Wait(func() error { <-block; return nil })
	}()
	sig <- syscall.SIGTERM
	<-s.Context().Done()
	select {
	case err := <-result:
		t.Fatalf("Wait returned %v after one signal: the graceful path must be waited for", err)
	case <-time.After(100 * time.Millisecond):
	}
	sig <- syscall.SIGINT
	select {
	case err := <-result:
		if !errors.Is(err, ErrStoppedAtOnce) || ExitCode(err) != int(ExitAborted) {
			t.Errorf("Wait: %v (exit %d), want ErrStoppedAtOnce, 105", err, ExitCode(err))
		}
	case <-time.After(wait):
		t.Fatal("the second signal did not end Wait")
	}
	if !closed(s.Now()) {
		t.Error("Now not closed")
	}
	mu.Lock()
	got := strings.Join(calls, "; ")
	mu.Unlock()
	if got != "stop: interrupted by terminated; kill: interrupted by interrupt" {
		t.Errorf("handlers: %s", got)
	}
	if n := note.String(); !strings.Contains(n, "interrupt: stopping at once") {
		t.Errorf("note %q", n)
	}
}

func TestStopperForwardAfterTheSignal(t *testing.T) {
	sig := make(chan os.Signal, 2)
	sig <- syscall.SIGINT
	sig <- syscall.SIGINT
	s := NewStopper(context.Background(), sig, nil, "")
	defer s.Close()
	select {
	case <-s.Now():
	case <-time.After(wait):
		t.Fatal("two signals did not close Now")
	}
	// An engine built after the signals still hears them: stopped and
	// killed as soon as it is handed over.
	var stopped, killed bool
	s.Forward(func(string) { stopped = true }, func(string) { killed = true })
	if !stopped || !killed {
		t.Errorf("stopped %v, killed %v", stopped, killed)
	}
}

func TestStopperWaitReturnsWorkError(t *testing.T) {
	s := NewStopper(context.Background(), make(chan os.Signal), nil, "")
	defer s.Close()
	boom := errors.New("boom")
	if err := s.Wait(func() error { return boom }); err != boom {
		t.Errorf("Wait: %v, want the work's error", err)
	}
}

func TestStopperClose(t *testing.T) {
	sig := make(chan os.Signal, 1)
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := NewStopper(parent, sig, nil, "")
	s.Close()
	if s.Context().Err() == nil {
		t.Error("Close did not release the context")
	}
	sig <- syscall.SIGINT
	time.Sleep(50 * time.Millisecond)
	if s.Interrupted() || len(sig) != 1 {
		t.Error("a closed stopper took a signal")
	}
	// The parent's end cancels without a signal.
	s2 := NewStopper(parent, make(chan os.Signal), nil, "")
	defer s2.Close()
	cancel()
	<-s2.Context().Done()
	if s2.Interrupted() || errors.Is(context.Cause(s2.Context()), ErrInterrupted) {
		t.Error("the parent's end counted as a signal")
	}
}
