package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/loadcap/loadcap/scenarios"
)

func newValidateCmd(st *state) *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check scenario files: every problem, each with file:line:col (exit 104 if any)",
		Args:  args(cobra.MinimumNArgs(1)),
		RunE: func(_ *cobra.Command, files []string) error {
			bad := 0
			for _, path := range files {
				f, err := scenarios.Load(path)
				if err != nil {
					bad++
					fmt.Fprintln(st.stderr, err)
					continue
				}
				fmt.Fprintf(st.stdout, "%s: ok (%d scenarios, %d requests, %d thresholds)\n",
					path, len(f.Scenarios), len(f.Requests), len(f.Thresholds))
			}
			if bad > 0 {
				return withCode(exitInvalid, fmt.Errorf("%d of %d files invalid", bad, len(files)))
			}
			return nil
		},
	}
}
