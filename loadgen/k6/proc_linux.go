package k6

import (
	"os"
	"syscall"
)

// sysProcAttr starts the child in its own process group, so that a Ctrl+C
// at the terminal reaches only the parent, which forwards it once (k6
// takes a second SIGINT as "stop at once"), and kills it if the parent
// dies: a load generator must not outlive the tool that started it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// interrupt asks the child to stop: SIGINT, as a Ctrl+C would.
func interrupt(p *os.Process) error { return p.Signal(os.Interrupt) }
