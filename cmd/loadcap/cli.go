package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/loadcap/loadcap/scenarios"
)

// Exit codes (DESIGN.md; k6's numbers where k6 has the same case).
const (
	exitOK         = 0
	exitToolError  = 1
	exitUsage      = 2
	exitThresholds = 99
	exitInvalid    = 104
	exitAborted    = 105
	exitRegression = 110
	exitIsolation  = 106 // the isolation pre-flight or the audit found a leak
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

// state is everything a command touches outside itself, injected so that
// command tests run in-process.
type state struct {
	stdout, stderr io.Writer
	args           []string
	getenv         func(string) string
	signals        <-chan os.Signal // interrupts: first stops gracefully, second at once
	tty            bool             // stderr is a terminal: live progress line
}

// exitError carries an exit code up to run, the only place that turns it
// into a process exit.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, err error) error { return &exitError{code: code, err: err} }

func usageErr(format string, a ...any) error {
	return withCode(exitUsage, fmt.Errorf(format, a...))
}

// exitCode maps an error to the process exit code.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if scenarios.Invalid(err) {
		return exitInvalid
	}
	return exitToolError
}

func run(ctx context.Context, st *state) int {
	root := newRoot(st)
	root.SetArgs(st.args)
	root.SetOut(st.stdout)
	root.SetErr(st.stderr)
	err := root.ExecuteContext(ctx)
	code := exitCode(err)
	if err != nil {
		var ee *exitError
		silent := errors.As(err, &ee) && ee.err == errSilent
		if !silent {
			fmt.Fprintln(st.stderr, "loadcap:", err)
		}
		if code == exitUsage {
			fmt.Fprintln(st.stderr, "Run 'loadcap --help' for usage.")
		}
	}
	return code
}

// errSilent marks an exit code whose reason was already printed.
var errSilent = errors.New("")

func newRoot(st *state) *cobra.Command {
	root := &cobra.Command{
		Use:           "loadcap",
		Short:         "Load that tells the truth, safe shadow traffic, and capacity you can plan from",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return withCode(exitUsage, err) })
	root.AddCommand(
		newRunCmd(st),
		newValidateCmd(st),
		newDemoCmd(st),
		newTargetCmd(st),
		newCapacityCmd(st),
		newCompareCmd(st),
		newReportCmd(st),
		newShadowCmd(st),
		newDrillCmd(st),
		newAgentCmd(st),
		newCertsCmd(st),
		newK8sCmd(st),
		newVersionCmd(st),
	)
	return root
}

// args wraps a cobra positional-argument check so that its failure is a
// usage error (exit 2).
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return withCode(exitUsage, err)
		}
		return nil
	}
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func newVersionCmd(st *state) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print loadcap's version",
		Args:  args(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintf(st.stdout, "loadcap %s\n", versionString())
			return err
		},
	}
}
