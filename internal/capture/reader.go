package capture

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/loadcap/loadcap/scenarios"
)

// Reader streams the records of one recording, in file order. Next returns
// io.EOF after the last record; any other error is a failure to read the
// input (not a malformed record) and ends the stream. Malformed records are
// skipped and counted; Malformed reports them, complete once Next has
// returned io.EOF.
//
// A Reader is not safe for concurrent use. Its memory does not grow with the
// input: it holds one record (a HAR entry, a log line, a GoReplay payload) at
// a time, plus a bounded look-ahead for GoReplay responses.
type Reader interface {
	Next() (Record, error)
	Malformed() Malformed
}

// ReadCloser is a Reader over a file it closes.
type ReadCloser interface {
	Reader
	io.Closer
}

// MaxProblems is how many malformed records a Malformed report describes.
const MaxProblems = 10

// Malformed counts the records a reader skipped and describes the first
// MaxProblems of them.
type Malformed struct {
	Count int64
	First []Problem
}

// Problem is one malformed record: where it is and why it was skipped.
// Cut marks the end of a recording whose compressed stream breaks: the
// records before it were read, the rest is lost.
type Problem struct {
	Source Source
	Reason string
	Cut    bool
}

// String formats the problem as "file:line: reason".
func (p Problem) String() string { return p.Source.String() + ": " + p.Reason }

// Cut returns the problem saying where the recording is cut short, if it
// is: a gzip stream that ends before its end or breaks. The records read
// before the cut are kept, and it is counted among the problems, so that
// --strict refuses the recording as it refuses a malformed record.
func (m Malformed) Cut() *Problem {
	for i := range m.First {
		if m.First[i].Cut {
			return &m.First[i]
		}
	}
	return nil
}

func (m *Malformed) clone() Malformed {
	return Malformed{Count: m.Count, First: slices.Clone(m.First)}
}

func (m *Malformed) add(src Source, format string, args ...any) {
	m.Count++
	if len(m.First) < MaxProblems {
		msg := format
		if len(args) > 0 {
			msg = fmt.Sprintf(format, args...)
		}
		m.First = append(m.First, Problem{Source: src, Reason: msg})
	}
}

// Err returns nil when nothing was malformed, else scenarios.Errors holding
// the first problems and, when there were more, a last line with the total.
// scenarios.Invalid reports true for it (the CLI's exit code 104 with
// --strict).
func (m Malformed) Err() error {
	if m.Count == 0 {
		return nil
	}
	es := make(scenarios.Errors, 0, len(m.First)+1)
	for _, p := range m.First {
		msg := "malformed record: " + p.Reason
		if p.Cut {
			msg = "cut short: " + p.Reason
		}
		es = append(es, &scenarios.Error{File: p.Source.File, Pos: scenarios.Pos{Line: p.Source.Line}, Msg: msg})
	}
	if m.Count > int64(len(m.First)) {
		file := ""
		if len(m.First) > 0 {
			file = m.First[0].Source.File
		}
		es = append(es, &scenarios.Error{File: file, Msg: fmt.Sprintf("%d malformed records in all (the first %d are listed)", m.Count, len(m.First))})
	}
	return es
}

// Format names a recording format.
type Format string

// The formats NewReader reads.
const (
	FormatNginx    Format = "nginx"    // nginx/Apache combined log, or the log_format given with WithLogFormat
	FormatHAR      Format = "har"      // HAR 1.2, as browsers export it
	FormatGoReplay Format = "goreplay" // GoReplay .gor files
	FormatJSONL    Format = "jsonl"    // this package's JSON lines
)

// ParseFormat reads a format name as the CLI's --format takes it: nginx
// (also combined, apache), har, goreplay (also gor), jsonl (also json,
// ndjson). Case is ignored.
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "nginx", "combined", "apache":
		return FormatNginx, nil
	case "har":
		return FormatHAR, nil
	case "goreplay", "gor":
		return FormatGoReplay, nil
	case "jsonl", "json", "ndjson":
		return FormatJSONL, nil
	}
	return "", &scenarios.Error{Path: "format", Msg: fmt.Sprintf("unknown format %q; expected one of: nginx, har, goreplay, jsonl", s)}
}

