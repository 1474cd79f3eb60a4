package h2

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// One Conn carries many concurrent streams: callers append their frames
// to the write queue under wmu and one writer goroutine writes the queue
// out when it has gone idle (as h2load's event loop and grpc-go's loopy
// writer do): woken by the first frame of a burst, it first yields the
// processor, so that every goroutine ready to run (the callers the reader
// just answered) queues its request too, and one write syscall carries
// them all. One reader goroutine decodes every frame and completes streams
// by id, and one control goroutine queues what the reader must answer
// (SETTINGS and PING acks, WINDOW_UPDATEs), so that the reader never waits
// for the socket's write side.
//
// The queue needs no bound of its own: each stream queues one header
// block, DATA stays within the server's flow-control windows, and control
// frames answer the server's.
//
// Lock order: wmu, then mu, then cmu.

// Windows we advertise: large, so that servers rarely wait for our
// WINDOW_UPDATEs; we return credit when a quarter is used.
const (
	streamWindow = 4 << 20
	connWindow   = 4 << 20
	defaultFrame = 16 << 10
	defaultWin   = 65535
	readMaxFrame = 1 << 20 // accepted from servers that ignore our default
	bufSize      = 64 << 10
	maxStreamID  = 1<<31 - 1
)

// DefaultDialTimeout bounds a dial when Options.DialTimeout is 0 and the
// dial's context has no deadline.
const DefaultDialTimeout = 20 * time.Second

// ErrRetry is a round trip refused before any of it was sent (the
// connection is going away or dead): the caller may retry it on another
// connection.
var ErrRetry = errors.New("h2: connection not usable")

// ErrExpired is a round trip or a wait for a connection ended by its
// expire channel (the caller's timer).
var ErrExpired = errors.New("h2: request timed out")

// TLSError is a failed TLS handshake, or a server that did not agree to
// h2 by ALPN.
type TLSError struct{ Err error }

func (e *TLSError) Error() string { return "tls handshake: " + e.Err.Error() }
func (e *TLSError) Unwrap() error { return e.Err }

// ProtocolError is a server that broke HTTP/2: a bad preface, frame or
// header block. http2.ConnectionError reports the same on a running
// connection.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return "http/2 protocol error: " + e.Msg }

// IsProtocol reports whether err is a server's HTTP/2 protocol violation.
func IsProtocol(err error) bool {
	var pe *ProtocolError
	var ce http2.ConnectionError
	return errors.As(err, &pe) || errors.As(err, &ce)
}

// wrapConn, when set (by tests), wraps every connection Dial makes.
var wrapConn func(net.Conn) net.Conn

// Options is what dialling needs.
type Options struct {
	Addr        string        // dial address, host:port
	ServerName  string        // TLS server name; "" = Addr's host
	TLS         *tls.Config   // nil = h2c with prior knowledge. Not modified.
	DialTimeout time.Duration // connect and handshake; 0 = DefaultDialTimeout
}

// Conn is one HTTP/2 client connection. Its methods are safe for
// concurrent use.
type Conn struct {
	nc net.Conn
	fr *http2.Framer // writes into out under wmu; reads by the reader only

	wmu     sync.Mutex
	out     queue         // frames not yet handed to the writer, under wmu
	queued  bool          // the writer is signalled and has not taken out yet, under wmu
	flushCh chan struct{} // wakes the writer
	spare   []byte        // writer-owned: the buffer it last wrote, reused as out
	werr    error         // first write error, under wmu
	scratch []byte        // DATA payload assembly, under wmu

	broken atomic.Bool // going away or dead: no new streams

	mu         sync.Mutex
	streams    map[uint32]*Stream
	nextID     uint32
	active     int    // streams open (counted against maxStreams)
	maxStreams uint32 // server's MAX_CONCURRENT_STREAMS
	waiters    int    // callers waiting for a stream slot
	slotFree   chan struct{}
	sendWin    int64         // connection send window
	peerWin    int64         // server's INITIAL_WINDOW_SIZE
	maxFrame   int           // server's MAX_FRAME_SIZE
	winMore    chan struct{} // closed when a send window grows; nil = nobody waits
	goAway     bool
	err        error // the connection's failure, once dead
	closed     chan struct{}

	// reader-owned
	br       *bufio.Reader
	rbuf     []byte // the frame being read
	hbuf     [9]byte
	dec      *hpack.Decoder
	cur      *Stream // stream of the header block being decoded
	curEnd   bool    // that block's HEADERS had END_STREAM
	recvUnac uint32

	cmu      sync.Mutex
	ctrlCh   chan struct{}
	cConnInc uint32
	cStream  []inc
	cPings   [][8]byte
	cAcks    int

	d *driven // nil unless made by NewDriven
}

