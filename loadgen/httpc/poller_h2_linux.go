package httpc

import (
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/net/http2"

	"github.com/loadcap/loadcap/loadgen/internal/h2"
	"github.com/loadcap/loadcap/loadgen/internal/rawio"
)

// A Poller of an HTTP/2 Transport (h2c with prior knowledge) runs its
// exchanges as streams on one connection per host that they all share,
// as the Transport's clients share theirs. Each connection is a driven
// h2.Conn (the same frames, flow control and SETTINGS as a client's) on a
// socket in the Poller's epoll set: Wait writes what the connections have
// queued (every request started since the last Wait, in one write),
// waits, and feeds them what it reads. The Client's rules hold: the
// whole-request timeout (a wait for the connection included), requests
// the server refused unprocessed resent a few times, failed dials backing
// off (100 ms doubling to 2 s, failing requests fast meanwhile), and the
// same error classes.

// pollH2 is one of a Poller's HTTP/2 connections.
type pollH2 struct {
	c          *h2.Conn
	host       string
	addr       *net.TCPAddr
	fd         int
	slot       int32 // in pollH2s.conns; epoll data -1-slot
	gen        int32
	connecting bool
	ready      bool      // the handshake is done
	dialBy     time.Time // the connect and handshake's deadline
	outWait    bool      // a write waits for the socket to take more (EPOLLOUT on)
}

// pollH2s is a Poller's HTTP/2 state.
type pollH2s struct {
	conns []*pollH2          // by slot; nil = free
	cur   map[string]*pollH2 // where a host's new streams go
	down  map[string]*h2Down // hosts whose last dial failed
	ended []*h2.Stream       // streams the connections ended, for results
	buf   []byte             // read buffer, shared by the connections
	gen   int32
}

// h2Down is a host whose dial failed: requests fail with err until at,
// as they do on a Client's connection slot (h2.Slot).
type h2Down struct {
	at      time.Time
	backoff time.Duration
	err     error
}

// errPollerNoKeepAlive is a Poller's HTTP/2 request without keep-alive.
var errPollerNoKeepAlive = &RequestError{"the poller's HTTP/2 streams share a connection: keep-alive cannot be off"}

// startStream starts r on x as an HTTP/2 stream.
func (p *Poller) startStream(x *Exchange, r *Request) {
	https, sent, err := x.req.prepare(p.t, r)
	switch {
	case err != nil:
	case https:
		err = errPollerTLS
	case !p.t.keepAlive:
		err = errPollerNoKeepAlive
	}
	if err != nil {
		p.finish(x, err)
		return
	}
	x.Res.BytesSent, x.sent = sent, sent
	x.body = r.Body
	x.moves, x.refused = 0, 0
	x.start = r.start()
	x.deadline = x.start.Add(p.t.timeout)
	x.host = r.Host
	x.state = xStream
	p.stream(x)
}

// stream puts x's request on its host's connection, dialling one when
// there is none or the last takes no more streams.
func (p *Poller) stream(x *Exchange) {
	x.s.Reset()
	x.resp = h2Resp{x: x}
	x.s.Recv = &x.resp
	for {
		hc, err := p.h2conn(x.host)
		if err != nil {
			p.finishStream(x, h2Failure(err, false))
			return
		}
		if hc.c.Start(&x.s, x.req.hdr, nil, x.body) {
			x.hc = hc
			return
		}
		p.retire(hc)
		if x.moves++; x.moves > maxRefused {
			p.finishStream(x, errNotUsable)
			return
		}
	}
}

