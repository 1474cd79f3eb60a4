package capture

import (
	"bufio"
	"fmt"
	"io"
)

// JSONLReader reads this package's JSON lines (see the package
// documentation), one record per line; blank lines are skipped. A record
// keeps the source it was written with; one without a "source" gets its own
// file:line.
type JSONLReader struct {
	name string
	lr   lineReader
	mal  Malformed
}

var _ Reader = (*JSONLReader)(nil)

// NewJSONLReader reads JSON lines from r; name is the file name sources and
// problems give.
func NewJSONLReader(r io.Reader, name string, opts ...Option) *JSONLReader {
	return newJSONLReader(bufio.NewReaderSize(r, 64<<10), name, buildOptions(opts))
}

func newJSONLReader(br *bufio.Reader, name string, o options) *JSONLReader {
	skipBOM(br)
	return &JSONLReader{name: name, lr: lineReader{br: br, max: o.maxRecord, cut: o.cut}}
}

// Next returns the next valid record.
func (j *JSONLReader) Next() (Record, error) {
	for {
		line, tooLong, err := j.lr.next()
		if err != nil {
			if err == io.EOF {
				return Record{}, io.EOF
			}
			return Record{}, readErr(j.name, err)
		}
		src := Source{File: j.name, Line: j.lr.n}
		if tooLong {
			j.mal.add(src, "line longer than %d bytes", j.lr.max)
			continue
		}
		if blank(line) {
			continue
		}
		rec, err := decodeJSONRecord(line)
		if err == nil {
			err = rec.Validate()
		}
		if err != nil {
			j.mal.add(src, "%v", err)
			continue
		}
		if rec.Source.IsZero() {
			rec.Source = src
		}
		return rec, nil
	}
}

// Malformed reports the lines skipped so far.
func (j *JSONLReader) Malformed() Malformed { return j.mal.clone() }

// Writer writes records as JSON lines, scrubbed first (see Scrubber) unless
// WithoutScrubbing is given. Output is deterministic: the same records give
// the same bytes. A Writer buffers: call Flush at the end. It is not safe
// for concurrent use.
type Writer struct {
	bw    *bufio.Writer
	buf   []byte
	scrub *Scrubber
	n     int64
}

// WriterOption tunes a Writer.
type WriterOption func(*Writer)

// WithScrubber scrubs with s instead of DefaultScrubber().
func WithScrubber(s *Scrubber) WriterOption { return func(w *Writer) { w.scrub = s } }

// WithoutScrubbing writes records as they are: headers such as
// Authorization and Cookie reach the file. For recordings known to be
// clean, or already scrubbed.
func WithoutScrubbing() WriterOption { return func(w *Writer) { w.scrub = nil } }

// NewWriter returns a Writer to w that scrubs with DefaultScrubber().
func NewWriter(w io.Writer, opts ...WriterOption) *Writer {
	wr := &Writer{bw: bufio.NewWriterSize(w, 64<<10), scrub: DefaultScrubber()}
	for _, o := range opts {
		o(wr)
	}
	return wr
}

// Write scrubs a copy of rec (rec itself is not changed) and writes it as
// one line.
func (w *Writer) Write(rec *Record) error {
	r := rec
	if w.scrub != nil {
		c := *rec
		w.scrub.Scrub(&c)
		r = &c
	}
	w.buf = r.AppendJSON(w.buf[:0])
	w.buf = append(w.buf, '\n')
	if _, err := w.bw.Write(w.buf); err != nil {
		return fmt.Errorf("write traffic: %w", err)
	}
	w.n++
	return nil
}

// Flush writes buffered lines to the underlying writer.
func (w *Writer) Flush() error {
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("write traffic: %w", err)
	}
	return nil
}

// Count is the number of records written.
func (w *Writer) Count() int64 { return w.n }

// Copy writes every record of r to w and flushes w: the import pipeline.
// It returns the number of records written; r.Malformed() tells what was
// skipped.
func Copy(w *Writer, r Reader) (int64, error) {
	var n int64
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return n, err
		}
		if err := w.Write(&rec); err != nil {
			return n, err
		}
		n++
	}
	return n, w.Flush()
}
