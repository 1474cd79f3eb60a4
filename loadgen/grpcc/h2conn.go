package grpcc

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
)

// Our own HTTP/2 client connection for unary calls. One h2conn carries many
// concurrent streams: callers write their frames under wmu (the last writer
// of a burst flushes, so concurrent calls share a write syscall), one reader
// goroutine decodes every frame and completes calls by stream id, and one
// control goroutine writes what the reader must answer (SETTINGS and PING
// acks, WINDOW_UPDATEs), so that the reader never waits for the socket's
// write side.
//
// Lock order: wmu, then mu, then cmu.

// Windows we advertise: large, so that servers rarely wait for our
// WINDOW_UPDATEs; we return credit when a quarter is used.
const (
	h2StreamWindow = 4 << 20
	h2ConnWindow   = 4 << 20
	h2DefaultFrame = 16 << 10
	h2DefaultWin   = 65535
	h2ReadMaxFrame = 1 << 20 // accepted from servers that ignore our default
	h2BufSize      = 64 << 10
	h2MaxStreamID  = 1<<31 - 1
)

// h2dialTimeout bounds a dial whose call has no deadline.
const h2dialTimeout = 20 * time.Second

// errRetry is a call that was refused before any of it was sent (the
// connection is going away or dead): the caller may redial and retry.
var errRetry = errors.New("grpcc: connection not usable")

type h2conn struct {
	nc net.Conn
	fr *http2.Framer // writes under wmu; reads by the reader only
	bw *bufio.Writer

	wmu     sync.Mutex
	wwait   atomic.Int32 // writers holding or waiting for wmu: the last flushes
	werr    error        // first write error, under wmu
	scratch []byte       // DATA payload assembly, under wmu

	broken atomic.Bool // going away or dead: no new streams

	mu         sync.Mutex
	streams    map[uint32]*h2stream
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
	cur      *h2stream // stream of the header block being decoded
	curEnd   bool      // that block's HEADERS had END_STREAM
	recvUnac uint32

	cmu      sync.Mutex
	ctrlCh   chan struct{}
	cConnInc uint32
	cStream  []h2inc
	cPings   [][8]byte
	cAcks    int
}

type h2inc struct{ id, n uint32 }

// h2stream is one call's state. A Caller owns one and reuses it: the
// reader writes it (under h2conn.mu) until it removes it from the stream
// map, and signals done once.
type h2stream struct {
	id   uint32
	done chan struct{}

	sendWin  int64
	recvUnac uint32
	finished bool

	httpStatus int
	ctOK       bool
	hasStatus  bool
	status     int
	message    string
	rst        bool
	rstCode    http2.ErrCode
	connErr    error

	nrecv int64
	msgs  int
	hdrN  int // prefix bytes seen of the current message
	need  uint32
	plen  uint32
}

func (s *h2stream) reset() {
	done := s.done
	*s = h2stream{done: done}
}

// h2opts is what dialling needs.
type h2opts struct {
	target    string
	authority string
	tls       *tls.Config
}