// h2conn returns host's connection for new streams, dialling it first
// when needed.
func (p *Poller) h2conn(host string) (*pollH2, error) {
	hs := &p.h2
	if hc := hs.cur[host]; hc != nil {
		return hc, nil
	}
	if d := hs.down[host]; d != nil && time.Now().Before(d.at) {
		return nil, d.err
	}
	a, err := p.resolve(host)
	if err != nil {
		return nil, p.down(host, err)
	}
	hc := &pollH2{host: host, addr: a.addr, slot: -1}
	for i, c := range hs.conns {
		if c == nil {
			hc.slot = int32(i)
			break
		}
	}
	if hc.slot < 0 {
		hc.slot = int32(len(hs.conns))
		hs.conns = append(hs.conns, nil)
	}
	hs.gen++
	hc.gen = hs.gen
	fd, connecting, err := p.connect(a, syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLOUT | syscall.EPOLLRDHUP, Fd: -1 - hc.slot, Pad: hc.gen})
	if err != nil {
		return nil, p.down(host, err)
	}
	hc.fd, hc.connecting, hc.outWait = fd, connecting, true
	hc.dialBy = time.Now().Add(p.t.dialTimeout)
	hc.c = h2.NewDriven(func(s *h2.Stream) { hs.ended = append(hs.ended, s) })
	hs.conns[hc.slot] = hc
	if hs.cur == nil {
		hs.cur, hs.down = map[string]*pollH2{}, map[string]*h2Down{}
	}
	if hs.buf == nil {
		hs.buf = make([]byte, 64<<10)
	}
	hs.cur[host] = hc
	return hc, nil
}

// down records a failed dial of host: requests fail fast with err for a
// while, growing with each failure in a row. It returns err as a Client's
// connection slot words it.
func (p *Poller) down(host string, err error) error {
	err = fmt.Errorf("connect to %s: %w", dialAddr(false, host), err)
	hs := &p.h2
	if hs.down == nil {
		hs.cur, hs.down = map[string]*pollH2{}, map[string]*h2Down{}
	}
	d := hs.down[host]
	if d == nil {
		d = &h2Down{}
		hs.down[host] = d
	}
	d.backoff = h2.NextBackoff(d.backoff)
	d.at, d.err = time.Now().Add(d.backoff), err
	return err
}

// retire takes hc off its host's new streams (it goes away or failed);
// it closes once its last stream has ended.
func (p *Poller) retire(hc *pollH2) {
	if p.h2.cur[hc.host] == hc {
		delete(p.h2.cur, hc.host)
	}
}

// closeConnH2 closes hc's socket and forgets hc.
func (p *Poller) closeConnH2(hc *pollH2) {
	if hc.fd < 0 {
		return
	}
	p.retire(hc)
	syscall.Close(hc.fd) // also leaves the epoll set
	hc.fd = -1
	p.h2.conns[hc.slot] = nil
}

// closeH2 closes every connection (Close): their streams are abandoned.
func (p *Poller) closeH2() {
	for _, hc := range p.h2.conns {
		if hc != nil {
			p.closeConnH2(hc)
		}
	}
}

// flushH2 writes what each connection has queued, as far as its socket
// takes it.
func (p *Poller) flushH2() {
	for _, hc := range p.h2.conns {
		if hc != nil && !hc.connecting {
			p.flushConn(hc)
		}
	}
}

func (p *Poller) flushConn(hc *pollH2) {
	out := hc.c.Out()
	n, blocked, err := rawio.WriteAll(uintptr(hc.fd), out)
	hc.c.Wrote(n)
	if err != nil {
		p.lost(hc, err)
		return
	}
	if blocked != hc.outWait {
		// Ask for writability only while a write waits for it: the
		// socket's readiness is level-triggered.
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: -1 - hc.slot, Pad: hc.gen}
		if blocked {
			ev.Events |= syscall.EPOLLOUT
		}
		if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_MOD, hc.fd, &ev); err != nil {
			p.lost(hc, os.NewSyscallError("epoll_ctl", err))
			return
		}
		hc.outWait = blocked
	}
}

// eventH2 acts on readiness of a connection's socket.
func (p *Poller) eventH2(ev *syscall.EpollEvent, now time.Time) {
	i := int(-1 - ev.Fd)
	if i >= len(p.h2.conns) {
		return
	}
	hc := p.h2.conns[i]
	if hc == nil || hc.gen != ev.Pad {
		return // a connection closed since
	}
	if hc.connecting {
		if err := connectError(hc.fd, hc.addr); err != nil {
			p.lost(hc, err)
			return
		}
		if ev.Events&syscall.EPOLLOUT == 0 {
			return // not yet connected
		}
		hc.connecting = false
		p.flushConn(hc) // the preface
		return
	}
	if ev.Events&syscall.EPOLLOUT != 0 && hc.outWait {
		if p.flushConn(hc); hc.fd < 0 {
			return
		}
	}
	if ev.Events&(syscall.EPOLLIN|syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) == 0 {
		return
	}
	// One read per event: the readiness is level-triggered, so what is
	// left is reported by the next wait.
	n, ok, err := rawio.ReadOnce(uintptr(hc.fd), p.h2.buf)
	if !ok {
		return
	}
	if err == nil {
		err = hc.c.Feed(p.h2.buf[:n])
	}
	if err != nil {
		p.lost(hc, err)
		return
	}
	if !hc.ready && hc.c.Ready() {
		hc.ready = true
		delete(p.h2.down, hc.host)
	}
	p.settle(hc, now)
}

