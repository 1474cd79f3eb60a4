package httpc

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/loadcap/loadcap/loadgen/internal/h2"
	"github.com/loadcap/loadcap/loadgen/internal/rawio"
)

// PollerSupported reports whether NewPoller works here (Linux).
const PollerSupported = true

// A Poller runs plain-HTTP exchanges for many callers on the one
// goroutine that calls it, over its own epoll instance: the event loop
// wrk and h2load are built on. Against the blocking Client, whose caller
// is a goroutine per connection, it saves the scheduler's work around
// each request (parking the goroutine, Go's poller, the processor's
// hand-offs around a blocking wait), which on a one-core generator was
// most of the user-space time per request.
//
// Its waits are raw system calls: the goroutine keeps its processor while
// it blocks in Wait, up to the duration given. Whoever calls Wait in a loop
// must yield now and then (runtime.Gosched) so that other goroutines on the
// processor run.
//
// The exchanges follow Client's rules: the same request rendering,
// response parsing and limits, the whole-request timeout from
// Request.Now, the retry of a stale kept-alive connection, the error
// classes. Over HTTP/2 (the Transport's Options.HTTP2, h2c with prior
// knowledge) the exchanges are streams on one connection per host
// (poller_h2_linux.go). What it does not do: TLS, and HTTP/2 without
// keep-alive (Start fails such a request with a *RequestError); and it
// times requests out within pollScan of their deadline (a response that
// completes after its deadline is a timeout all the same).
//
// A Poller is not safe for concurrent use.
type Poller struct {
	t      *Transport
	epfd   int
	events []syscall.EpollEvent
	xs     []*Exchange         // by slot (epoll data)
	free   []*Exchange         // released, for NewExchange to reuse
	done   []*Exchange         // completed since the last Wait
	spare  []*Exchange         // the list the previous Wait returned
	addrs  map[string]pollAddr // resolved hosts
	scanAt time.Time
	now    time.Time // read when the last Wait's wait ended
	closed bool

	h2 pollH2s // HTTP/2 connections, when the Transport's options say HTTP2
}

// pollScan is how often Wait looks for requests past their deadline.
const pollScan = 5 * time.Millisecond

// Exchange is one caller's connection and request in a Poller.
type Exchange struct {
	User any    // the caller's, untouched
	Res  Result // the outcome of the last request, once Wait returned it

	slot     int32
	gen      int32 // connection generation: stale epoll events carry an old one
	fd       int   // -1: no connection
	host     string
	addr     *net.TCPAddr // the connection's, for errors
	state    xState
	wbuf     []byte
	woff     int
	rbuf     []byte
	parser   respParser
	start    time.Time // the request's, for its timeout and the stale rule
	deadline time.Time
	dialBy   time.Time // the connect's own deadline
	used     time.Time // start of the last request that succeeded on the connection
	reused   bool
	retried  bool

	// HTTP/2: the request is a stream on a connection the Poller shares
	// among its exchanges.
	hc      *pollH2 // the stream's connection; nil = none
	s       h2.Stream
	resp    h2Resp
	req     h2Req
	body    []byte // the request's, until it has been sent
	sent    int64  // the request's HTTP/1.1-equivalent size
	moves   int    // times the stream moved to another connection unsent
	refused int    // times the server refused it unprocessed
}

type xState uint8

const (
	xIdle xState = iota
	xConnect
	xWrite
	xRead
	xStream // HTTP/2: a stream open or waiting to open
)

// NewPoller returns a Poller that uses t's options; close it with Close.
func (t *Transport) NewPoller() (*Poller, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	return &Poller{t: t, epfd: fd, events: make([]syscall.EpollEvent, 256), addrs: map[string]pollAddr{}}, nil
}

// NewExchange adds a caller with user as its User.
func (p *Poller) NewExchange(user any) *Exchange {
	if n := len(p.free); n > 0 {
		x := p.free[n-1]
		p.free = p.free[:n-1]
		x.User, x.Res, x.host, x.used = user, Result{}, "", time.Time{}
		return x
	}
	x := &Exchange{User: user, slot: int32(len(p.xs)), fd: -1}
	if p.t.h2 == nil {
		x.rbuf = make([]byte, readBufSize)
	}
	p.xs = append(p.xs, x)
	return x
}

