package cli

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"
)

func TestRouter(t *testing.T) {
	sig := make(chan os.Signal)
	r := NewRouter(sig)
	defer r.Close()
	unhandled := func(want bool) {
		t.Helper()
		select {
		case <-r.Unhandled():
			if !want {
				t.Error("a signal went unhandled while a Stopper was open")
			}
		case <-time.After(200 * time.Millisecond):
			if want {
				t.Error("a signal with no Stopper open was not handed to Unhandled: the command would ignore it")
			}
		}
	}

	sig <- syscall.SIGINT // before any Stopper: the command stops at once
	unhandled(true)

	s := r.Stopper(context.Background(), nil, "")
	sig <- syscall.SIGTERM
	select {
	case <-s.Context().Done():
	case <-time.After(wait):
		t.Fatal("the open Stopper did not get the signal")
	}
	unhandled(false)
	sig <- syscall.SIGTERM
	select {
	case <-s.Now():
	case <-time.After(wait):
		t.Fatal("the open Stopper did not get the second signal")
	}
	s.Close()

	sig <- syscall.SIGINT // after the Stopper closed: unhandled again
	unhandled(true)
}