// settle turns the streams hc ended into results and tidies hc.
func (p *Poller) settle(hc *pollH2, now time.Time) {
	p.streamsEnded(now)
	p.tidy(hc)
}

// tidy moves hc's waiting streams elsewhere when it takes no more, and
// closes it once it is done.
func (p *Poller) tidy(hc *pollH2) {
	if hc.c.Usable() {
		return
	}
	p.retire(hc)
	for _, s := range hc.c.TakePending() {
		p.move(s.Recv.(*h2Resp).x)
	}
	if hc.c.Idle() {
		p.closeConnH2(hc)
	}
}

// move starts x's request, not sent, on another connection.
func (p *Poller) move(x *Exchange) {
	if x.moves++; x.moves > maxRefused {
		p.finishStream(x, errNotUsable)
		return
	}
	p.stream(x)
}

// lost ends hc after its socket failed or closed with err: its open
// streams fail; those waiting for it move to another connection, unless
// it never completed its handshake, when they fail with err.
func (p *Poller) lost(hc *pollH2, err error) {
	ready := hc.c.Ready()
	if !ready && !hc.connecting {
		err = fmt.Errorf("http/2 handshake: %w", err)
	}
	hc.c.Fail(err)
	waiting := hc.c.TakePending()
	p.closeConnH2(hc)
	p.streamsEnded(p.now)
	if !ready {
		err = p.down(hc.host, err)
	}
	for _, s := range waiting {
		x := s.Recv.(*h2Resp).x
		if ready {
			p.move(x)
		} else {
			p.finishStream(x, h2Failure(err, false))
		}
	}
}

// streamsEnded turns the streams the connections ended into results.
func (p *Poller) streamsEnded(now time.Time) {
	hs := &p.h2
	for i := 0; i < len(hs.ended); i++ { // a resend may add to the list
		s := hs.ended[i]
		x := s.Recv.(*h2Resp).x
		x.hc = nil
		if s.Status == 0 && x.refused < maxRefused &&
			(s.Refused || s.RST && s.RSTCode == http2.ErrCodeRefusedStream) {
			// The server says it did not process the request: again.
			x.refused++
			x.Res.BytesSent += x.sent
			p.stream(x)
			continue
		}
		if !now.Before(x.deadline) {
			p.finishStream(x, h2Failure(h2.ErrExpired, false))
			continue
		}
		x.Res.Reused = x.s.Reused
		h2Outcome(s, &x.resp, p.closed, &x.Res)
		x.body = nil
		x.state = xIdle
		p.done = append(p.done, x)
	}
	clear(hs.ended)
	hs.ended = hs.ended[:0]
}

// finishStream reports x's request done with err.
func (p *Poller) finishStream(x *Exchange, err error) {
	x.hc, x.body = nil, nil
	x.Res.Reused = false
	p.finish(x, err)
}

// cancelStream ends x's stream before its response (its timeout).
func (p *Poller) cancelStream(x *Exchange) {
	if hc := x.hc; hc != nil {
		x.hc = nil
		hc.c.Cancel(&x.s)
		p.tidy(hc) // it may have been the last stream of a connection going away
	}
	x.body = nil
}

// scanH2 fails the connections whose connect or handshake is past its
// deadline.
func (p *Poller) scanH2(now time.Time) {
	for _, hc := range p.h2.conns {
		if hc != nil && !hc.ready && !now.Before(hc.dialBy) {
			p.lost(hc, &net.OpError{Op: "dial", Net: "tcp", Addr: hc.addr, Err: os.ErrDeadlineExceeded})
		}
	}
}
