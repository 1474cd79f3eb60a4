package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/loadcap/loadcap/internal/cli"
	"github.com/loadcap/loadcap/scenarios"
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

	router *cli.Router // set by run: signals go to the open stopper, else stop the command at once
}

// exitCode is the process exit code for err (cli.ExitCode): an invalid
// input file without a code of its own is ExitInvalid.
func exitCode(err error) int {
	return cli.ExitCode(err, func(err error) (cli.Code, bool) { return cli.ExitInvalid, scenarios.Invalid(err) })
}

// stopper watches st's signals for a command: the first stops it
// gracefully (graceful says what finishes), the second at once. Close it
// when the command ends. A signal while no stopper is open stops the
// command at once (run).
func (st *state) stopper(ctx context.Context, graceful string) *cli.Stopper {
	return st.router.Stopper(ctx, st.stderr, graceful)
}

// checkOutputs checks, before any work starts, that the files the named
// flags ask for can be written (cli.CheckOutput): a usage error names the
// flag and the path.
func checkOutputs(cmd *cobra.Command, flags ...string) error {
	for _, name := range flags {
		f := cmd.Flags().Lookup(name)
		if f == nil || f.Value.String() == "" {
			continue
		}
		if err := cli.CheckOutput(f.Value.String()); err != nil {
			return usageErr("--%s: %v", name, err)
		}
	}
	return nil
}

// checkDirs checks, before any work starts, that the directories the
// named flags ask for can take files: each is created (with its parents)
// and checked as checkOutputs checks a file.
func checkDirs(cmd *cobra.Command, flags ...string) error {
	for _, name := range flags {
		f := cmd.Flags().Lookup(name)
		if f == nil || f.Value.String() == "" {
			continue
		}
		if err := checkDir(f.Value.String()); err != nil {
			return usageErr("--%s: %v", name, err)
		}
	}
	return nil
}

// checkDir creates dir if need be and checks that it takes a new file.
func checkDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cannot write into %s: %w", dir, err)
	}
	return cli.CheckOutput(filepath.Join(dir, "loadcap.check"))
}

// writeJSON writes v indented to path, atomically.
func writeJSON(path string, v any) error {
	return cli.WriteAtomic(path, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	})
}

func usageErr(format string, a ...any) error {
	return cli.WithCode(cli.ExitUsage, fmt.Errorf(format, a...))
}

func run(ctx context.Context, st *state) int {
	router := cli.NewRouter(st.signals)
	defer router.Close()
	cs := *st
	cs.router = router
	st = &cs
	root := newRoot(st)
	root.SetArgs(st.args)
	root.SetOut(st.stdout)
	root.SetErr(st.stderr)
	// A command with a graceful path opens a stopper for it; a signal that
	// comes while none is open (a short command, or a long one before or
	// after its stoppable part) ends the command at once: its outputs are
	// written atomically, so none is left half written.
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	var err error
	select {
	case err = <-done:
	case sig := <-router.Unhandled():
		err = cli.WithCode(cli.ExitAborted, fmt.Errorf("interrupted by %s: stopped at once", sig))
	}
	code := exitCode(err)
	if err != nil {
		if !cli.Silent(err) {
			fmt.Fprintln(st.stderr, "loadcap:", err)
		}
		if code == int(cli.ExitUsage) {
			fmt.Fprintln(st.stderr, "Run 'loadcap --help' for usage.")
		}
	}
	return code
}

func newRoot(st *state) *cobra.Command {
	root := &cobra.Command{
		Use:           "loadcap",
		Short:         "Load that tells the truth, safe shadow traffic, and capacity you can plan from",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return cli.WithCode(cli.ExitUsage, err) })
	root.AddCommand(
		newRunCmd(st),
		newValidateCmd(st),
		newDemoCmd(st),
		newTargetCmd(st),
		newCapacityCmd(st),
		newCompareCmd(st),
		newMergeCmd(st),
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
			return cli.WithCode(cli.ExitUsage, err)
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