// Detect guesses the format of a recording from its first bytes (a few KiB
// are plenty): a JSON object whose first key is "log" is HAR, a JSON object
// on the first line is JSONL, another JSON document is HAR, a "1 <hex id>
// <nanoseconds>" first line is GoReplay, and anything else is taken for a
// web server log.
func Detect(head []byte) Format {
	head = bytes.TrimPrefix(head, []byte("\xef\xbb\xbf"))
	trimmed := bytes.TrimLeft(head, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '{' {
		if bytes.HasPrefix(bytes.TrimLeft(trimmed[1:], " \t\r\n"), []byte(`"log"`)) {
			return FormatHAR
		}
		first := trimmed
		if i := bytes.IndexByte(first, '\n'); i >= 0 {
			first = first[:i]
		}
		if bytes.HasSuffix(bytes.TrimRight(first, " \t\r"), []byte("}")) {
			return FormatJSONL
		}
		return FormatHAR
	}
	line := head
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	if _, ok := parseGorHeader(string(bytes.TrimRight(line, "\r"))); ok {
		return FormatGoReplay
	}
	return FormatNginx
}

// DefaultMaxRecord is the default bound on one record's size in bytes: a log
// line, a JSONL line or a GoReplay payload. Longer records are skipped as
// malformed, so memory stays bounded whatever the input holds.
const DefaultMaxRecord = 16 << 20

// Option tunes a reader.
type Option func(*options)

type options struct {
	maxRecord int
	logFormat string
	cut       *cutStream // the decompressed input, when it is gzip
}

// WithMaxRecord bounds one record's size in bytes (DefaultMaxRecord); n ≤ 0
// keeps the default.
func WithMaxRecord(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxRecord = n
		}
	}
}

// WithLogFormat makes FormatNginx read lines written by this nginx
// log_format instead of the combined format (see CompileLogFormat).
func WithLogFormat(format string) Option { return func(o *options) { o.logFormat = format } }

func buildOptions(opts []Option) options {
	o := options{maxRecord: DefaultMaxRecord}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// NewReader returns a reader of format f over r; name is the file name
// records' Source and problems give. An empty f is detected from the first
// bytes (Detect). Gzip-compressed input is decompressed. An invalid
// WithLogFormat is a *scenarios.Error.
func NewReader(r io.Reader, name string, f Format, opts ...Option) (Reader, error) {
	o := buildOptions(opts)
	br := bufio.NewReaderSize(r, 64<<10)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		o.cut = &cutStream{r: zr}
		br = bufio.NewReaderSize(o.cut, 64<<10)
	}
	skipBOM(br)
	if f == "" {
		head, err := br.Peek(8 << 10)
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		f = Detect(head)
	}
	rd, err := newFormatReader(br, name, f, o)
	if err != nil || o.cut == nil {
		return rd, err
	}
	return &cutReader{Reader: rd, cut: o.cut, name: name}, nil
}

func newFormatReader(br *bufio.Reader, name string, f Format, o options) (Reader, error) {
	switch f {
	case FormatNginx:
		lf := combined
		if o.logFormat != "" {
			var err error
			if lf, err = CompileLogFormat(o.logFormat); err != nil {
				return nil, err
			}
		}
		return newLogReader(br, name, lf, o), nil
	case FormatHAR:
		return newHARReader(br, name), nil
	case FormatGoReplay:
		return newGoReplayReader(br, name, o), nil
	case FormatJSONL:
		return newJSONLReader(br, name, o), nil
	}
	return nil, &scenarios.Error{Path: "format", Msg: fmt.Sprintf("unknown format %q; expected one of: nginx, har, goreplay, jsonl", f)}
}

// Open opens the file at path and returns a reader of format f over it (see
// NewReader); closing the reader closes the file.
func Open(path string, f Format, opts ...Option) (ReadCloser, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read capture: %w", err)
	}
	r, err := NewReader(file, path, f, opts...)
	if err != nil {
		file.Close()
		return nil, err
	}
	return fileReader{r, file}, nil
}

type fileReader struct {
	Reader
	io.Closer
}

