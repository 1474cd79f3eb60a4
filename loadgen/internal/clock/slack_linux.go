//go:build linux

package clock

import "syscall"

const prSetTimerSlack = 29 // PR_SET_TIMERSLACK

// TightenThread asks the kernel to wake this OS thread's sleeps on time:
// Linux lets a normal thread's timers fire up to 50 µs late (timer slack)
// to batch wake-ups. Call it from a goroutine locked to its thread.
func TightenThread() {
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerSlack, 1, 0)
}
