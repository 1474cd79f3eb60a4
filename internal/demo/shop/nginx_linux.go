package shop

import "syscall"

// nginxProcAttr starts nginx in its own process group, so that a Ctrl+C at
// the terminal reaches only the shop, which stops nginx in its turn, and
// stops it (SIGTERM: the master takes its workers down) should the shop
// die first: no nginx outlives the shop that started it.
func nginxProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
