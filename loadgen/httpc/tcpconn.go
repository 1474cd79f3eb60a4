package httpc

import (
	"net"
	"syscall"

	"github.com/loadcap/loadcap/loadgen/internal/rawio"
)

// tcpConn is a TCP connection that saves the read syscall which, right
// after a request is written, almost always fails with EAGAIN, and makes
// its calls raw (package rawio).
//
// With deferring set, Write only queues the request. The next Read, inside
// one RawConn.Read, writes the queue and then waits on the poller before its
// first read, instead of read → EAGAIN → wait. This is safe where
// "skip the first read" alone is not: RawConn.Read resets the poller's
// readiness token before calling us, and we write only after that reset, so
// the reply's readiness event always arrives after it and wakes the wait.
// A stale event at worst costs one EAGAIN read, as in net.Conn.
type tcpConn struct {
	net.Conn
	rc syscall.RawConn
	fn func(fd uintptr) bool // t.callback, made once: no allocation per Read

	deferring bool   // Write queues into pending
	pending   []byte // queued bytes, pending[off:] not yet written
	off       int
	dropped   int // queued bytes discarded by the last failed Read
	fullBufs  int // times the socket buffer filled while flushing (for tests)

	// per-Read state shared with the callback
	p       []byte
	n       int
	err     error
	blocked bool // the socket buffer filled while flushing pending
}

// newTCPConn wraps c, or returns nil when c offers no raw access.
func newTCPConn(c net.Conn) *tcpConn {
	if !rawio.Supported {
		return nil
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	t := &tcpConn{Conn: c, rc: rc}
	t.fn = t.callback
	return t
}

// Write implements net.Conn. While deferring it only queues p.
func (t *tcpConn) Write(p []byte) (int, error) {
	if t.deferring {
		t.pending = append(t.pending, p...)
		return len(p), nil
	}
	return t.Conn.Write(p)
}

// Read implements net.Conn, first writing whatever Write queued.
func (t *tcpConn) Read(p []byte) (int, error) {
	t.dropped = 0
	if len(p) == 0 && t.off == len(t.pending) {
		return 0, nil
	}
	for {
		t.p, t.n, t.err, t.blocked = p, 0, nil, false
		err := t.rc.Read(t.fn)
		t.p = nil
		if err == nil && t.blocked {
			// The socket buffer is full: finish with a blocking write,
			// then read the usual way.
			t.fullBufs++
			n, werr := t.Conn.Write(t.pending[t.off:])
			t.off += n
			if werr == nil {
				t.pending, t.off = t.pending[:0], 0
				continue
			}
			err = werr
		}
		if err == nil {
			err = t.err
		}
		if err != nil {
			t.dropped = len(t.pending) - t.off
			t.pending, t.off = t.pending[:0], 0
			return 0, err
		}
		return t.n, nil
	}
}

// callback runs inside RawConn.Read; false means "wait until readable and
// call again".
func (t *tcpConn) callback(fd uintptr) bool {
	if t.off < len(t.pending) {
		n, blocked, err := rawio.WriteAll(fd, t.pending[t.off:])
		t.off += n
		switch {
		case err != nil:
			t.err = err
			return true
		case blocked:
			t.blocked = true
			return true
		}
		t.pending, t.off = t.pending[:0], 0
		if len(t.p) == 0 {
			return true
		}
		return false // the reply cannot be here yet
	}
	n, done, err := rawio.ReadOnce(fd, t.p)
	t.n, t.err = n, err
	return done
}
