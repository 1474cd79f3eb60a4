// Package rawio reads and writes non-blocking sockets in raw system calls,
// for the clients' callbacks inside syscall.RawConn's Read and Write.
//
// Such a call cannot block, and telling the scheduler about it (as
// syscall.Read and Write do) costs more than the call on a one-core
// generator: the scheduler's monitor, seeing the processor in a system
// call on two of its 20 µs ticks, hands it to another thread, and the
// threads' wake-ups and sleeps came to about 0.2 futex and 0.2 nanosleep
// calls and half a context switch per request. The race detector does not
// see the kernel's writes into a read buffer.
package rawio

import (
	"syscall"
	"unsafe"
)

// Read reads fd, a non-blocking socket, into p; EAGAIN means nothing to
// read yet.
func Read(fd uintptr, p []byte) (int, error) { return do(syscall.SYS_READ, fd, p) }

// Write writes p to fd, a non-blocking socket; EAGAIN means its buffer is
// full.
func Write(fd uintptr, p []byte) (int, error) { return do(syscall.SYS_WRITE, fd, p) }

func do(trap, fd uintptr, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, e := syscall.RawSyscall(trap, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}
