//go:build unix && !linux

package shop

import "syscall"

// nginxProcAttr starts nginx in its own process group, so that a Ctrl+C at
// the terminal reaches only the shop, which stops nginx in its turn.
func nginxProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
