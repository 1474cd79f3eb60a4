package h2

import (
	"net"
	"syscall"

	"github.com/loadcap/loadcap/loadgen/internal/rawio"
)

// sysConn reads and writes a TCP connection in raw system calls (package
// rawio) inside the poller's callbacks. Read is used by one goroutine at a
// time, and so is Write (the connection's reader and writer).
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
	if !rawio.Supported {
		return c
	}
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
	n, done, err := rawio.ReadOnce(fd, s.rp)
	s.rn, s.rerr = n, err
	return done
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
	n, blocked, err := rawio.WriteAll(fd, s.wp[s.wn:])
	s.wn += n
	s.werr = err
	return err != nil || !blocked
}