// Release ends x, a caller with no request in flight: its connection is
// closed and NewExchange may reuse it.
func (p *Poller) Release(x *Exchange) {
	p.closeConn(x)
	x.state = xIdle
	x.User = nil
	p.free = append(p.free, x)
}

// Close closes every connection; requests in flight are abandoned (Wait
// does not return them).
func (p *Poller) Close() {
	if p.closed {
		return
	}
	p.closed = true
	for _, x := range p.xs {
		p.closeConn(x)
		x.state = xIdle
	}
	p.closeH2()
	syscall.Close(p.epfd)
}

// Start sends r on x, which must not have a request in flight; a later
// Wait returns x with the outcome in x.Res. r is not retained, except
// over HTTP/2 its Body, which must not change until Wait has returned x
// (a request the server refused unprocessed is sent again).
func (p *Poller) Start(x *Exchange, r *Request) {
	x.Res = Result{}
	x.retried = false
	if p.closed {
		p.finish(x, ErrClosed)
		return
	}
	if p.t.h2 != nil {
		p.startStream(x, r)
		return
	}
	https, err := r.secure()
	if err == nil && https {
		err = errPollerTLS
	}
	if err == nil {
		x.wbuf, _, err = renderH1(x.wbuf[:0], p.t, r, false, len(r.Body))
	}
	if err != nil {
		p.finish(x, err)
		return
	}
	method := r.Method
	if method == "" {
		method = "GET"
	}
	x.parser.reset(method)
	x.start = r.start()
	x.deadline = x.start.Add(p.t.timeout)
	if x.fd >= 0 && x.host != r.Host {
		p.closeConn(x)
	}
	x.host = r.Host
	p.send(x)
}

// send writes x's request, connecting first when x has no connection.
func (p *Poller) send(x *Exchange) {
	x.woff = 0
	x.reused = x.fd >= 0
	if !x.reused {
		if err := p.dial(x); err != nil {
			p.finish(x, err)
			return
		}
		if x.state == xConnect {
			return
		}
	}
	p.write(x)
}

// pollAddr is a resolved host: the socket address and, for errors, the
// net package's.
type pollAddr struct {
	sa   syscall.Sockaddr
	addr *net.TCPAddr
}

// dial starts a non-blocking connect for x.
func (p *Poller) dial(x *Exchange) error {
	a, err := p.resolve(x.host)
	if err != nil {
		return err
	}
	x.gen++
	fd, connecting, err := p.connect(a, syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLOUT | syscall.EPOLLRDHUP | epollET, Fd: x.slot, Pad: x.gen})
	if err != nil {
		return err
	}
	x.fd = fd
	x.dialBy = time.Now().Add(p.t.dialTimeout)
	if x.deadline.Before(x.dialBy) {
		x.dialBy = x.deadline
	}
	x.state = xWrite
	if connecting {
		x.state = xConnect
	}
	x.addr = a.addr
	return nil
}

// connect opens a non-blocking socket to a, in the epoll set with ev, and
// starts connecting it; connecting true means the connect is under way
// (writable when done).
func (p *Poller) connect(a pollAddr, ev syscall.EpollEvent) (fd int, connecting bool, err error) {
	family := syscall.AF_INET
	if _, ok := a.sa.(*syscall.SockaddrInet6); ok {
		family = syscall.AF_INET6
	}
	fd, err = syscall.Socket(family, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, false, dialError(a.addr, err)
	}
	_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		syscall.Close(fd)
		return -1, false, os.NewSyscallError("epoll_ctl", err)
	}
	switch err := syscall.Connect(fd, a.sa); err {
	case nil:
		return fd, false, nil
	case syscall.EINPROGRESS, syscall.EINTR:
		return fd, true, nil
	default:
		syscall.Close(fd)
		return -1, false, dialError(a.addr, err)
	}
}

// connectError is a connect's outcome once its socket is ready: nil when
// it connected.
func connectError(fd int, addr *net.TCPAddr) error {
	errno, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ERROR)
	if err == nil && errno != 0 {
		err = syscall.Errno(errno)
	}
	if err != nil {
		return dialError(addr, err)
	}
	return nil
}

// dialError is a failed connect as net.Dial reports it.
func dialError(addr *net.TCPAddr, err error) error {
	return &net.OpError{Op: "dial", Net: "tcp", Addr: addr, Err: os.NewSyscallError("connect", err)}
}