type inc struct{ id, n uint32 }

// Receiver takes what the reader decodes for a stream. It is called by
// the connection's reader goroutine while the stream is open, never
// concurrently with the stream's RoundTrip returning.
type Receiver interface {
	// Field is one decoded header or trailer field (pseudo-headers
	// included); the strings may be shared by the decoder's table.
	Field(f hpack.HeaderField)
	// EndHeaders ends a header block; true ends the stream there even
	// without END_STREAM.
	EndHeaders(endStream bool) bool
	// Data is a DATA frame's payload, padding removed; valid during the
	// call only.
	Data(d []byte)
}

// Stream is one request's state. Its owner (a VU) reuses it for one
// round trip at a time: Reset, RoundTrip, then read the outcome.
type Stream struct {
	Recv Receiver // nil = none; kept by Reset

	// The outcome, valid once RoundTrip has returned nil.
	Status    int           // the response's :status (the last one, 1xx included)
	DataBytes int64         // DATA payload received
	RST       bool          // the server reset the stream
	RSTCode   http2.ErrCode // its code
	ConnErr   error         // the connection failed or went away under the stream
	Refused   bool          // GOAWAY: the server did not process the stream (safe to retry)
	Reused    bool          // not the first stream of its connection

	// Timeout, when not 0, ends a round trip with ErrExpired once it has
	// run that long, as an expire channel would. Kept by Reset. With
	// Watch it lets RoundTrip wait on the stream's own signal alone.
	Timeout time.Duration

	// done is the stream's wake-up signal: a hint to look at its state
	// (finished, the timer's fired, the watched context's Err), sent by
	// the reader when the stream ends, by the timer and by the watched
	// context's end. Tokens may be stale; waiters check the state.
	done     chan struct{}
	tm       *streamTimer
	watched  context.Context
	unwatch  func() bool
	id       uint32
	sendWin  int64
	recvUnac uint32
	finished atomic.Bool // ended by the reader (or the caller's reset), under mu; read without it once set
	expired  bool

	// On a driven connection, what Start was given, kept until it is
	// sent, and how much of prefix and body is.
	hdr, prefix, body []byte
	off               int
}

// streamTimer is a stream's Timeout timer, reused from one round trip to
// the next while it never fires: a timer that fired (or raced with its
// Stop) is dropped, so that a late call cannot expire a later round trip.
type streamTimer struct {
	t     *time.Timer
	fired atomic.Bool
}

// Reset clears the outcome for the next round trip.
func (s *Stream) Reset() {
	*s = Stream{Recv: s.Recv, Timeout: s.Timeout, done: s.done, tm: s.tm, watched: s.watched, unwatch: s.unwatch}
}

// Watch makes ctx's end wake s, so that round trips on s whose context is
// ctx (an HTTP client's, the same on every request) and which have no
// expire channel wait on the stream's signal alone: one channel receive
// instead of a select over three. Unwatch undoes it; a canceled ctx
// forgets the watch by itself.
func (s *Stream) Watch(ctx context.Context) {
	s.Unwatch()
	s.init()
	done := s.done
	s.unwatch = context.AfterFunc(ctx, func() { wake(done) })
	s.watched = ctx
}

// Unwatch stops the watch Watch started.
func (s *Stream) Unwatch() {
	if s.unwatch != nil {
		s.unwatch()
		s.unwatch, s.watched = nil, nil
	}
}

func (s *Stream) init() {
	if s.done == nil {
		s.done = make(chan struct{}, 1)
	}
}

// arm starts the Timeout timer of a round trip; disarm stops it.
func (s *Stream) arm() {
	if s.Timeout <= 0 {
		return
	}
	if s.tm == nil {
		tm := &streamTimer{}
		done := s.done
		tm.t = time.AfterFunc(s.Timeout, func() {
			tm.fired.Store(true)
			wake(done)
		})
		s.tm = tm
		return
	}
	s.tm.t.Reset(s.Timeout)
}

