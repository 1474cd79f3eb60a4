// Command loadcap generates load that tells the truth, keeps production safe
// while doing it, and turns measurements into capacity. See README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"

	"github.com/loadcap/loadcap/internal/cli"
	"github.com/loadcap/loadcap/loadgen/k6"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == k6.ChildCommand {
		os.Exit(k6ChildMain(os.Args[2:]))
	}
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	st := &state{
		stdout:  os.Stdout,
		stderr:  os.Stderr,
		args:    os.Args[1:],
		getenv:  os.Getenv,
		signals: sig,
		tty:     term.IsTerminal(int(os.Stderr.Fd())),
	}
	code := run(context.Background(), st)
	// A command stopped at once may leave an output being written: the
	// previous file stays, its temporary file goes.
	cli.RemoveTemporaries()
	os.Exit(code)
}