// resolve returns host's address, looked up once per Poller.
func (p *Poller) resolve(host string) (pollAddr, error) {
	if pa, ok := p.addrs[host]; ok {
		return pa, nil
	}
	a, err := net.ResolveTCPAddr("tcp", dialAddr(false, host))
	if err != nil {
		return pollAddr{}, err
	}
	var sa syscall.Sockaddr
	if ip4 := a.IP.To4(); ip4 != nil {
		s := &syscall.SockaddrInet4{Port: a.Port}
		copy(s.Addr[:], ip4)
		sa = s
	} else {
		s := &syscall.SockaddrInet6{Port: a.Port}
		copy(s.Addr[:], a.IP.To16())
		if a.Zone != "" {
			if ifi, err := net.InterfaceByName(a.Zone); err == nil {
				s.ZoneId = uint32(ifi.Index)
			}
		}
		sa = s
	}
	pa := pollAddr{sa, a}
	p.addrs[host] = pa
	return pa, nil
}

// write writes what is left of x's request; the rest waits for the
// socket to be writable.
func (p *Poller) write(x *Exchange) {
	n, blocked, err := rawio.WriteAll(uintptr(x.fd), x.wbuf[x.woff:])
	x.woff += n
	x.Res.BytesSent += int64(n)
	switch {
	case err != nil:
		p.fail(x, err)
	case blocked:
		x.state = xWrite
	default:
		x.state = xRead
	}
}

// read reads x's response as far as it has arrived.
func (p *Poller) read(x *Exchange, now time.Time) {
	for {
		m, ok, err := rawio.ReadOnce(uintptr(x.fd), x.rbuf)
		if !ok {
			return // nothing more yet: the next edge says when
		}
		if err == io.EOF {
			err = x.parser.eof()
		}
		if err != nil {
			p.fail(x, err)
			return
		}
		k, err := x.parser.feed(x.rbuf[:m])
		x.Res.BytesReceived = x.parser.received
		if err != nil {
			p.fail(x, err)
			return
		}
		if x.parser.done {
			// Bytes we did not ask for: do not trust this connection.
			p.complete(x, x.parser.keep && k == m, now)
			return
		}
		// Read on to EAGAIN: the connection's end may have come with the
		// bytes, and no later edge would tell of it.
	}
}

// complete ends x's request with its response.
func (p *Poller) complete(x *Exchange, keep bool, now time.Time) {
	if !now.Before(x.deadline) {
		// It completed after its deadline, before the scan saw it.
		p.fail(x, os.ErrDeadlineExceeded)
		return
	}
	x.Res.Status = x.parser.h.status
	x.Res.Reused = x.reused
	x.used = x.start
	if !keep || !p.t.keepAlive {
		p.closeConn(x)
	}
	x.state = xIdle
	p.done = append(p.done, x)
}

// fail ends x's request with err, unless it is a stale kept-alive
// connection's failure, which is retried once on a fresh one (Client's
// rule).
func (p *Poller) fail(x *Exchange, err error) {
	early := x.parser.received == 0
	p.closeConn(x)
	if x.reused && !x.retried && early && x.start.Sub(x.used) >= p.t.staleAfter && retryable(err) {
		x.retried = true
		x.Res.BytesReceived = 0
		x.parser.reset(x.parser.method)
		p.send(x)
		return
	}
	p.finish(x, err)
}

// finish reports x done with err.
func (p *Poller) finish(x *Exchange, err error) {
	if p.closed {
		err = ErrClosed
	}
	x.Res.fail(err)
	x.state = xIdle
	p.done = append(p.done, x)
}

func (p *Poller) closeConn(x *Exchange) {
	if x.fd >= 0 {
		syscall.Close(x.fd) // also leaves the epoll set
		x.fd = -1
	}
}

