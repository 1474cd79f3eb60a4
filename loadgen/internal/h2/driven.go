package h2

import (
	"encoding/binary"
	"slices"

	"golang.org/x/net/http2"
)

// driven is what a driven connection (NewDriven) keeps for its loop; only
// the loop touches it.
type driven struct {
	notify  func(*Stream) // called with each stream the connection ends, under mu
	ready   bool          // the server's SETTINGS came
	in      []byte        // the start of a frame, kept for the next Feed
	woff    int           // bytes of the write queue already written
	pend    []*Stream     // waiting for the handshake or a stream slot, in order
	sending []*Stream     // open, the rest of their bodies waiting for window
	unsent  []uint32      // streams answered before their bodies were sent: to reset
	incs    []inc         // writeCtrl's spare lists
	pings   [][8]byte
}

// NewDriven returns a connection with no socket and no goroutines, for
// an event loop that owns the socket (as h2load's does): the loop writes
// out what the connection queues (Out, Wrote), feeds it what it reads
// (Feed), starts streams (Start), ends them early (Cancel) and reports
// the socket's failure (Fail). The frames, flow control, SETTINGS, PING
// and GOAWAY are handled as on a dialled Conn, by the same code.
//
// The client's preface is queued from the start; streams started before
// the server's SETTINGS arrive wait for them. notify is called with each
// stream the connection ends (during Feed or Fail, never Cancel);
// it must not call back into the connection. The stream's outcome is then
// in its fields, as after RoundTrip.
//
// A driven Conn is not safe for concurrent use; RoundTrip is not for it.
func NewDriven(notify func(*Stream)) *Conn {
	c := newConn(nil)
	c.d = &driven{notify: notify}
	return c
}

// Ready reports whether the server's SETTINGS have come.
func (c *Conn) Ready() bool { return c.d.ready }

// Start queues s's request (s reset by the caller): the header block hdr,
// then prefix and body in DATA frames as the server's windows allow,
// END_STREAM on the last frame. hdr, prefix and body are kept until they
// are sent. Before the server's SETTINGS, or at its
// MAX_CONCURRENT_STREAMS, s waits its turn, in order. False (nothing
// queued) when the connection takes no more streams: start s on another.
func (c *Conn) Start(s *Stream, hdr, prefix, body []byte) bool {
	if c.broken.Load() {
		return false
	}
	s.hdr, s.prefix, s.body, s.off = hdr, prefix, body, 0
	c.d.pend = append(c.d.pend, s)
	c.openPending()
	if n := len(c.d.pend); n > 0 && c.d.pend[n-1] == s && c.broken.Load() {
		c.d.pend = c.d.pend[:n-1]
		return false
	}
	return true
}

// openPending opens waiting streams while the server allows more.
func (c *Conn) openPending() {
	d := c.d
	n := 0
	for ; n < len(d.pend); n++ {
		c.mu.Lock()
		ok := d.ready && !c.goAway && c.err == nil && uint32(c.active) < c.maxStreams
		if ok {
			c.active++
		}
		c.mu.Unlock()
		if !ok {
			break
		}
		s := d.pend[n]
		c.lockW()
		opened := c.open(s, s.hdr, len(s.prefix)+len(s.body) == 0)
		if opened {
			s.hdr = nil
			if !c.sendBody(s) {
				d.sending = append(d.sending, s)
			}
		}
		c.unlockW()
		if !opened {
			break
		}
	}
	clear(d.pend[:n])
	d.pend = d.pend[:copy(d.pend, d.pend[n:])]
}

// sendBody queues as much of s's body as the windows allow; true once all
// of it is (or s has ended); under wmu.
func (c *Conn) sendBody(s *Stream) bool {
	total := len(s.prefix) + len(s.body)
	for s.off < total {
		off, more := c.sendData(s, s.prefix, s.body, s.off)
		if more != nil {
			return false
		}
		s.off = off
	}
	s.prefix, s.body = nil, nil
	return true
}

