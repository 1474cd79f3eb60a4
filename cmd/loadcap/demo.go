package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/loadcap/loadcap/loadgen/target"
	"github.com/loadcap/loadcap/scenarios"
)

// demoScenario is the built-in demo: a short arrival-rate ramp over a small
// shop-like mix. TARGET is replaced by the in-process target's URL.
const demoScenario = `# loadcap demo: a ramp to 600 req/s against a built-in target on loopback
target: TARGET
scenarios:
  ramp:
    executor: ramping-arrival-rate
    startRate: 50
    timeUnit: 1s
    preAllocatedVUs: 20
    maxVUs: 200
    stages:
      - {target: 600, duration: 5s}
      - {target: 600, duration: 3s}
      - {target: 0, duration: 2s}
requests:
  - name: home
    path: /
    weight: 3
  - name: product
    path: /product/{{randInt 1 500}}
    weight: 2
  - name: checkout
    method: POST
    path: /checkout
    headers: {Content-Type: application/json}
    body: '{"order": {{seq 1000}}, "sku": {{randInt 1 500}}, "qty": 1}'
    weight: 1
thresholds:
  http_req_duration: ["p(99)<100"]
  http_req_failed: ["rate<0.01"]
`

func newDemoCmd(st *state) *cobra.Command {
	var c execOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "No setup: start a built-in target on loopback, run a short ramp against it, print the summary",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			srv, err := target.Start(target.Config{Listen: "127.0.0.1:0", Workers: 8, ServiceTime: 5 * time.Millisecond})
			if err != nil {
				return fmt.Errorf("demo: start target: %w", err)
			}
			defer srv.Close()
			f, err := scenarios.Parse("demo.yaml", []byte(strings.Replace(demoScenario, "TARGET", srv.URL(), 1)))
			if err != nil {
				return fmt.Errorf("demo: built-in scenario: %w", err)
			}
			fmt.Fprintf(st.stdout, "demo: target %s (8 workers x 5ms service time = 1600 req/s capacity)\n", srv.URL())
			fmt.Fprintln(st.stdout, "demo: ramping-arrival-rate 50 -> 600 req/s over 5s, hold 3s, down over 2s")
			return execute(cmd.Context(), st, f, c)
		},
	}
	cmd.Flags().StringVarP(&c.out, "out", "o", "", "write the run result (JSON) to this file")
	cmd.Flags().BoolVarP(&c.quiet, "quiet", "q", false, "no progress line")
	return cmd
}