// skipBOM drops a UTF-8 byte order mark, which some tools put at the start
// of HAR and log files.
func skipBOM(br *bufio.Reader) {
	if b, _ := br.Peek(3); len(b) == 3 && b[0] == 0xef && b[1] == 0xbb && b[2] == 0xbf {
		br.Discard(3)
	}
}

// cutStream is the decompressed data of a gzip stream that ends where the
// stream breaks (a truncated file, corrupt data, a wrong checksum) as if
// it ended there, remembering why and where: the records before the break
// are read as from a whole file, and the reader reports the cut.
type cutStream struct {
	r     io.Reader
	off   int64 // bytes read
	lines int   // complete lines in them
	err   error // why the stream broke; nil while it has not
}

func (c *cutStream) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, io.EOF
	}
	n, err := c.r.Read(p)
	c.off += int64(n)
	c.lines += bytes.Count(p[:n], []byte("\n"))
	if err != nil && !errors.Is(err, io.EOF) {
		c.err = err
		return n, io.EOF
	}
	return n, err
}

// broken reports whether the stream broke (nil c: a whole file).
func (c *cutStream) broken() bool { return c != nil && c.err != nil }

// cutReader adds the cut of its gzip stream to a reader's problems once
// the reader has returned the records before it.
type cutReader struct {
	Reader
	cut   *cutStream
	name  string
	n     int64 // records returned
	ended bool
}

func (r *cutReader) Next() (Record, error) {
	rec, err := r.Reader.Next()
	if err == nil {
		r.n++
	}
	if errors.Is(err, io.EOF) {
		r.ended = true
	}
	return rec, err
}

func (r *cutReader) Malformed() Malformed {
	m := r.Reader.Malformed()
	if !r.ended || !r.cut.broken() {
		return m
	}
	p := Problem{Source: Source{File: r.name, Line: r.cut.lines + 1}, Cut: true,
		Reason: fmt.Sprintf("the gzip stream breaks at byte %d of its data (%v); the %d records before it are kept", r.cut.off, r.cut.err, r.n)}
	// The cut is listed even when the list is full: it says where the
	// recording ends.
	m.Count++
	if len(m.First) == MaxProblems {
		m.First[MaxProblems-1] = p
	} else {
		m.First = append(m.First, p)
	}
	return m
}

// lineReader reads lines of bounded length and counts them. A last line
// cut short by a broken gzip stream (cut) is dropped: it is not whole.
type lineReader struct {
	br   *bufio.Reader
	n    int // the number of the line last returned, 1-based
	max  int
	long []byte // a line longer than br's buffer, assembled
	cut  *cutStream
}

// next returns the next line with its "\n" (none on a last line without
// one). The slice is valid until the next call. A line longer than max is
// consumed and reported with tooLong; its number is l.n.
func (l *lineReader) next() (line []byte, tooLong bool, err error) {
	b, err := l.br.ReadSlice('\n')
	if err == nil {
		l.n++
		return b, false, nil
	}
	if errors.Is(err, io.EOF) {
		if len(b) == 0 || l.cut.broken() {
			return nil, false, io.EOF
		}
		l.n++
		return b, false, nil
	}
	if !errors.Is(err, bufio.ErrBufferFull) {
		return nil, false, err
	}
	l.n++
	l.long = append(l.long[:0], b...)
	for {
		b, err = l.br.ReadSlice('\n')
		if !tooLong && len(l.long)+len(b) > l.max {
			tooLong = true
			l.long = l.long[:0]
		}
		if !tooLong {
			l.long = append(l.long, b...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, false, err
		}
		if err != nil && l.cut.broken() {
			return nil, false, io.EOF
		}
		break
	}
	if tooLong {
		return nil, true, nil
	}
	if cap(l.long) > 4*l.br.Size() && cap(l.long) > 1<<20 {
		// Give a huge line's buffer back after use; keep small ones.
		line, l.long = l.long, nil
		return line, false, nil
	}
	return l.long, false, nil
}

// trimEOL removes a trailing "\n" or "\r\n".
func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

func blank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

func readErr(name string, err error) error { return fmt.Errorf("read capture %s: %w", name, err) }
