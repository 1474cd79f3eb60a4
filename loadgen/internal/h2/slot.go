package h2

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Slot is one pooled connection: the current connection, replaced after
// it fails or goes away. One dial runs at a time, in its own goroutine,
// bounded by the dial timeout: callers wait for it only as long as their
// contexts and timers allow. Failed dials back off (100 ms doubling to
// 2 s); meanwhile callers fail fast with the dial's error, as grpc-go's
// do in TRANSIENT_FAILURE. A Slot is safe for concurrent use.
type Slot struct {
	ctx    context.Context // done = the slot is closed
	closed error           // what callers get once it is
	o      Options
	cur    atomic.Pointer[Conn]

	mu      sync.Mutex
	dialing chan struct{} // closed when the dial under way ends
	retryAt time.Time
	backoff time.Duration
	lastErr error
}

const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 2 * time.Second
)

// NextBackoff is how long callers fail fast after a failed dial, given
// the wait after the failure before it (0 for none): 100 ms, doubling to
// 2 s.
func NextBackoff(last time.Duration) time.Duration {
	return min(max(2*last, minBackoff), maxBackoff)
}

// NewSlot returns a slot dialling o; once ctx is done the slot refuses
// callers with closed and closes the connection its dial makes.
func NewSlot(ctx context.Context, o Options, closed error) *Slot {
	return &Slot{ctx: ctx, o: o, closed: closed}
}

// Ready returns the current connection if it is usable, else nil: Conn's
// path that never waits.
func (sl *Slot) Ready() *Conn {
	if c := sl.cur.Load(); c != nil && c.Usable() {
		return c
	}
	return nil
}

// Conn returns a usable connection, dialling one if needed. It waits for
// a dial under way until ctx is done (its error) or expire fires
// (ErrExpired; nil = never). Dial errors name the address and wrap the
// cause (*TLSError, *ProtocolError, net errors).
func (sl *Slot) Conn(ctx context.Context, expire <-chan time.Time) (*Conn, error) {
	if c := sl.cur.Load(); c != nil && c.Usable() {
		return c, nil
	}
	sl.mu.Lock()
	if c := sl.cur.Load(); c != nil && c.Usable() {
		sl.mu.Unlock()
		return c, nil
	}
	if sl.ctx.Err() != nil {
		sl.mu.Unlock()
		return nil, sl.closed
	}
	if sl.dialing == nil {
		if time.Now().Before(sl.retryAt) {
			err := sl.lastErr
			sl.mu.Unlock()
			return nil, err
		}
		sl.dialing = make(chan struct{})
		go sl.dial(sl.dialing)
	}
	dialing := sl.dialing
	sl.mu.Unlock()
	select {
	case <-dialing:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-expire:
		return nil, ErrExpired
	}
	sl.mu.Lock()
	c, err := sl.cur.Load(), sl.lastErr
	sl.mu.Unlock()
	if err != nil {
		return nil, err
	}
	// The new connection, even if it went away meanwhile: its RoundTrip
	// then says ErrRetry.
	return c, nil
}

// dial makes the slot's next connection and closes done.
func (sl *Slot) dial(done chan struct{}) {
	c, err := Dial(sl.ctx, &sl.o)
	sl.mu.Lock()
	if err != nil {
		sl.backoff = NextBackoff(sl.backoff)
		sl.retryAt = time.Now().Add(sl.backoff)
		sl.lastErr = fmt.Errorf("connect to %s: %w", sl.o.Addr, err)
	} else {
		sl.backoff, sl.lastErr = 0, nil
		sl.cur.Store(c)
	}
	closed := sl.ctx.Err() != nil
	sl.dialing = nil
	sl.mu.Unlock()
	close(done)
	if closed && c != nil {
		c.Close(sl.closed)
	}
}

// Close closes the current connection with err; the slot redials on its
// next use unless its context is done.
func (sl *Slot) Close(err error) {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if c := sl.cur.Load(); c != nil {
		c.Close(err)
	}
}