func (s *Stream) disarm() {
	if s.Timeout > 0 && s.tm != nil && !s.tm.t.Stop() {
		s.tm = nil
	}
}

// timedOut reports whether this round trip's Timeout has passed.
func (s *Stream) timedOut() bool { return s.tm != nil && s.tm.fired.Load() }

// Dial connects, exchanges SETTINGS and starts the connection's reader.
func Dial(ctx context.Context, o *Options) (*Conn, error) {
	if _, ok := ctx.Deadline(); !ok || o.DialTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cmp(o.DialTimeout, DefaultDialTimeout))
		defer cancel()
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", o.Addr)
	if err != nil {
		return nil, err
	}
	nc = newSysConn(nc)
	if o.TLS != nil {
		cfg := o.TLS.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName = o.ServerName
		}
		if cfg.ServerName == "" {
			host, _, err := net.SplitHostPort(o.Addr)
			if err != nil {
				host = o.Addr
			}
			cfg.ServerName = host
		}
		cfg.NextProtos = []string{"h2"}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, &TLSError{err}
		}
		if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
			nc.Close()
			return nil, &TLSError{fmt.Errorf("the server did not negotiate h2 (ALPN %q)", p)}
		}
		nc = tc
	}
	if wrapConn != nil {
		nc = wrapConn(nc)
	}
	c := newConn(nc)
	c.br = bufio.NewReaderSize(nc, bufSize)
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	fail := func(err error) (*Conn, error) {
		nc.Close()
		return nil, fmt.Errorf("http/2 handshake: %w", err)
	}
	if err := c.out.writeTo(nc); err != nil {
		return fail(err)
	}
	// The server's SETTINGS come first: read them before any stream opens,
	// so that MAX_CONCURRENT_STREAMS holds from the first call.
	h, payload, err := c.readFrame()
	if err != nil {
		return fail(err)
	}
	if err := firstFrame(h); err != nil {
		return fail(err)
	}
	if err := c.applySettings(payload); err != nil {
		return fail(err)
	}
	if err := c.fr.WriteSettingsAck(); err != nil {
		return fail(err)
	}
	if err := c.out.writeTo(nc); err != nil {
		return fail(err)
	}
	_ = nc.SetDeadline(time.Time{})
	go c.readLoop()
	go c.ctrlLoop()
	go c.writeLoop()
	return c, nil
}

// newConn returns a connection on nc (nil for a driven one) with the
// client's preface, SETTINGS and connection window queued.
func newConn(nc net.Conn) *Conn {
	c := &Conn{
		nc:         nc,
		flushCh:    make(chan struct{}, 1),
		spare:      make([]byte, 0, bufSize),
		streams:    map[uint32]*Stream{},
		nextID:     1,
		maxStreams: 1<<32 - 1,
		slotFree:   make(chan struct{}, 1),
		sendWin:    defaultWin,
		peerWin:    defaultWin,
		maxFrame:   defaultFrame,
		closed:     make(chan struct{}),
		ctrlCh:     make(chan struct{}, 1),
		scratch:    make([]byte, 0, defaultFrame),
	}
	// The framer only writes: frames are read by readFrame (or Feed),
	// which allocate nothing.
	c.rbuf = make([]byte, defaultFrame)
	c.out.b = make([]byte, 0, bufSize)
	c.fr = http2.NewFramer(&c.out, nil)
	c.dec = hpack.NewDecoder(4096, c.field)
	// Writes into the queue cannot fail.
	_, _ = io.WriteString(&c.out, http2.ClientPreface)
	_ = c.fr.WriteSettings(
		http2.Setting{ID: http2.SettingEnablePush, Val: 0},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: streamWindow},
	)
	_ = c.fr.WriteWindowUpdate(0, connWindow-defaultWin)
	return c
}

// firstFrame checks that a server's first frame is its SETTINGS.
func firstFrame(h frameHeader) error {
	if h.typ != http2.FrameSettings || h.flags&http2.FlagSettingsAck != 0 {
		return &ProtocolError{fmt.Sprintf("first frame %v, want SETTINGS (is it an HTTP/2 server?)", h.typ)}
	}
	return nil
}

