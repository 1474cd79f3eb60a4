package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/loadcap/loadcap/internal/capture"
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

func (r *recordingFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&r.format, "format", "", "nginx | har | goreplay | jsonl (default: guessed from the first bytes)")
	cmd.Flags().StringVar(&r.logFormat, "log-format", "", "with --format nginx: the server's log_format string (default: combined)")
	cmd.Flags().BoolVar(&r.strict, "strict", false, "exit 104 when any record is malformed (they are skipped either way)")
}

// open opens a recording in the format asked for or guessed.
func (r *recordingFlags) open(path string) (capture.ReadCloser, error) {
	var f capture.Format
	if r.format != "" {
		var err error
		if f, err = capture.ParseFormat(r.format); err != nil {
			return nil, withCode(exitUsage, err)
		}
	} else {
		head, err := readHead(path)
		if err != nil {
			return nil, withCode(exitInvalid, err)
		}
		f = capture.Detect(head)
	}
	var opts []capture.Option
	if r.logFormat != "" {
		if f != capture.FormatNginx {
			return nil, usageErr("--log-format applies to --format nginx, not %s", f)
		}
		opts = append(opts, capture.WithLogFormat(r.logFormat))
	}
	rc, err := capture.Open(path, f, opts...)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, withCode(exitInvalid, err)
		}
		return nil, err
	}
	return rc, nil
}

// malformed reports skipped records and, with --strict, fails with 104.
func (r *recordingFlags) malformed(st *state, m capture.Malformed) error {
	if m.Count == 0 {
		return nil
	}
	fmt.Fprintf(st.stderr, "%d malformed records skipped:\n%v\n", m.Count, m.Err())
	if r.strict {
		return withCode(exitInvalid, errSilent)
	}
	return nil
}

func readHead(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, 8<<10)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf[:n], nil
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
parameters given here. Malformed records are skipped and reported (the first 10 with their line);
--strict makes them exit 104.`,
		Example: `  loadcap shadow import access.log --format nginx --out traffic.jsonl
  loadcap shadow import session.har --out traffic.jsonl --scrub-field card.number --scrub-header X-Api-Key`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(_ *cobra.Command, a []string) error {
			if out == "" {
				return usageErr("--out is required: the JSON lines file to write")
			}
			if noScrub && (len(scrub.Headers)+len(scrub.Fields)+len(scrub.Query) > 0) {
				return usageErr("--no-scrub and --scrub-* exclude each other")
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
					return withCode(exitUsage, err)
				}
				wopt = capture.WithScrubber(s)
			}
			n, err := writeRecording(out, in, wopt)
			if err != nil {
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

// writeRecording copies every record into path, atomically: a failed
// import leaves no half file behind.
func writeRecording(path string, in capture.Reader, opt capture.WriterOption) (int64, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	w := capture.NewWriter(tmp, opt)
	n, err := capture.Copy(w, in)
	if err == nil {
		err = w.Flush()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, err
	}
	return n, os.Rename(tmp.Name(), path)
}

func newInspectCmd(st *state) *cobra.Command {
	var rf recordingFlags
	cmd := &cobra.Command{
		Use:   "inspect FILE",
		Short: "What a recording holds: routes, methods, statuses, rate over time, the peak second",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(_ *cobra.Command, a []string) error {
			in, err := rf.open(a[0])
			if err != nil {
				return err
			}
			defer in.Close()
			start := time.Now()
			stats, err := capture.Inspect(in)
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
