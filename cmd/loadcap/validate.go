package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/loadcap/loadcap/internal/cli"
	"github.com/loadcap/loadcap/internal/runner"
)

func newValidateCmd(st *state) *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check scenario, drill and capacity plan files and k6 scripts: every problem, each with file:line:col (exit 104 if any)",
		Long: `Check scenario, drill and capacity plan files: every problem, each with file:line:col and the
key path. A k6 script (.js) is checked by k6 itself: it is archived as a run would load it (its
init code runs, its imports and options are resolved; nothing is sent).`,
		Args: args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, files []string) error {
			bad := 0
			for _, path := range files {
				summary, err := runner.Validate(cmd.Context(), path)
				if err != nil {
					bad++
					fmt.Fprintln(st.stderr, err)
					continue
				}
				fmt.Fprintf(st.stdout, "%s: ok (%s)\n", path, summary)
			}
			if bad > 0 {
				return cli.WithCode(cli.ExitInvalid, fmt.Errorf("%d of %d files invalid", bad, len(files)))
			}
			return nil
		},
	}
}