// cmp returns d, or def when d is 0.
func cmp(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// applySettings takes the server's settings (a SETTINGS frame's payload,
// from the reader or the dial).
func (c *Conn) applySettings(p []byte) error {
	if len(p)%6 != 0 {
		return http2.ConnectionError(http2.ErrCodeFrameSize)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for ; len(p) > 0; p = p[6:] {
		s := http2.Setting{ID: http2.SettingID(binary.BigEndian.Uint16(p)), Val: binary.BigEndian.Uint32(p[2:])}
		switch s.ID {
		case http2.SettingMaxConcurrentStreams:
			c.maxStreams = s.Val
			c.passSlot()
		case http2.SettingInitialWindowSize:
			if s.Val > 1<<31-1 {
				return http2.ConnectionError(http2.ErrCodeFlowControl)
			}
			delta := int64(s.Val) - c.peerWin
			c.peerWin = int64(s.Val)
			for _, st := range c.streams {
				st.sendWin += delta
			}
			c.windowGrew()
		case http2.SettingMaxFrameSize:
			c.maxFrame = int(min(max(s.Val, defaultFrame), 1<<20))
		}
	}
	return nil
}

// wake signals ch without blocking; a woken waiter passes the signal on
// while what it waited for is still available.
func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// windowGrew wakes every caller waiting for send window; under mu.
func (c *Conn) windowGrew() {
	if c.winMore != nil {
		close(c.winMore)
		c.winMore = nil
	}
}

// passSlot wakes a slot waiter when a slot is free; under mu.
func (c *Conn) passSlot() {
	if c.waiters > 0 && uint32(c.active) < c.maxStreams {
		wake(c.slotFree)
	}
}

// queue is the connection's write queue: the framer appends to it.
type queue struct{ b []byte }

func (q *queue) Write(p []byte) (int, error) {
	q.b = append(q.b, p...)
	return len(p), nil
}

// writeTo writes the queue out and empties it (the dial, before the
// writer starts).
func (q *queue) writeTo(w io.Writer) error {
	_, err := w.Write(q.b)
	q.b = q.b[:0]
	return err
}

// lockW takes the write lock; unlockW releases it, waking the writer when
// frames are queued.
func (c *Conn) lockW() { c.wmu.Lock() }

func (c *Conn) unlockW() {
	if len(c.out.b) > 0 && !c.queued && c.werr == nil {
		c.queued = true
		wake(c.flushCh)
	}
	err := c.werr
	c.wmu.Unlock()
	if err != nil {
		c.Close(fmt.Errorf("write: %w", err))
	}
}

// writeLoop writes the queue out whenever it is woken, until the
// connection closes.
func (c *Conn) writeLoop() {
	for {
		select {
		case <-c.flushCh:
		case <-c.closed:
			return
		}
		// Let every goroutine ready to run queue its frames first: on a
		// busy connection that is most of the callers the reader has just
		// answered, and their requests leave in this one write.
		runtime.Gosched()
		c.wmu.Lock()
		buf := c.out.b
		c.out.b = c.spare[:0]
		c.queued = false
		c.wmu.Unlock()
		_, err := c.nc.Write(buf)
		c.spare = buf[:0]
		if err != nil {
			c.wmu.Lock()
			if c.werr == nil {
				c.werr = err
			}
			c.wmu.Unlock()
			c.Close(fmt.Errorf("write: %w", err))
			return
		}
	}
}

// Close closes the connection: open streams end with ConnErr err (the
// first reason given wins).
func (c *Conn) Close(err error) {
	c.broken.Store(true)
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	if c.nc != nil { // nil: a driven connection, whose socket is its loop's
		_ = c.nc.Close()
	}
}

// Usable reports whether new streams may open on c.
func (c *Conn) Usable() bool { return !c.broken.Load() }

// RoundTrip sends one request on stream s (reset by the caller): the
// header block hdr (HEADERS and CONTINUATIONs), then prefix and body in
// DATA frames within the server's windows, END_STREAM on the last frame
// (on HEADERS when both are empty). It waits for the stream's end, for
// ctx's or for expire (nil = never). It returns nil when the stream ended
// (s holds the outcome), ErrRetry when nothing was sent because the
// connection cannot take a stream, ErrExpired, or ctx's error; in the
// last two cases the stream is reset. hdr, prefix and body are not
// retained after it returns.
func (c *Conn) RoundTrip(ctx context.Context, expire <-chan time.Time, s *Stream, hdr, prefix, body []byte) error {
	s.init()
	select {
	case <-s.done: // stale: from an earlier round trip
	default:
	}
	s.arm()
	defer s.disarm()
	// One channel receive when nothing else can end the wait: the
	// stream's signal carries its end, its timer and its watched context.
	fast := expire == nil && (s.watched == ctx || ctx.Done() == nil)
	// A stream slot (MAX_CONCURRENT_STREAMS).
	c.mu.Lock()
	for {
		if c.goAway || c.err != nil {
			c.mu.Unlock()
			return ErrRetry
		}
		if uint32(c.active) < c.maxStreams {
			break
		}
		c.waiters++
		c.mu.Unlock()
		var cerr error
		select {
		case <-c.slotFree:
		case <-ctx.Done():
			cerr = ctx.Err()
		case <-expire:
			cerr = ErrExpired
		case <-c.closed:
		case <-s.done: // not open yet: only its timer or context
			if cerr = ctx.Err(); cerr == nil && s.timedOut() {
				cerr = ErrExpired
			}
		}
		c.mu.Lock()
		c.waiters--
		if cerr != nil {
			c.passSlot()
			c.mu.Unlock()
			return cerr
		}
	}
	c.active++
	c.passSlot()
	c.mu.Unlock()

	c.lockW()
	if !c.open(s, hdr, len(prefix)+len(body) == 0) {
		c.unlockW()
		return ErrRetry
	}
	c.writeBody(ctx, expire, s, prefix, body)
	c.unlockW()

	for {
		if s.finished.Load() {
			return nil
		}
		if s.expired || ctx.Err() != nil {
			break
		}
		if fast {
			<-s.done
		} else {
			select {
			case <-s.done:
			case <-ctx.Done():
			case <-expire:
				s.expired = true
			}
		}
		if s.timedOut() {
			s.expired = true
		}
	}
	c.mu.Lock()
	mine := c.streams[s.id] == s
	if mine {
		c.endStream(s)
	}
	c.mu.Unlock()
	if !mine {
		return nil // it ended meanwhile: keep its result
	}
	c.lockW()
	if c.werr == nil {
		c.werr = c.fr.WriteRSTStream(s.id, http2.ErrCodeCancel)
	}
	c.unlockW()
	if s.expired {
		return ErrExpired
	}
	return ctx.Err()
}

// open gives s, which holds one of the active count, the next stream id
// and queues its header block; under wmu. False (the slot given back)
// when the connection takes no more streams.
func (c *Conn) open(s *Stream, hdr []byte, endStream bool) bool {
	c.mu.Lock()
	if c.goAway || c.err != nil || c.nextID > maxStreamID {
		if c.nextID > maxStreamID {
			c.goAway = true
			c.broken.Store(true)
		}
		c.active--
		c.passSlot()
		c.mu.Unlock()
		return false
	}
	s.id = c.nextID
	s.Reused = s.id > 1
	c.nextID += 2
	s.sendWin = c.peerWin
	c.streams[s.id] = s
	maxFrame := c.maxFrame
	c.mu.Unlock()
	c.writeHeaders(s.id, hdr, maxFrame, endStream)
	return true
}

// endStream removes s from the open streams and frees its slot; under mu.
func (c *Conn) endStream(s *Stream) {
	delete(c.streams, s.id)
	s.finished.Store(true)
	c.active--
	c.passSlot()
	if c.goAway && c.active == 0 {
		c.closeGone()
	}
}

// closeGone closes a connection the server went away from once its last
// stream has ended (a driven one's loop closes its socket itself).
func (c *Conn) closeGone() {
	if c.d == nil {
		go c.Close(errors.New("server went away"))
	}
}

// writeHeaders writes a header block as HEADERS and CONTINUATIONs; under
// wmu.
func (c *Conn) writeHeaders(id uint32, hdr []byte, maxFrame int, endStream bool) {
	if c.werr != nil {
		return
	}
	first := hdr[:min(len(hdr), maxFrame)]
	rest := hdr[len(first):]
	c.werr = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first,
		EndStream: endStream, EndHeaders: len(rest) == 0})
	for len(rest) > 0 && c.werr == nil {
		n := min(len(rest), maxFrame)
		c.werr = c.fr.WriteContinuation(id, n == len(rest), rest[:n])
		rest = rest[n:]
	}
}

