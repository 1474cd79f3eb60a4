//go:build unix

package shop

import (
	"os"
	"syscall"
)

// terminate asks nginx's master for a fast shutdown (it stops its workers).
func terminate(p *os.Process) { _ = p.Signal(syscall.SIGTERM) }

// killGroup kills what is left of the process group p leads.
func killGroup(p *os.Process) { _ = syscall.Kill(-p.Pid, syscall.SIGKILL) }
