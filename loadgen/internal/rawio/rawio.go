package rawio

import (
	"io"
	"os"
	"syscall"
)

// ReadOnce reads fd once into p inside a RawConn.Read callback. done false
// means nothing to read yet: the callback returns false, to be called
// again once the poller says fd is readable. At the end of the stream err
// is io.EOF.
func ReadOnce(fd uintptr, p []byte) (n int, done bool, err error) {
	for {
		n, err := Read(fd, p)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return 0, false, nil
		case err != nil:
			return 0, true, os.NewSyscallError("read", err)
		case n == 0:
			return 0, true, io.EOF
		}
		return n, true, nil
	}
}

// WriteAll writes p to fd until it is written or the socket's buffer is
// full (blocked: wait for the poller, then write the rest).
func WriteAll(fd uintptr, p []byte) (n int, blocked bool, err error) {
	for n < len(p) {
		m, err := Write(fd, p[n:])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return n, true, nil
		case err != nil:
			return n, false, os.NewSyscallError("write", err)
		}
		n += m
	}
	return n, false, nil
}