// writeBody writes prefix and body in DATA frames within the server's
// windows and frame size, the last with END_STREAM; under wmu, which it
// releases while it waits for window.
func (c *Conn) writeBody(ctx context.Context, expire <-chan time.Time, s *Stream, prefix, body []byte) {
	total := len(prefix) + len(body)
	for off := 0; off < total && c.werr == nil; {
		if s.finished.Load() {
			// Answered before the body was all sent: end the stream on
			// the server's side too, unless the server reset it.
			if !s.RST {
				c.werr = c.fr.WriteRSTStream(s.id, http2.ErrCodeCancel)
			}
			return
		}
		var more chan struct{}
		if off, more = c.sendData(s, prefix, body, off); more != nil {
			// Wait for a WINDOW_UPDATE without holding the writer.
			c.unlockW()
			select {
			case <-more:
			case <-ctx.Done():
			case <-expire:
				s.expired = true
			case <-c.closed:
			case <-s.done: // ended, timed out or watched context done
				if s.timedOut() {
					s.expired = true
				}
			}
			c.lockW()
			if s.expired || ctx.Err() != nil {
				return
			}
		}
	}
}

// sendData queues the DATA frame of prefix and body that starts at off,
// as large as the windows and the frame size allow, and returns where the
// next starts; under wmu. When a window is shut it queues nothing and
// returns a channel closed once a window grows. A stream that has ended
// is sent no more: its rest is not wanted.
func (c *Conn) sendData(s *Stream, prefix, body []byte, off int) (int, chan struct{}) {
	np := len(prefix)
	total := np + len(body)
	c.mu.Lock()
	if s.finished.Load() {
		c.mu.Unlock()
		return total, nil
	}
	n := min(int64(total-off), c.sendWin, s.sendWin, int64(c.maxFrame))
	if n <= 0 {
		if c.winMore == nil {
			c.winMore = make(chan struct{})
		}
		more := c.winMore
		c.mu.Unlock()
		return off, more
	}
	c.sendWin -= n
	s.sendWin -= n
	c.mu.Unlock()
	end := off + int(n)
	var buf []byte
	if off >= np {
		buf = body[off-np : end-np] // the framer copies it
	} else {
		buf = append(c.scratch[:0], prefix[off:min(end, np)]...)
		if end > np {
			buf = append(buf, body[:end-np]...)
		}
		c.scratch = buf[:0]
	}
	c.werr = c.fr.WriteData(s.id, end == total, buf)
	return end, nil
}

