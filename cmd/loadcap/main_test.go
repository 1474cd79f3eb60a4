package main

import (
	"os"
	"testing"

	"github.com/loadcap/loadcap/loadgen/k6"
)

// TestMain lets the test binary be its own k6 child, as the loadcap
// executable is: `loadcap run script.js` starts os.Executable() with
// k6.ChildCommand.
//
// With envAsMain set it is the loadcap executable itself (main): tests of
// what a process does (the signals it takes, its exit code) start it.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == k6.ChildCommand {
		os.Exit(k6ChildMain(os.Args[2:]))
	}
	if os.Getenv(envAsMain) == "1" {
		main()
	}
	os.Exit(m.Run())
}
