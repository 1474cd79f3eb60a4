package main

import (
	"os"
	"testing"

	"github.com/loadcap/loadcap/loadgen/k6"
)

// asLoadcapEnv set to 1 makes the test binary run as the loadcap command.
const asLoadcapEnv = "LOADCAP_TEST_AS_LOADCAP"

// Tests that call t.Parallel run together, two at a time (-parallel is
// GOMAXPROCS), once the others have run one by one. Only light tests are
// parallel: exit codes, files, signals, counts. A test that judges latency,
// measures a capacity, checks a rate's shape over time, drives a browser or
// retries a disturbed attempt (quiet.Retry) stays sequential, so that it
// never shares the machine with another test of this package.

// TestMain lets the test binary be its own k6 child, as the loadcap
// executable is: `loadcap run script.js` starts os.Executable() with
// k6.ChildCommand.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == k6.ChildCommand {
		os.Exit(k6ChildMain(os.Args[2:]))
	}
	if os.Getenv(asLoadcapEnv) == "1" {
		main() // a test's own loadcap process (an agent it can kill)
	}
	os.Exit(m.Run())
}
