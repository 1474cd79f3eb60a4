package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/loadcap/loadcap/internal/cli"
)

// OpenFile opens a recording in format ("nginx", "har", "goreplay",
// "jsonl"; "" guesses it from the first bytes), an nginx one with its
// log_format string (logFormat; "" is combined). Its errors carry exit
// codes (internal/cli): 2 for a format that does not fit, 104 for a file
// that cannot be read.
func OpenFile(path, format, logFormat string) (ReadCloser, error) {
	var f Format
	if format != "" {
		var err error
		if f, err = ParseFormat(format); err != nil {
			return nil, cli.WithCode(cli.ExitUsage, err)
		}
	} else {
		head, err := readHead(path)
		if err != nil {
			return nil, cli.WithCode(cli.ExitInvalid, err)
		}
		f = Detect(head)
	}
	var opts []Option
	if logFormat != "" {
		if f != FormatNginx {
			return nil, cli.WithCode(cli.ExitUsage, fmt.Errorf("--log-format applies to --format nginx, not %s", f))
		}
		opts = append(opts, WithLogFormat(logFormat))
	}
	rc, err := Open(path, f, opts...)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, cli.WithCode(cli.ExitInvalid, err)
		}
		return nil, err
	}
	return rc, nil
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

// Import copies every record of in into path as JSON lines through
// writeAtomic, so that a failed or interrupted import (ctx done), or with
// strict one that skipped malformed records (ErrStrict), leaves the
// previous file as it was. It returns how many records it copied.
func Import(ctx context.Context, path string, in Reader, opt WriterOption, strict bool,
	writeAtomic func(path string, write func(io.Writer) error) error) (n int64, err error) {
	in = stoppable{in, ctx}
	err = writeAtomic(path, func(w io.Writer) error {
		cw := NewWriter(w, opt)
		if n, err = Copy(cw, in); err != nil {
			return err
		}
		if strict && in.Malformed().Count > 0 {
			return ErrStrict
		}
		return nil
	})
	return n, err
}

// ErrStrict fails an Import with strict that skipped malformed records.
var ErrStrict = errors.New("malformed records with --strict")

// WithContext returns in as a Reader that ends with ctx's cause once ctx
// is done: a signal stops the reading between two records.
func WithContext(ctx context.Context, in Reader) Reader { return stoppable{in, ctx} }

// stoppable is a Reader that ends with the context's cause once ctx is
// done.
type stoppable struct {
	Reader
	ctx context.Context
}

func (s stoppable) Next() (Record, error) {
	select {
	case <-s.ctx.Done():
		return Record{}, context.Cause(s.ctx)
	default:
		return s.Reader.Next()
	}
}
