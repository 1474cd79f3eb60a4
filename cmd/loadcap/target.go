package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/loadcap/loadcap/internal/cli"
	"github.com/loadcap/loadcap/loadgen/target"
)

func newTargetCmd(st *state) *cobra.Command {
	var (
		c   target.Config
		dur time.Duration
	)
	cmd := &cobra.Command{
		Use:   "target",
		Short: "Serve a calibrated test target: Workers/ServiceTime req/s capacity, stalls, resets and errors on demand",
		Long: `Serve a calibrated HTTP test target (like fortio's server). Every path answers 200 "ok" after the
service time on one of --workers workers, so capacity is workers/service-time requests per second
and requests beyond it queue. Also: /sleep?ms=N, /status/CODE, /bytes/N, /stats (JSON), /metrics
(Prometheus). Fault modes: --stall-every/--stall-for, --reset-every, --error-rate.`,
		Example: `  loadcap target --listen 127.0.0.1:8080 --workers 8 --service-time 10ms`,
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c.Log = st.stderr
			if err := c.Validate(); err != nil {
				return cli.WithCode(cli.ExitUsage, err)
			}
			srv, err := target.Start(c)
			if err != nil {
				return err
			}
			defer srv.Close()
			ctx := cmd.Context()
			if dur > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, dur)
				defer cancel()
			}
			// A signal (or --duration) ends serving: open requests get 5 s,
			// or until the second signal. The stopper is open before the
			// address is announced: whoever acts on it may signal at once.
			stop := st.stopper(ctx, "open requests get 5s to finish")
			defer stop.Close()
			fmt.Fprintf(st.stdout, "target listening on %s\n", srv.URL())
			<-stop.Context().Done()
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			go func() {
				select {
				case <-stop.Now():
					cancel()
				case <-sctx.Done():
				}
			}()
			_ = srv.Shutdown(sctx)
			s := srv.Stats()
			fmt.Fprintf(st.stdout, "served %d requests (%.1f/s), %d stalled, %d resets, %d errors, %d rejected\n",
				s.Served, s.ServedRate(), s.Stalled, s.Resets, s.Errors, s.Rejected)
			select {
			case <-stop.Now(): // open requests were cut off
				return cli.WithCode(cli.ExitAborted, errors.New("stopped at once by a second signal: open requests were cut off"))
			default:
			}
			// Serving until interrupted is the target's work: the first
			// signal ends it as --duration does.
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&c.Listen, "listen", "127.0.0.1:8080", "address to listen on")
	fl.IntVar(&c.Workers, "workers", 0, "concurrent workers (0 = unlimited)")
	fl.DurationVar(&c.ServiceTime, "service-time", 0, "time each request occupies a worker")
	fl.StringVar(&c.Dist, "dist", "fixed", "service time distribution: fixed or exp")
	fl.IntVar(&c.MaxQueue, "max-queue", 0, "requests waiting beyond this get 503 at once (0 = unbounded)")
	fl.DurationVar(&c.StallEvery, "stall-every", 0, "stall the whole server periodically (with --stall-for)")
	fl.DurationVar(&c.StallFor, "stall-for", 0, "length of each stall")
	fl.IntVar(&c.ResetEvery, "reset-every", 0, "reset the connection (TCP RST) on every Nth request")
	fl.Float64Var(&c.ErrorRate, "error-rate", 0, "fraction of requests answered 500")
	fl.Uint64Var(&c.Seed, "seed", 1, "seed for exp service times and error choice")
	fl.BoolVar(&c.H2C, "h2c", false, "also accept HTTP/2 cleartext (prior knowledge)")
	fl.BoolVar(&c.TLS, "tls", false, "serve HTTPS with a self-signed certificate (HTTP/2 by ALPN)")
	fl.DurationVar(&dur, "duration", 0, "stop after this long (0 = until interrupted)")
	return cmd
}