// dialH2 connects, exchanges SETTINGS and starts the reader.
func dialH2(ctx context.Context, o *h2opts) (*h2conn, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h2dialTimeout)
		defer cancel()
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", o.target)
	if err != nil {
		return nil, err
	}
	if o.tls != nil {
		cfg := o.tls.Clone()
		if cfg.ServerName == "" {
			host, _, err := net.SplitHostPort(o.authority)
			if err != nil {
				host = o.authority
			}
			cfg.ServerName = host
		}
		cfg.NextProtos = []string{"h2"}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("tls handshake: %w", err)
		}
		if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
			nc.Close()
			return nil, fmt.Errorf("tls: the server did not negotiate h2 (ALPN %q)", p)
		}
		nc = tc
	}
	c := &h2conn{
		nc:         nc,
		bw:         bufio.NewWriterSize(nc, h2BufSize),
		streams:    map[uint32]*h2stream{},
		nextID:     1,
		maxStreams: 1<<32 - 1,
		slotFree:   make(chan struct{}, 1),
		sendWin:    h2DefaultWin,
		peerWin:    h2DefaultWin,
		maxFrame:   h2DefaultFrame,
		closed:     make(chan struct{}),
		ctrlCh:     make(chan struct{}, 1),
		scratch:    make([]byte, 0, h2DefaultFrame),
	}
	// The framer only writes: frames are read by readFrame, which
	// allocates nothing.
	c.br = bufio.NewReaderSize(nc, h2BufSize)
	c.rbuf = make([]byte, h2DefaultFrame)
	c.fr = http2.NewFramer(c.bw, nil)
	c.dec = hpack.NewDecoder(4096, c.field)

	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	fail := func(err error) (*h2conn, error) {
		nc.Close()
		return nil, fmt.Errorf("http/2 handshake: %w", err)
	}
	if _, err := io.WriteString(c.bw, http2.ClientPreface); err != nil {
		return fail(err)
	}
	if err := c.fr.WriteSettings(
		http2.Setting{ID: http2.SettingEnablePush, Val: 0},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: h2StreamWindow},
	); err != nil {
		return fail(err)
	}
	if err := c.fr.WriteWindowUpdate(0, h2ConnWindow-h2DefaultWin); err != nil {
		return fail(err)
	}
	if err := c.bw.Flush(); err != nil {
		return fail(err)
	}
	// The server's SETTINGS come first: read them before any stream opens,
	// so that MAX_CONCURRENT_STREAMS holds from the first call.
	h, payload, err := c.readFrame()
	if err != nil {
		return fail(err)
	}
	if h.typ != http2.FrameSettings || h.flags&http2.FlagSettingsAck != 0 {
		return fail(fmt.Errorf("first frame %v, want SETTINGS", h.typ))
	}
	if err := c.applySettings(payload); err != nil {
		return fail(err)
	}
	if err := c.fr.WriteSettingsAck(); err != nil {
		return fail(err)
	}
	if err := c.bw.Flush(); err != nil {
		return fail(err)
	}
	_ = nc.SetDeadline(time.Time{})
	go c.readLoop()
	go c.ctrlLoop()
	return c, nil
}

// applySettings takes the server's settings (a SETTINGS frame's payload,
// from the reader or the dial).
func (c *h2conn) applySettings(p []byte) error {
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
			c.maxFrame = int(min(max(s.Val, h2DefaultFrame), 1<<20))
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
func (c *h2conn) windowGrew() {
	if c.winMore != nil {
		close(c.winMore)
		c.winMore = nil
	}
}

// passSlot wakes a slot waiter when a slot is free; under mu.
func (c *h2conn) passSlot() {
	if c.waiters > 0 && uint32(c.active) < c.maxStreams {
		wake(c.slotFree)
	}
}

// lockW takes the write lock; unlockW releases it, flushing when no other
// writer is waiting.
func (c *h2conn) lockW() {
	c.wwait.Add(1)
	c.wmu.Lock()
}

func (c *h2conn) unlockW() {
	if c.wwait.Add(-1) == 0 && c.werr == nil {
		if err := c.bw.Flush(); err != nil {
			c.werr = err
		}
	}
	err := c.werr
	c.wmu.Unlock()
	if err != nil {
		c.fail(fmt.Errorf("write: %w", err))
	}
}

// fail closes the connection after err: every open call fails Unavailable
// (through the reader, which sees the closed socket).
func (c *h2conn) fail(err error) {
	c.broken.Store(true)
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	_ = c.nc.Close()
}

// close closes the connection; open calls fail with err (Canceled when
// it is context.Canceled, else Unavailable).
func (c *h2conn) close(err error) { c.fail(err) }

// usable reports whether new streams may open on c.
func (c *h2conn) usable() bool { return !c.broken.Load() }

// roundTrip sends one call (header block hdr, gRPC message body) on stream
// s and waits for its end or ctx's. It returns errRetry when nothing was
// sent because the connection cannot take the stream.
func (c *h2conn) roundTrip(ctx context.Context, s *h2stream, hdr, body []byte) error {
	// A stream slot (MAX_CONCURRENT_STREAMS).
	c.mu.Lock()
	for {
		if c.goAway || c.err != nil {
			c.mu.Unlock()
			return errRetry
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
		case <-c.closed:
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
	c.mu.Lock()
	if c.goAway || c.err != nil || c.nextID > h2MaxStreamID {
		if c.nextID > h2MaxStreamID {
			c.goAway = true
			c.broken.Store(true)
		}
		c.active--
		c.passSlot()
		c.mu.Unlock()
		c.unlockW()
		return errRetry
	}
	s.id = c.nextID
	c.nextID += 2
	s.sendWin = c.peerWin
	c.streams[s.id] = s
	maxFrame := c.maxFrame
	c.mu.Unlock()
	c.writeHeaders(s.id, hdr, maxFrame)
	c.writeBody(ctx, s, body)
	c.unlockW()

	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
	}
	c.mu.Lock()
	mine := c.streams[s.id] == s
	if mine {
		c.endStream(s)
	}
	c.mu.Unlock()
	if !mine {
		<-s.done // it ended meanwhile: keep its result
		return nil
	}
	c.lockW()
	if c.werr == nil {
		c.werr = c.fr.WriteRSTStream(s.id, http2.ErrCodeCancel)
	}
	c.unlockW()
	return ctx.Err()
}

// endStream removes s from the open streams and frees its slot; under mu.
func (c *h2conn) endStream(s *h2stream) {
	delete(c.streams, s.id)
	s.finished = true
	c.active--
	c.passSlot()
	if c.goAway && c.active == 0 {
		go c.close(errors.New("server went away"))
	}
}

// writeHeaders writes a header block as HEADERS and CONTINUATIONs; under
// wmu.
func (c *h2conn) writeHeaders(id uint32, hdr []byte, maxFrame int) {
	if c.werr != nil {
		return
	}
	first := hdr[:min(len(hdr), maxFrame)]
	rest := hdr[len(first):]
	c.werr = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndHeaders: len(rest) == 0})
	for len(rest) > 0 && c.werr == nil {
		n := min(len(rest), maxFrame)
		c.werr = c.fr.WriteContinuation(id, n == len(rest), rest[:n])
		rest = rest[n:]
	}
}

