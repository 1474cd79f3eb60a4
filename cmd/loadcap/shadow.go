package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/loadcap/loadcap/internal/capture"
	"github.com/loadcap/loadcap/internal/cli"
)

func newShadowCmd(st *state) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "shadow",
		Short: "Recorded traffic and shadow isolation: import, inspect, check, audit",
		Args:  args(cobra.NoArgs),
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newImportCmd(st), newInspectCmd(st))
	cmd.AddCommand(shadowIsolationCmds(st)...)
	return cmd
}

// recordingFlags are how a command opens a recording.
type recordingFlags struct {
	format    string
	logFormat string
	strict    bool
}

// open opens a recording in the format asked for or guessed.
func (r *recordingFlags) open(path string) (capture.ReadCloser, error) {
	return capture.OpenFile(path, r.format, r.logFormat)
}

func (r *recordingFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&r.format, "format", "", "nginx | har | goreplay | jsonl (default: guessed from the first bytes)")
	cmd.Flags().StringVar(&r.logFormat, "log-format", "", "with --format nginx: the server's log_format string (default: combined)")
	cmd.Flags().BoolVar(&r.strict, "strict", false, "exit 104 when any record is malformed or the recording is cut short (the rest is read either way)")
}

// malformed reports skipped records and a recording cut short (the
// records before the cut are kept) and, with --strict, fails with 104.
func (r *recordingFlags) malformed(st *state, m capture.Malformed) error {
	if m.Count == 0 {
		return nil
	}
	skipped := m.Count
	if c := m.Cut(); c != nil {
		skipped--
		fmt.Fprintf(st.stderr, "warning: %s is cut short at line %d: the records before the cut were read, the rest is lost\n", c.Source.File, c.Source.Line)
	}
	if skipped > 0 {
		fmt.Fprintf(st.stderr, "%d malformed records skipped:\n", skipped)
	}
	fmt.Fprintf(st.stderr, "%v\n", m.Err())
	if r.strict {
		return cli.WithCode(cli.ExitInvalid, cli.ErrSilent)
	}
	return nil
}

