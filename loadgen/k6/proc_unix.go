//go:build unix && !linux

package k6

import (
	"os"
	"syscall"
)

// sysProcAttr starts the child in its own process group, so that a Ctrl+C
// at the terminal reaches only the parent, which forwards it once (k6
// takes a second SIGINT as "stop at once").
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// interrupt asks the child to stop: SIGINT, as a Ctrl+C would.
func interrupt(p *os.Process) error { return p.Signal(os.Interrupt) }