// Wait returns the exchanges whose requests ended since the last Wait,
// blocking up to max (to the nanosecond where PreciseWait, else rounded
// down to milliseconds) while none has. The
// slice is valid until the next Wait.
func (p *Poller) Wait(max time.Duration) []*Exchange {
	n := 0
	if !p.closed {
		p.flushH2() // may fail a connection, and its requests
		switch {
		case len(p.done) > 0:
			n = epollWait(p.epfd, p.events, 0)
		case max%time.Millisecond != 0 && preciseWait():
			n = epollPwait2(p.epfd, p.events, max)
		default:
			n = epollWait(p.epfd, p.events, int(max/time.Millisecond))
		}
	}
	now := time.Now()
	p.now = now
	for i := 0; i < n; i++ {
		ev := &p.events[i]
		if ev.Fd < 0 {
			p.eventH2(ev, now)
			continue
		}
		x := p.xs[ev.Fd]
		if ev.Pad != x.gen || x.fd < 0 {
			continue // a connection closed since
		}
		p.event(x, ev.Events, now)
	}
	if now.Sub(p.scanAt) >= pollScan {
		p.scanAt = now
		p.scan(now)
	}
	out := p.done
	p.done, p.spare = p.spare[:0], out
	return out
}

// Now is the clock's reading when the last Wait's wait ended.
func (p *Poller) Now() time.Time { return p.now }

// event acts on readiness of x's socket.
func (p *Poller) event(x *Exchange, ev uint32, now time.Time) {
	switch x.state {
	case xConnect:
		if err := connectError(x.fd, x.addr); err != nil {
			p.closeConn(x)
			p.finish(x, err)
			return
		}
		if ev&syscall.EPOLLOUT == 0 {
			return // not yet connected
		}
		p.write(x)
	case xWrite:
		p.write(x)
		if x.state == xRead {
			p.read(x, now) // a reply may have come while we wrote
		}
	case xRead:
		p.read(x, now)
	}
}

// scan fails the requests past their deadline.
func (p *Poller) scan(now time.Time) {
	p.scanH2(now)
	for _, x := range p.xs {
		switch {
		case x.state == xIdle:
		case x.state == xStream:
			if !now.Before(x.deadline) {
				p.cancelStream(x)
				x.Res.Reused = x.s.Reused // as a Client's: an open stream's connection
				p.finish(x, h2Failure(h2.ErrExpired, false))
			}
		case !now.Before(x.deadline), x.state == xConnect && !now.Before(x.dialBy):
			p.closeConn(x)
			p.finish(x, os.ErrDeadlineExceeded)
		}
	}
}

// epollET is EPOLLET as the event mask's uint32 (syscall's constant is
// negative on some architectures, positive on others).
const epollET = uint32(1) << 31

// PreciseWait reports whether Wait keeps to a wait of less than a
// millisecond, or of a part of one, within the kernel's timer precision
// (epoll_pwait2, Linux 5.11); without it Wait rounds down to whole
// milliseconds.
func PreciseWait() bool { return preciseWait() }

// sysEpollPwait2 is epoll_pwait2's number on the architectures of the
// unified table (amd64, arm64, 386, arm, riscv64, ...; not MIPS, where
// the probe below fails and Wait keeps whole milliseconds).
const sysEpollPwait2 = 441

// kernelTimespec is the kernel's struct __kernel_timespec, which
// epoll_pwait2 takes: 64-bit fields on every architecture, where
// syscall.Timespec has 32-bit ones on 32-bit systems.
type kernelTimespec struct{ sec, nsec int64 }

var preciseWait = sync.OnceValue(func() bool {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return false
	}
	defer syscall.Close(fd)
	var ts kernelTimespec
	var ev [1]syscall.EpollEvent
	_, _, e := syscall.RawSyscall6(sysEpollPwait2, uintptr(fd), uintptr(unsafe.Pointer(&ev[0])), 1,
		uintptr(unsafe.Pointer(&ts)), 0, 0)
	return e == 0
})

// epollPwait2 is epollWait with a timeout in nanoseconds.
func epollPwait2(epfd int, events []syscall.EpollEvent, d time.Duration) int {
	ts := kernelTimespec{sec: int64(d / time.Second), nsec: int64(d % time.Second)}
	n, _, e := syscall.RawSyscall6(sysEpollPwait2, uintptr(epfd),
		uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), uintptr(unsafe.Pointer(&ts)), 0, 0)
	if e != 0 {
		return 0
	}
	return int(n)
}

// epollWait is epoll_wait as a raw system call: the goroutine keeps its
// processor while it blocks (see Poller). An interrupted wait returns 0.
// It is epoll_pwait without a signal mask, which every architecture has
// (arm64 has no epoll_wait).
func epollWait(epfd int, events []syscall.EpollEvent, ms int) int {
	n, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd),
		uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), uintptr(ms), 0, 0)
	if e != 0 {
		return 0
	}
	return int(n)
}