// Feed takes bytes read from the socket: it handles every whole frame
// and keeps the rest for the next call. Then it queues what the frames
// called for: SETTINGS and PING acks, WINDOW_UPDATEs, the bodies that
// windows opened for and the streams that slots opened for. An error is
// the connection's failure, as Fail's.
func (c *Conn) Feed(p []byte) error {
	d := c.d
	if len(d.in) > 0 {
		d.in = append(d.in, p...)
		p = d.in
	}
	var err error
	for len(p) >= 9 {
		h := frameHeader{
			length: uint32(p[0])<<16 | uint32(p[1])<<8 | uint32(p[2]),
			typ:    http2.FrameType(p[3]),
			flags:  http2.Flags(p[4]),
			stream: binary.BigEndian.Uint32(p[5:]) & (1<<31 - 1),
		}
		if h.length > readMaxFrame {
			err = http2.ConnectionError(http2.ErrCodeFrameSize)
			break
		}
		if len(p) < 9+int(h.length) {
			break
		}
		payload := p[9 : 9+h.length]
		p = p[9+h.length:]
		if !d.ready {
			if err = firstFrame(h); err != nil {
				break
			}
		}
		if err = c.handle(h, payload); err != nil {
			break
		}
		d.ready = true // the first SETTINGS applied: the handshake is done
	}
	if err != nil {
		d.in = d.in[:0]
		c.fail(err)
		return err
	}
	d.in = append(d.in[:0], p...)
	c.resetUnsent()
	d.incs, d.pings = c.writeCtrl(d.incs, d.pings)
	if len(d.sending) > 0 {
		c.lockW()
		n := 0
		for _, s := range d.sending {
			if !c.sendBody(s) {
				d.sending[n] = s
				n++
			}
		}
		clear(d.sending[n:])
		d.sending = d.sending[:n]
		c.unlockW()
	}
	if len(d.pend) > 0 {
		c.openPending()
	}
	return nil
}

// Fail ends the connection with err (its socket failed or closed): the
// open streams end with ConnErr err.
func (c *Conn) Fail(err error) { c.fail(err) }

// TakePending returns the streams still waiting to open, none of which
// was sent, and forgets them: a loop moves them to another connection
// when this one takes no more (Usable false) or fails them with the dial's
// error. The slice is the caller's.
func (c *Conn) TakePending() []*Stream {
	p := c.d.pend
	c.d.pend = nil
	return p
}

// Idle reports whether no stream is open or waiting.
func (c *Conn) Idle() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.active == 0 && len(c.d.pend) == 0
}

// Cancel ends s before its response (its timeout): a stream waiting to
// open is forgotten, an open one reset (RST_STREAM CANCEL). notify is not
// called. False when s had ended already.
func (c *Conn) Cancel(s *Stream) bool {
	d := c.d
	if i := slices.Index(d.pend, s); i >= 0 {
		d.pend = slices.Delete(d.pend, i, i+1)
		return true
	}
	c.mu.Lock()
	mine := s.id != 0 && c.streams[s.id] == s
	if mine {
		c.endStream(s)
	}
	c.mu.Unlock()
	if !mine {
		return false
	}
	d.forget(s, false)
	c.lockW()
	c.write(c.fr.WriteRSTStream(s.id, http2.ErrCodeCancel))
	c.unlockW()
	if len(d.pend) > 0 {
		c.openPending() // its slot is free
	}
	return true
}

// forget drops s, which has ended, from the bodies still to send. With
// reset, a stream whose body was not all sent is to be reset
// (resetUnsent): the server answered it early and did not reset it.
func (d *driven) forget(s *Stream, reset bool) {
	if i := slices.Index(d.sending, s); i >= 0 {
		d.sending = slices.Delete(d.sending, i, i+1)
		if reset {
			d.unsent = append(d.unsent, s.id)
		}
	}
	s.prefix, s.body = nil, nil
}

// reset takes stream id, which the server reset after answering it, off
// the streams to reset.
func (d *driven) reset(id uint32) {
	d.unsent = slices.DeleteFunc(d.unsent, func(u uint32) bool { return u == id })
}

// resetUnsent queues RST_STREAM (CANCEL) for the streams the server
// answered before their bodies were all sent: the stream stays open on
// the server's side, counted against its limit, until the client ends it.
func (c *Conn) resetUnsent() {
	d := c.d
	if len(d.unsent) == 0 {
		return
	}
	c.lockW()
	for _, id := range d.unsent {
		c.write(c.fr.WriteRSTStream(id, http2.ErrCodeCancel))
	}
	c.unlockW()
	d.unsent = d.unsent[:0]
}

// Out returns the bytes queued for the socket that are not yet written;
// Wrote(n) says that n of them were.
func (c *Conn) Out() []byte { return c.out.b[c.d.woff:] }

// Wrote records that n bytes of Out were written. The written bytes are
// dropped once they are most of the queue, so that a socket that keeps
// taking part of it does not make it grow.
func (c *Conn) Wrote(n int) {
	d := c.d
	d.woff += n
	switch {
	case d.woff >= len(c.out.b):
		c.out.b, d.woff = c.out.b[:0], 0
	case d.woff >= bufSize && d.woff >= len(c.out.b)/2:
		c.out.b = c.out.b[:copy(c.out.b, c.out.b[d.woff:])]
		d.woff = 0
	}
}