// writeBody writes the gRPC message (5-byte prefix and body) in DATA
// frames within the server's windows and frame size, the last with
// END_STREAM; under wmu, which it releases while it waits for window.
func (c *h2conn) writeBody(ctx context.Context, s *h2stream, body []byte) {
	total := frameOverhead + len(body)
	var prefix [frameOverhead]byte
	prefix[1], prefix[2], prefix[3], prefix[4] = byte(len(body)>>24), byte(len(body)>>16), byte(len(body)>>8), byte(len(body))
	for off := 0; off < total; {
		if c.werr != nil {
			return
		}
		c.mu.Lock()
		if s.finished {
			c.mu.Unlock()
			return // answered or reset already: the rest is not wanted
		}
		n := min(int64(total-off), c.sendWin, s.sendWin, int64(c.maxFrame))
		if n <= 0 {
			if c.winMore == nil {
				c.winMore = make(chan struct{})
			}
			more := c.winMore
			c.mu.Unlock()
			// Wait for a WINDOW_UPDATE without holding the writer.
			c.unlockW()
			select {
			case <-more:
			case <-ctx.Done():
			case <-c.closed:
			case <-s.done:
				// Ended while waiting: put the signal back for roundTrip.
				s.done <- struct{}{}
			}
			c.lockW()
			if ctx.Err() != nil {
				return
			}
			continue
		}
		c.sendWin -= n
		s.sendWin -= n
		c.mu.Unlock()
		buf := c.scratch[:0]
		end := off + int(n)
		if off < frameOverhead {
			buf = append(buf, prefix[off:min(end, frameOverhead)]...)
		}
		if end > frameOverhead {
			buf = append(buf, body[max(off-frameOverhead, 0):end-frameOverhead]...)
		}
		c.scratch = buf[:0]
		c.werr = c.fr.WriteData(s.id, end == total, buf)
		off = end
	}
}

// readLoop reads frames until the connection fails, then fails every open
// call.
func (c *h2conn) readLoop() {
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
	c.broken.Store(true)
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	cerr := c.err
	for _, s := range c.streams {
		s.connErr = cerr
		c.finish(s)
	}
	c.mu.Unlock()
	_ = c.nc.Close()
	close(c.closed)
}

