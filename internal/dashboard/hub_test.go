package dashboard

import (
	"fmt"
	"testing"
	"time"
)

// TestHubDropsSlowPage: a page that does not read is dropped once its
// buffer is full, publishing never waits for it, and a page that keeps up
// gets every event in order.
func TestHubDropsSlowPage(t *testing.T) {
	const size = 4
	h := newHub(size)
	slow := h.join([]byte("hello"))
	fast := h.join(nil)
	got := make(chan []string, 1)
	go func() {
		var evs []string
		for {
			select {
			case ev := <-fast.events:
				evs = append(evs, string(ev))
			case <-fast.gone: // left: take what was queued before
				for len(fast.events) > 0 {
					evs = append(evs, string(<-fast.events))
				}
				got <- evs
				return
			}
		}
	}()
	const n = 1000
	start := time.Now()
	dropped := 0
	for i := range n {
		dropped += h.publish(fmt.Appendf(nil, "%d", i))
		if i%size == 0 {
			time.Sleep(time.Millisecond) // let the fast page read
		}
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("publishing %d events took %v", n, took)
	}
	if dropped != 1 {
		t.Errorf("%d pages dropped, want the slow one", dropped)
	}
	select {
	case <-slow.gone:
	default:
		t.Fatal("the slow page was not told it was dropped")
	}
	if len(slow.events) != size+1 {
		t.Errorf("the slow page holds %d events, want its buffer (%d)", len(slow.events), size+1)
	}
	if h.len() != 1 {
		t.Errorf("%d pages watching, want the fast one", h.len())
	}
	h.leave(fast)
	evs := <-got
	if len(evs) != n {
		t.Fatalf("the fast page got %d events of %d", len(evs), n)
	}
	for i, ev := range evs {
		if ev != fmt.Sprint(i) {
			t.Fatalf("event %d is %q: out of order", i, ev)
		}
	}
}

// TestHubPublishNeverBlocks: with a thousand pages that read nothing,
// publishing stays immediate and drops them all.
func TestHubPublishNeverBlocks(t *testing.T) {
	h := newHub(2)
	for range 1000 {
		h.join(nil)
	}
	done := make(chan int)
	go func() {
		n := 0
		for range 10 {
			n += h.publish([]byte("x"))
		}
		done <- n
	}()
	select {
	case n := <-done:
		if n != 1000 || h.len() != 0 {
			t.Errorf("dropped %d, %d left; want all 1000 dropped", n, h.len())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("publish blocked on pages that do not read")
	}
}
