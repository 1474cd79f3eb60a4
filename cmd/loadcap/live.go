package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/loadcap/loadcap/loadgen/live"
)

// liveFlags are a load's live metrics: --metrics-listen, and --out
// prometheus-rw=URL (through outFlag).
type liveFlags struct {
	listen      string
	remoteWrite string
}

const prometheusRW = "prometheus-rw="

func (l *liveFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&l.listen, "metrics-listen", "", "serve live Prometheus metrics at http://ADDR/metrics while the load runs (README: Live metrics)")
}

// outFlag is an --out that takes the command's result file and, besides
// it, prometheus-rw=URL: the live metrics pushed to a Prometheus
// remote-write receiver (as k6's --out experimental-prometheus-rw).
// file nil means the command has no result file of its own.
type outFlag struct {
	file *string
	live *liveFlags
}

func (o outFlag) String() string {
	if o.file == nil {
		return ""
	}
	return *o.file
}

func (o outFlag) Set(v string) error {
	if url, ok := strings.CutPrefix(v, prometheusRW); ok {
		if o.live.remoteWrite != "" {
			return fmt.Errorf("%s given twice", prometheusRW)
		}
		o.live.remoteWrite = url
		return nil
	}
	if o.file == nil {
		return fmt.Errorf("%q: this command writes no file with --out; it takes %sURL", v, prometheusRW)
	}
	if *o.file != "" {
		return fmt.Errorf("%q: one result file (%s already), besides %sURL", v, *o.file, prometheusRW)
	}
	*o.file = v
	return nil
}

func (o outFlag) Type() string { return "string" }

// start serves and pushes the live metrics the flags ask for; its Metrics
// are nil when they ask for none. Close it with stop.
func (l *liveFlags) start(st *state) (*live.Session, error) {
	s, err := live.Start(live.Config{Listen: l.listen, RemoteWrite: l.remoteWrite})
	if err != nil {
		return nil, usageErr("%v", err)
	}
	if a := s.Addr(); a != nil {
		fmt.Fprintf(st.stderr, "metrics on http://%s/metrics\n", a)
	}
	return s, nil
}

// stop pushes the last figures; what the receiver never got is a warning,
// not the run's failure.
func (l *liveFlags) stop(st *state, s *live.Session) {
	if err := s.Close(); err != nil {
		fmt.Fprintf(st.stderr, "warning: %v\n", err)
	}
}
