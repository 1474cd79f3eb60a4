// Package cli holds the guarantees every loadcap command shares, written
// once: exit codes carried on errors (turned into a process exit only in
// main), the two-step stop on interrupts (the first signal stops
// gracefully and keeps a partial result, the second stops at once), and
// output files that are checked before any work starts and replaced
// atomically, so a failed or interrupted command never leaves half a file
// or loses the previous one.
//
// The package knows nothing of cobra or of any one command.
package cli
