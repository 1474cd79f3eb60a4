//go:build !unix

package k6

import (
	"os"
	"syscall"
)

func sysProcAttr() *syscall.SysProcAttr { return nil }

// interrupt stops the child: without POSIX signals there is no graceful
// stop to ask for.
func interrupt(p *os.Process) error { return p.Kill() }
