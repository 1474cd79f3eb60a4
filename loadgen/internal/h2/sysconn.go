package h2

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// sysConn reads and writes a TCP connection in raw system calls inside
// the poller's callbacks. The socket is non-blocking, so no call can
// block, and telling the scheduler about each (as net.Conn does) costs
// more than the call on a one-core generator: its monitor, seeing the
// processor in a system call on two of its 20 µs ticks, hands it to
// another thread, and those threads' wake-ups and sleeps add futex and
// nanosleep calls and context switches. Read is used by one goroutine at
// a time, and so is Write (the connection's reader and writer).
type sysConn struct {
	net.Conn
	rc syscall.RawConn

	rp      []byte // Read's buffer, during the call
	rn      int
	rerr    error
	readFn  func(fd uintptr) bool
	wp      []byte // Write's bytes, during the call
	wn      int
	werr    error
	writeFn func(fd uintptr) bool
}

// newSysConn wraps c, or returns it as is when it offers no raw access.
func newSysConn(c net.Conn) net.Conn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	s := &sysConn{Conn: c, rc: rc}
	s.readFn, s.writeFn = s.readCB, s.writeCB
	return s
}

func (s *sysConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.rp, s.rn, s.rerr = p, 0, nil
	err := s.rc.Read(s.readFn)
	s.rp = nil
	if err != nil {
		return 0, err
	}
	return s.rn, s.rerr
}

// readCB reads once; false (nothing to read yet) waits for the poller.
func (s *sysConn) readCB(fd uintptr) bool {
	for {
		n, err := rawIO(syscall.SYS_READ, fd, s.rp)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return false
		case err != nil:
			s.rerr = os.NewSyscallError("read", err)
		case n == 0:
			s.rerr = io.EOF
		default:
			s.rn = n
		}
		return true
	}
}

func (s *sysConn) Write(p []byte) (int, error) {
	s.wp, s.wn, s.werr = p, 0, nil
	err := s.rc.Write(s.writeFn)
	n := s.wn
	s.wp = nil
	if err == nil {
		err = s.werr
	}
	return n, err
}

// writeCB writes all of wp; false (the socket buffer is full) waits for
// the poller and is called again.
func (s *sysConn) writeCB(fd uintptr) bool {
	for s.wn < len(s.wp) {
		n, err := rawIO(syscall.SYS_WRITE, fd, s.wp[s.wn:])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return false
		case err != nil:
			s.werr = os.NewSyscallError("write", err)
			return true
		}
		s.wn += n
	}
	return true
}

// rawIO reads or writes (trap) fd with p in a raw system call, one the
// scheduler is not told about.
func rawIO(trap, fd uintptr, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, e := syscall.RawSyscall(trap, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}