// readLoop reads frames until the connection fails, then fails every open
// stream.
func (c *Conn) readLoop() {
	var err error
	for {
		var h frameHeader
		var p []byte
		if h, p, err = c.readFrame(); err != nil {
			break
		}
		if err = c.handle(h, p); err != nil {
			break
		}
	}
	c.fail(err)
	_ = c.nc.Close()
	close(c.closed)
}

// fail marks c dead with err (unless it already has a reason) and ends
// every open stream with it.
func (c *Conn) fail(err error) {
	c.broken.Store(true)
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	cerr := c.err
	for _, s := range c.streams {
		s.ConnErr = cerr
		c.finish(s)
	}
	c.mu.Unlock()
}

// finish ends s and wakes its caller; under mu. Once s is ended its
// caller may return and reuse it: s is not touched after.
func (c *Conn) finish(s *Stream) {
	done := s.done
	c.endStream(s)
	if c.d != nil {
		c.d.forget(s, !s.RST)
		c.d.notify(s) // instead of waking a caller
		return
	}
	wake(done)
}

// frameHeader is a frame's 9-byte header.
type frameHeader struct {
	length uint32
	typ    http2.FrameType
	flags  http2.Flags
	stream uint32
}

// readFrame reads one frame; its payload is valid until the next call.
// Reader only.
func (c *Conn) readFrame() (frameHeader, []byte, error) {
	b := c.hbuf[:]
	if _, err := io.ReadFull(c.br, b); err != nil {
		return frameHeader{}, nil, err
	}
	h := frameHeader{
		length: uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]),
		typ:    http2.FrameType(b[3]),
		flags:  http2.Flags(b[4]),
		stream: binary.BigEndian.Uint32(b[5:]) & (1<<31 - 1),
	}
	if h.length > readMaxFrame {
		return h, nil, http2.ConnectionError(http2.ErrCodeFrameSize)
	}
	if int(h.length) > cap(c.rbuf) {
		c.rbuf = make([]byte, h.length)
	}
	p := c.rbuf[:h.length]
	if _, err := io.ReadFull(c.br, p); err != nil {
		return h, nil, err
	}
	return h, p, nil
}

