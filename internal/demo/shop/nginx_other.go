//go:build !unix

package shop

import (
	"os"
	"syscall"
)

func nginxProcAttr() *syscall.SysProcAttr { return nil }

// terminate stops nginx: without POSIX signals there is no fast shutdown
// to ask for.
func terminate(p *os.Process) { _ = p.Kill() }

func killGroup(*os.Process) {}
