package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/loadcap/loadcap/internal/cli"
	"github.com/loadcap/loadcap/reports"
)

func newMergeCmd(st *state) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "merge RUN.json... --out all.json",
		Short: "Add up the run results of parts of one load (several coordinators, or agents' --parts-dir)",
		Long: `Merge run results that are parts of one load into the result one run over all of them
writes: counts summed, every histogram (overall, per request, per second) merged bucket by
bucket, so totals and percentiles are exact. Seconds match by their number since each part's
start. Thresholds are evaluated again on the merged figures where run.json holds what they
measure; any other keeps its parts' verdict, with a note. Exit 99 when a threshold fails on
the merged figures, as for one run (the merged file is written either way). Use it to run wider than one
coordinator: give each coordinator its agents' segments of one sequence
(--execution-segment-sequence with --execution-segment), then merge their --out files.`,
		Example: `  loadcap merge east.json west.json --out all.json
  loadcap report all.json -o all.html`,
		Args: args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if out == "" {
				return usageErr("--out is required")
			}
			if err := checkOutputs(cmd, "out"); err != nil {
				return err
			}
			run, err := reports.MergeFiles(a...)
			if err != nil {
				return cli.WithCode(cli.ExitInvalid, err)
			}
			if err := run.WriteFile(out); err != nil {
				return err
			}
			fmt.Fprintf(st.stderr, "merged %d runs: %d sent, %d completed, %d failed -> %s\n",
				len(a), run.Totals.Sent, run.Totals.Completed, run.Totals.Failed, out)
			// The merged verdict gates CI as one run's would: 99 when a
			// threshold fails on the merged figures (the file is written
			// either way, for the report).
			var failed []string
			for _, th := range run.Thresholds {
				if !th.Passed {
					failed = append(failed, th.Metric+" "+th.Expr)
				}
			}
			if len(failed) > 0 {
				return cli.WithCode(cli.ExitThresholds, fmt.Errorf("merged thresholds failed: %s", strings.Join(failed, ", ")))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "write the merged run result here (atomically)")
	return cmd
}