// unpad strips a padded frame's padding.
func unpad(h frameHeader, p []byte) ([]byte, error) {
	if h.flags&http2.FlagDataPadded == 0 { // the same bit in HEADERS
		return p, nil
	}
	if len(p) == 0 || int(p[0]) >= len(p) {
		return nil, http2.ConnectionError(http2.ErrCodeProtocol)
	}
	return p[1 : len(p)-int(p[0])], nil
}

func (c *Conn) handle(h frameHeader, p []byte) error {
	protoErr := http2.ConnectionError(http2.ErrCodeProtocol)
	switch h.typ {
	case http2.FrameData:
		d, err := unpad(h, p)
		if err != nil {
			return err
		}
		c.data(h, d)
	case http2.FrameHeaders:
		frag, err := unpad(h, p)
		if err != nil {
			return err
		}
		if h.flags&http2.FlagHeadersPriority != 0 {
			if len(frag) < 5 {
				return protoErr
			}
			frag = frag[5:]
		}
		return c.headers(h.stream, frag, h.flags&http2.FlagHeadersEndHeaders != 0, h.flags&http2.FlagHeadersEndStream != 0)
	case http2.FrameContinuation:
		return c.headers(h.stream, p, h.flags&http2.FlagContinuationEndHeaders != 0, c.curEnd)
	case http2.FrameRSTStream:
		if len(p) != 4 {
			return http2.ConnectionError(http2.ErrCodeFrameSize)
		}
		c.mu.Lock()
		if s := c.streams[h.stream]; s != nil {
			s.RST, s.RSTCode = true, http2.ErrCode(binary.BigEndian.Uint32(p))
			c.finish(s)
		} else if c.d != nil {
			c.d.reset(h.stream) // answered, then reset: no reset of ours
		}
		c.mu.Unlock()
	case http2.FrameSettings:
		if h.flags&http2.FlagSettingsAck != 0 {
			return nil
		}
		if err := c.applySettings(p); err != nil {
			return err
		}
		c.cmu.Lock()
		c.cAcks++
		c.cmu.Unlock()
		wake(c.ctrlCh)
	case http2.FramePing:
		if len(p) != 8 {
			return http2.ConnectionError(http2.ErrCodeFrameSize)
		}
		if h.flags&http2.FlagPingAck == 0 {
			c.cmu.Lock()
			c.cPings = append(c.cPings, [8]byte(p))
			c.cmu.Unlock()
			wake(c.ctrlCh)
		}
	case http2.FrameWindowUpdate:
		if len(p) != 4 {
			return http2.ConnectionError(http2.ErrCodeFrameSize)
		}
		inc := int64(binary.BigEndian.Uint32(p) & (1<<31 - 1))
		c.mu.Lock()
		if h.stream == 0 {
			c.sendWin += inc
		} else if s := c.streams[h.stream]; s != nil {
			s.sendWin += inc
		}
		c.windowGrew()
		c.mu.Unlock()
	case http2.FrameGoAway:
		if len(p) < 8 {
			return http2.ConnectionError(http2.ErrCodeFrameSize)
		}
		c.goaway(binary.BigEndian.Uint32(p)&(1<<31-1), http2.ErrCode(binary.BigEndian.Uint32(p[4:])))
	case http2.FramePushPromise:
		return protoErr // we said ENABLE_PUSH 0
	}
	return nil
}