// finish ends s and wakes its caller; under mu.
func (c *h2conn) finish(s *h2stream) {
	c.endStream(s)
	s.done <- struct{}{}
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
func (c *h2conn) readFrame() (frameHeader, []byte, error) {
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
	if h.length > h2ReadMaxFrame {
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

func (c *h2conn) handle(h frameHeader, p []byte) error {
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
			s.rst, s.rstCode = true, http2.ErrCode(binary.BigEndian.Uint32(p))
			c.finish(s)
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

// goaway fails the streams the server will not process (above last) with
// Unavailable and stops new streams; the others run to their end.
func (c *h2conn) goaway(last uint32, code http2.ErrCode) {
	c.broken.Store(true)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.goAway = true
	for id, s := range c.streams {
		if id > last {
			s.connErr = fmt.Errorf("server sent GOAWAY (%v) before stream %d", code, id)
			c.finish(s)
		}
	}
	if c.active == 0 {
		go c.close(errors.New("server went away"))
	}
	wake(c.slotFree)
}

// data takes a DATA frame of header h and unpadded payload d.
func (c *h2conn) data(h frameHeader, d []byte) {
	n := h.length // padding counts against windows
	c.mu.Lock()
	if s := c.streams[h.stream]; s != nil {
		s.nrecv += int64(len(d))
		s.count(d)
		if h.flags&http2.FlagDataEndStream != 0 {
			c.finish(s)
		} else if s.recvUnac += n; s.recvUnac >= h2StreamWindow/4 {
			c.cmu.Lock()
			c.cStream = append(c.cStream, h2inc{s.id, s.recvUnac})
			c.cmu.Unlock()
			s.recvUnac = 0
			wake(c.ctrlCh)
		}
	}
	c.mu.Unlock()
	if c.recvUnac += n; c.recvUnac >= h2ConnWindow/4 {
		c.cmu.Lock()
		c.cConnInc += c.recvUnac
		c.cmu.Unlock()
		c.recvUnac = 0
		wake(c.ctrlCh)
	}
}

// count follows the gRPC length prefixes in d to count messages.
func (s *h2stream) count(d []byte) {
	for len(d) > 0 {
		if s.need > 0 {
			k := min(uint32(len(d)), s.need)
			s.need -= k
			d = d[k:]
			continue
		}
		if s.hdrN > 0 {
			s.plen = s.plen<<8 | uint32(d[0])
		}
		s.hdrN++
		d = d[1:]
		if s.hdrN == frameOverhead {
			s.msgs++
			s.need, s.hdrN, s.plen = s.plen, 0, 0
		}
	}
}

// headers decodes a header block fragment into stream id's state (a
// stream no longer open still goes through the decoder, whose table the
// server's encoder shares).
func (c *h2conn) headers(id uint32, frag []byte, ended, endStream bool) error {
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
	if s := c.cur; s != nil && (endStream || s.hasStatus) {
		c.finish(s)
	}
	c.cur = nil
	return nil
}

// field is the decoder's emit function: it keeps what a call's result
// needs. Under mu (headers).
func (c *h2conn) field(f hpack.HeaderField) {
	s := c.cur
	if s == nil {
		return
	}
	switch f.Name {
	case ":status":
		s.httpStatus, _ = strconv.Atoi(f.Value)
	case "content-type":
		s.ctOK = len(f.Value) >= 16 && f.Value[:16] == "application/grpc"
	case "grpc-status":
		if v, err := strconv.Atoi(f.Value); err == nil {
			s.hasStatus, s.status = true, v
		}
	case "grpc-message":
		s.message = f.Value
	}
}

// ctrlLoop writes the frames the reader asks for.
func (c *h2conn) ctrlLoop() {
	var incs []h2inc
	var pings [][8]byte
	for {
		select {
		case <-c.ctrlCh:
		case <-c.closed:
			return
		}
		c.cmu.Lock()
		connInc, acks := c.cConnInc, c.cAcks
		c.cConnInc, c.cAcks = 0, 0
		incs, c.cStream = c.cStream, incs[:0]
		pings, c.cPings = c.cPings, pings[:0]
		c.cmu.Unlock()
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
	}
}

// write keeps the first write error; under wmu.
func (c *h2conn) write(err error) {
	if c.werr == nil {
		c.werr = err
	}
}

// h2code maps an RST_STREAM code to a gRPC code as grpc-go does.
func h2code(e http2.ErrCode) codes.Code {
	switch e {
	case http2.ErrCodeRefusedStream:
		return codes.Unavailable
	case http2.ErrCodeCancel:
		return codes.Canceled
	case http2.ErrCodeFlowControl, http2.ErrCodeEnhanceYourCalm:
		return codes.ResourceExhausted
	case http2.ErrCodeInadequateSecurity:
		return codes.PermissionDenied
	}
	return codes.Internal
}

// httpCode maps a non-200 HTTP status without grpc-status to a gRPC code
// (the gRPC HTTP/2 spec's table).
func httpCode(status int) codes.Code {
	switch status {
	case 400:
		return codes.Internal
	case 401:
		return codes.Unauthenticated
	case 403:
		return codes.PermissionDenied
	case 404:
		return codes.Unimplemented
	case 429, 502, 503, 504:
		return codes.Unavailable
	}
	return codes.Unknown
}
