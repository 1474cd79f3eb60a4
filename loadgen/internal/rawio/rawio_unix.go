//go:build unix

package rawio

import (
	"syscall"
	"unsafe"
)

// Supported is true where the clients read and write raw.
const Supported = true

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