// goaway fails the streams the server will not process (above last),
// marked Refused, and stops new streams; the others run to their end.
func (c *Conn) goaway(last uint32, code http2.ErrCode) {
	c.broken.Store(true)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.goAway = true
	for id, s := range c.streams {
		if id > last {
			s.ConnErr = fmt.Errorf("server sent GOAWAY (%v) before stream %d", code, id)
			s.Refused = true
			c.finish(s)
		}
	}
	if c.active == 0 {
		c.closeGone()
	}
	wake(c.slotFree)
}

// data takes a DATA frame of header h and unpadded payload d.
func (c *Conn) data(h frameHeader, d []byte) {
	n := h.length // padding counts against windows
	c.mu.Lock()
	if s := c.streams[h.stream]; s != nil {
		s.DataBytes += int64(len(d))
		if s.Recv != nil {
			s.Recv.Data(d)
		}
		if h.flags&http2.FlagDataEndStream != 0 {
			c.finish(s)
		} else if s.recvUnac += n; s.recvUnac >= streamWindow/4 {
			c.cmu.Lock()
			c.cStream = append(c.cStream, inc{s.id, s.recvUnac})
			c.cmu.Unlock()
			s.recvUnac = 0
			wake(c.ctrlCh)
		}
	}
	c.mu.Unlock()
	if c.recvUnac += n; c.recvUnac >= connWindow/4 {
		c.cmu.Lock()
		c.cConnInc += c.recvUnac
		c.cmu.Unlock()
		c.recvUnac = 0
		wake(c.ctrlCh)
	}
}

// headers decodes a header block fragment into stream id's state (a
// stream no longer open still goes through the decoder, whose table the
// server's encoder shares).
func (c *Conn) headers(id uint32, frag []byte, ended, endStream bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cur = c.streams[id]
	c.curEnd = endStream
	if _, err := c.dec.Write(frag); err != nil {
		return http2.ConnectionError(http2.ErrCodeCompression)
	}
	if !ended {
		return nil
	}
	if err := c.dec.Close(); err != nil {
		return http2.ConnectionError(http2.ErrCodeCompression)
	}
	if s := c.cur; s != nil {
		end := endStream
		if s.Recv != nil && s.Recv.EndHeaders(endStream) {
			end = true
		}
		if end {
			c.finish(s)
		}
	}
	c.cur = nil
	return nil
}

// field is the decoder's emit function; under mu (headers).
func (c *Conn) field(f hpack.HeaderField) {
	s := c.cur
	if s == nil {
		return
	}
	if f.Name == ":status" {
		s.Status, _ = strconv.Atoi(f.Value)
	}
	if s.Recv != nil {
		s.Recv.Field(f)
	}
}

// ctrlLoop writes the frames the reader asks for.
func (c *Conn) ctrlLoop() {
	var incs []inc
	var pings [][8]byte
	for {
		select {
		case <-c.ctrlCh:
		case <-c.closed:
			return
		}
		incs, pings = c.writeCtrl(incs, pings)
	}
}

// writeCtrl queues the frames the reader asked for; incs and pings are
// spare lists for the requests, returned for the next call.
func (c *Conn) writeCtrl(incs []inc, pings [][8]byte) ([]inc, [][8]byte) {
	c.cmu.Lock()
	connInc, acks := c.cConnInc, c.cAcks
	c.cConnInc, c.cAcks = 0, 0
	incs, c.cStream = c.cStream, incs[:0]
	pings, c.cPings = c.cPings, pings[:0]
	c.cmu.Unlock()
	if acks == 0 && len(pings) == 0 && connInc == 0 && len(incs) == 0 {
		return incs, pings
	}
	c.lockW()
	for range acks {
		c.write(c.fr.WriteSettingsAck())
	}
	for _, p := range pings {
		c.write(c.fr.WritePing(true, p))
	}
	if connInc > 0 {
		c.write(c.fr.WriteWindowUpdate(0, connInc))
	}
	for _, in := range incs {
		c.write(c.fr.WriteWindowUpdate(in.id, in.n))
	}
	c.unlockW()
	return incs, pings
}

// write keeps the first write error; under wmu.
func (c *Conn) write(err error) {
	if c.werr == nil {
		c.werr = err
	}
}