func newImportCmd(st *state) *cobra.Command {
	var (
		rf      recordingFlags
		out     string
		scrub   capture.ScrubConfig
		noScrub bool
	)
	cmd := &cobra.Command{
		Use:   "import FILE --format nginx|har|goreplay|jsonl --out traffic.jsonl",
		Short: "Normalize recorded traffic into loadcap's JSON lines, scrubbed of credentials",
		Long: `Read a recording (an nginx/Apache access log, a HAR file, a GoReplay .gor file, or JSON lines)
as a stream and write loadcap's normalized JSON lines, which replay: reads. Authorization, Cookie
and Set-Cookie are removed before anything is written, with the headers, body fields and query
parameters given here. Malformed records are skipped and reported (the first 10 with their line).
A gzip recording cut short (or broken) gives the records before the cut and a warning with the
line where it breaks. --strict makes either exit 104 and leaves --out as it was.`,
		Example: `  loadcap shadow import access.log --format nginx --out traffic.jsonl
  loadcap shadow import session.har --out traffic.jsonl --scrub-field card.number --scrub-header X-Api-Key`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if out == "" {
				return usageErr("--out is required: the JSON lines file to write")
			}
			if noScrub && (len(scrub.Headers)+len(scrub.Fields)+len(scrub.Query) > 0) {
				return usageErr("--no-scrub and --scrub-* exclude each other")
			}
			if err := checkOutputs(cmd, "out"); err != nil {
				return err
			}
			in, err := rf.open(a[0])
			if err != nil {
				return err
			}
			defer in.Close()
			var wopt capture.WriterOption
			if noScrub {
				wopt = capture.WithoutScrubbing()
			} else {
				s, err := capture.NewScrubber(scrub)
				if err != nil {
					return cli.WithCode(cli.ExitUsage, err)
				}
				wopt = capture.WithScrubber(s)
			}
			// A signal stops the reading; out is only replaced by a
			// complete import.
			stop := st.stopper(cmd.Context(), out+" is left as it was")
			defer stop.Close()
			defer context.AfterFunc(stop.Context(), func() { in.Close() })() // cuts a read waiting for data (a pipe)
			var n int64
			err = stop.Wait(func() (err error) {
				n, err = capture.Import(stop.Context(), out, in, wopt, rf.strict, cli.WriteAtomic)
				return err
			})
			switch {
			case errors.Is(err, cli.ErrStoppedAtOnce):
				return cli.WithCode(cli.ExitAborted, fmt.Errorf("%w: %s is left as it was", cli.ErrStoppedAtOnce, out))
			case stop.Interrupted() && err != nil:
				return cli.WithCode(cli.ExitAborted, fmt.Errorf("shadow import %s after %d requests: %s is left as it was", stop.Reason(), n, out))
			case errors.Is(err, capture.ErrStrict):
				fmt.Fprintf(st.stderr, "--strict: %s is left as it was\n", out)
				return rf.malformed(st, in.Malformed())
			case err != nil:
				return err
			}
			fmt.Fprintf(st.stderr, "%s: %d requests from %s\n", out, n, a[0])
			return rf.malformed(st, in.Malformed())
		},
	}
	rf.add(cmd)
	fl := cmd.Flags()
	fl.StringVarP(&out, "out", "o", "", "the JSON lines file to write")
	fl.StringSliceVar(&scrub.Headers, "scrub-header", nil, "more headers to remove (Authorization, Cookie, Set-Cookie always are)")
	fl.StringSliceVar(&scrub.Fields, "scrub-field", nil, "JSON body fields to scrub, e.g. password or card.number")
	fl.StringSliceVar(&scrub.Query, "scrub-query", nil, "query parameters to scrub")
	fl.StringVar(&scrub.Replace, "scrub-replace", "", "replace scrubbed values with this text instead of removing them")
	fl.BoolVar(&noScrub, "no-scrub", false, "keep credentials (only for recordings that hold none)")
	return cmd
}

func newInspectCmd(st *state) *cobra.Command {
	var rf recordingFlags
	cmd := &cobra.Command{
		Use:   "inspect FILE",
		Short: "What a recording holds: routes, methods, statuses, rate over time, the peak second",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			in, err := rf.open(a[0])
			if err != nil {
				return err
			}
			defer in.Close()
			start := time.Now()
			// A signal stops the reading: what was read so far is
			// summarized, headed PARTIAL.
			stop := st.stopper(cmd.Context(), "the requests read so far are summarized")
			defer stop.Close()
			defer context.AfterFunc(stop.Context(), func() { in.Close() })()
			var stats *capture.Stats
			err = stop.Wait(func() (err error) {
				stats, err = capture.Inspect(capture.WithContext(stop.Context(), in))
				return err
			})
			if err != nil && stop.Interrupted() && stats != nil && !errors.Is(err, cli.ErrStoppedAtOnce) {
				stats.Malformed = in.Malformed()
				fmt.Fprintf(st.stdout, "PARTIAL: %s after %d requests; the rest of %s was not read\n", stop.Reason(), stats.Requests, a[0])
				if err := stats.WriteText(st.stdout); err != nil {
					return err
				}
				return cli.WithCode(cli.ExitAborted, fmt.Errorf("shadow inspect %s: a partial summary of the first %d requests", stop.Reason(), stats.Requests))
			}
			if err != nil {
				return err
			}
			if err := stats.WriteText(st.stdout); err != nil {
				return err
			}
			fmt.Fprintf(st.stderr, "read %d requests in %v\n", stats.Requests, time.Since(start).Round(time.Millisecond))
			return rf.malformed(st, stats.Malformed)
		},
	}
	rf.add(cmd)
	return cmd
}
