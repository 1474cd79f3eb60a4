package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/loadcap/loadcap/internal/cli"
	"github.com/loadcap/loadcap/internal/dashboard"
	"github.com/loadcap/loadcap/loadgen"
)

// addDashboardFlag adds --dashboard ADDR to run and drill.
func addDashboardFlag(cmd *cobra.Command, addr *string) {
	cmd.Flags().StringVar(addr, "dashboard", "", `serve the live dashboard on this address ("127.0.0.1:8090"; a bare ":8090" is loopback only)`)
}

// liveDashboard is a started --dashboard and when it started.
type liveDashboard struct {
	*dashboard.Server
	since time.Time
}

// startDashboard serves --dashboard (nil without one) and prints its URL;
// a drill's (withStop) also its stop token, which the URL carries.
func startDashboard(st *state, addr, title string, withStop bool) (*liveDashboard, error) {
	if addr == "" {
		return nil, nil
	}
	d, err := dashboard.New(dashboard.Config{Addr: addr, Title: title})
	if err != nil {
		return nil, cli.WithCode(cli.ExitUsage, fmt.Errorf("--dashboard: %w", err))
	}
	fmt.Fprintf(st.stderr, "dashboard: %s\n", d.URL())
	if withStop {
		fmt.Fprintf(st.stderr, "dashboard: its stop button asks for the token %s\n", d.Token())
	}
	return &liveDashboard{Server: d, since: time.Now()}, nil
}

// observe adds the dashboard to a run's interval hook.
func (d *liveDashboard) observe(hook func(loadgen.Interval)) func(loadgen.Interval) {
	if hook == nil {
		return d.Observe
	}
	return func(iv loadgen.Interval) { hook(iv); d.Observe(iv) }
}

// end tells the pages how the command ends (err is what it returns) and
// closes the dashboard; report is the HTML report, linked when this
// command wrote it. After a second signal it closes at once, without
// waiting for the pages to read the end.
func (d *liveDashboard) end(verdict string, err error, report string) {
	if errors.Is(err, cli.ErrStoppedAtOnce) {
		d.Close()
		return
	}
	code := exitCode(err)
	if verdict == "" {
		switch {
		case err == nil:
			verdict = "passed"
		case errors.Is(err, cli.ErrSilent) && code == int(cli.ExitAborted):
			verdict = "aborted"
		default:
			verdict = err.Error()
		}
	}
	if fi, statErr := os.Stat(report); report == "" || statErr != nil || fi.ModTime().Before(d.since) {
		report = ""
	}
	d.End(dashboard.Outcome{Verdict: verdict, Code: code, Report: report})
	d.Close()
}

// codeErr is an error that stands for code alone (nil for ExitOK).
func codeErr(code cli.Code) error {
	if code == cli.ExitOK {
		return nil
	}
	return cli.WithCode(code, cli.ErrSilent)
}
