package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/loadcap/loadcap/internal/cli"
	"github.com/loadcap/loadcap/reports"
	"github.com/loadcap/loadcap/scenarios/slo"
)

func newCompareCmd(st *state) *cobra.Command {
	var allowed, out string
	cmd := &cobra.Command{
		Use:   "compare BASELINE.json RUN.json [--max-regression 'p(99)+10%,rps-5%,error_rate+0.1pp']",
		Short: "Compare a run with a baseline, overall and per request; exit 110 on a regression",
		Long: `Compare two run results (loadcap run --out). Latencies come from the runs' histograms, so any
percentile is exact. Each --max-regression clause says how far a metric may move the bad way:
p(N), avg and max may rise by a % or by ms; rps may fall by a %; error_rate may rise by
percentage points (pp). A limit counts as exceeded only when the change is beyond noise: the
whole 95% block-bootstrap interval of the change lies past it (README: "Noise in compare").
Exit 110 when any clause is exceeded overall or for any request.`,
		Args: args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := checkOutputs(cmd, "out"); err != nil {
				return err
			}
			allow, err := slo.ParseAllowances(allowed)
			if err != nil {
				return cli.WithCode(cli.ExitUsage, err)
			}
			base, err := reports.ReadFile(a[0])
			if err != nil {
				return cli.WithCode(cli.ExitInvalid, err)
			}
			run, err := reports.ReadFile(a[1])
			if err != nil {
				return cli.WithCode(cli.ExitInvalid, err)
			}
			c, err := reports.Compare(base, run, allow)
			if err != nil {
				return cli.WithCode(cli.ExitInvalid, err)
			}
			if err := c.WriteText(st.stdout); err != nil {
				return err
			}
			if out != "" {
				if err := cli.WriteAtomic(out, c.WriteJSON); err != nil {
					return err
				}
			}
			if c.Regressed {
				return cli.WithCode(cli.ExitRegression, errors.New("regression against the baseline"))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&allowed, "max-regression", slo.DefaultMaxRegression, "what each metric may lose against the baseline")
	cmd.Flags().StringVarP(&out, "out", "o", "", "also write the comparison as JSON (loadcap.compare/v1) to this file")
	return cmd
}
