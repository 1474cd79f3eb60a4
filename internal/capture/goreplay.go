package capture

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// gorSeparator is the line between GoReplay records.
const gorSeparator = "🐵🙈🙉"

// DefaultGoReplayLookahead is how many requests a GoReplayReader holds back
// while it waits for their responses (to fill Record.Status).
const DefaultGoReplayLookahead = 64

// GoReplayReader reads GoReplay's .gor files: records separated by the line
// 🐵🙈🙉, each a header line "<type> <id> <unix-nanoseconds> ..." and a raw
// HTTP/1.x payload. Type 1 (a request) makes a record; a type 2 (the original
// response) that follows within DefaultGoReplayLookahead requests fills the
// request's Status; type 3 (a replayed response) is ignored. Chunked request
// bodies are decoded.
type GoReplayReader struct {
	name      string
	lr        lineReader
	payload   []byte
	pending   []gorPending // requests not yet returned, in file order
	head      int          // pending[:head] are returned
	lookahead int
	eof       bool
	mal       Malformed
}

type gorPending struct {
	rec      Record
	id       string
	answered bool
}

var _ Reader = (*GoReplayReader)(nil)

// NewGoReplayReader reads a .gor file from r; name is the file name sources
// give.
func NewGoReplayReader(r io.Reader, name string, opts ...Option) *GoReplayReader {
	return newGoReplayReader(bufio.NewReaderSize(r, 64<<10), name, buildOptions(opts))
}

func newGoReplayReader(br *bufio.Reader, name string, o options) *GoReplayReader {
	skipBOM(br)
	return &GoReplayReader{name: name, lr: lineReader{br: br, max: o.maxRecord, cut: o.cut}, lookahead: DefaultGoReplayLookahead}
}

// Next returns the next request.
func (g *GoReplayReader) Next() (Record, error) {
	for {
		if g.head < len(g.pending) {
			p := &g.pending[g.head]
			if p.answered || g.eof || len(g.pending)-g.head > g.lookahead {
				rec := p.rec
				*p = gorPending{}
				g.head++
				if g.head >= len(g.pending)/2 {
					n := copy(g.pending, g.pending[g.head:])
					g.pending, g.head = g.pending[:n], 0
				}
				return rec, nil
			}
		}
		if g.eof {
			return Record{}, io.EOF
		}
		if err := g.read(); err == io.EOF {
			g.eof = true
		} else if err != nil {
			return Record{}, readErr(g.name, err)
		}
	}
}

// Malformed reports the records skipped so far.
func (g *GoReplayReader) Malformed() Malformed { return g.mal.clone() }

type gorHeader struct {
	typ byte // '1' request, '2' response, '3' replayed response
	id  string
	ts  int64 // unix nanoseconds
}

func parseGorHeader(line string) (gorHeader, bool) {
	var h gorHeader
	typ, rest, ok := strings.Cut(line, " ")
	if !ok || len(typ) != 1 || typ[0] < '1' || typ[0] > '3' {
		return h, false
	}
	id, rest, ok := strings.Cut(rest, " ")
	if !ok || id == "" {
		return h, false
	}
	for i := 0; i < len(id); i++ {
		if unhex(id[i]) < 0 {
			return h, false
		}
	}
	ts, _, _ := strings.Cut(rest, " ")
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || n <= 0 {
		return h, false
	}
	return gorHeader{typ: typ[0], id: id, ts: n}, true
}

// read reads one record and queues it (a request), applies it (a response)
// or counts it as malformed.
func (g *GoReplayReader) read() error {
	var (
		hdr    gorHeader
		line   int
		reason string
	)
	for {
		b, tooLong, err := g.lr.next()
		if err != nil {
			return err
		}
		if tooLong {
			line, reason = g.lr.n, fmt.Sprintf("header line longer than %d bytes", g.lr.max)
			break
		}
		s := trimEOL(b)
		if blank(s) || string(s) == gorSeparator {
			continue
		}
		line = g.lr.n
		var ok bool
		if hdr, ok = parseGorHeader(string(s)); !ok {
			reason = fmt.Sprintf(`%s is not a GoReplay header line "<type> <id> <unix-nanoseconds>"`, quoteShort(string(s)))
		}
		break
	}
	// The payload runs to the separator line (or the end of the file).
	g.payload = g.payload[:0]
	over, cut := false, false
	for {
		b, tooLong, err := g.lr.next()
		if err == io.EOF {
			// The end of the file ends a payload, not a broken stream.
			cut = g.lr.cut.broken()
			break
		}
		if err != nil {
			return err
		}
		if !tooLong && string(trimEOL(b)) == gorSeparator {
			break
		}
		if tooLong || len(g.payload)+len(b) > g.lr.max {
			over = true
		}
		if !over {
			g.payload = append(g.payload, b...)
		}
	}
	src := Source{File: g.name, Line: line}
	if reason == "" && over {
		reason = fmt.Sprintf("record longer than %d bytes", g.lr.max)
	}
	if cut && reason == "" {
		g.mal.add(src, "the record is cut short where the gzip stream breaks")
		return io.EOF
	}
	if reason != "" {
		g.mal.add(src, "%s", reason)
		return nil
	}
	// GoReplay ends every payload with a newline of its own.
	payload := g.payload
	if n := len(payload); n > 0 && payload[n-1] == '\n' {
		payload = payload[:n-1]
	}
	switch hdr.typ {
	case '1':
		rec, reason := parseHTTPRequest(payload)
		if reason == "" {
			rec.Time = time.Unix(0, hdr.ts).UTC()
			if err := rec.Validate(); err != nil {
				reason = err.Error()
			}
		}
		if reason != "" {
			g.mal.add(src, "%s", reason)
			return nil
		}
		rec.Source = src
		g.pending = append(g.pending, gorPending{rec: rec, id: hdr.id})
	case '2':
		status, ok := responseStatus(payload)
		if !ok {
			return nil // a response we cannot read costs the request its status only
		}
		for i := len(g.pending) - 1; i >= g.head; i-- {
			if p := &g.pending[i]; p.id == hdr.id && !p.answered {
				p.rec.Status, p.answered = status, true
				break
			}
		}
	}
	return nil
}

// responseStatus reads the code of "HTTP/1.1 200 OK".
func responseStatus(p []byte) (int, bool) {
	line := p
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	f := strings.Fields(string(line))
	if len(f) < 2 || !strings.HasPrefix(f[0], "HTTP/") || len(f[1]) != 3 {
		return 0, false
	}
	n, err := strconv.Atoi(f[1])
	return n, err == nil && n >= 100
}

// parseHTTPRequest reads a raw HTTP/1.x request: the request line, the
// header lines up to an empty line, and a body framed by Content-Length or
// chunked transfer coding.
func parseHTTPRequest(p []byte) (Record, string) {
	var rec Record
	headEnd, bodyStart := len(p), len(p)
	if i := bytes.Index(p, []byte("\n\r\n")); i >= 0 {
		headEnd, bodyStart = i, i+3
	}
	if i := bytes.Index(p[:headEnd], []byte("\n\n")); i >= 0 {
		headEnd, bodyStart = i, i+2
	}
	head := string(p[:headEnd])
	reqLine, rest, _ := strings.Cut(head, "\n")
	reqLine = strings.TrimSuffix(reqLine, "\r")
	method, rl, ok1 := strings.Cut(reqLine, " ")
	target, proto, ok2 := strings.Cut(rl, " ")
	if !ok1 || !ok2 || !strings.HasPrefix(proto, "HTTP/1.") {
		return rec, fmt.Sprintf(`request line %s is not "METHOD target HTTP/1.x"`, quoteShort(reqLine))
	}
	if !isToken(method) {
		return rec, fmt.Sprintf("method %s is not a token", quoteShort(method))
	}
	rec.Method = method
	if target == "" || target[0] != '/' {
		scheme, host, t, ok := splitURL(target)
		if !ok {
			return rec, fmt.Sprintf("request target %s is neither a path nor an http(s) URL", quoteShort(target))
		}
		rec.Scheme, rec.Host, target = scheme, host, t
	}
	rec.Path = normalizePath(target)

	contentLength, chunked := int64(-1), false
	for n := 2; rest != ""; n++ {
		var line string
		line, rest, _ = strings.Cut(rest, "\n")
		line = strings.TrimSuffix(line, "\r")
		if line == "" {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			return rec, fmt.Sprintf("payload line %d continues a header (obsolete line folding)", n)
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || !isToken(name) {
			return rec, fmt.Sprintf("payload line %d: %s is not a header", n, quoteShort(line))
		}
		value = strings.Trim(value, " \t")
		switch {
		case strings.EqualFold(name, "Host"):
			if rec.Host == "" {
				rec.Host = value
			}
		case strings.EqualFold(name, "Content-Length"):
			cl, err := strconv.ParseInt(value, 10, 64)
			if err != nil || cl < 0 {
				return rec, fmt.Sprintf("Content-Length %s is not a byte count", quoteShort(value))
			}
			contentLength = cl
		case strings.EqualFold(name, "Transfer-Encoding"):
			chunked = strings.EqualFold(strings.TrimSpace(value[strings.LastIndexByte(value, ',')+1:]), "chunked")
		}
		if dropped(name) {
			continue
		}
		if rec.Header == nil {
			rec.Header = make([]Header, 0, strings.Count(rest, "\n")+1)
		}
		rec.Header = append(rec.Header, Header{Name: name, Value: sanitizeValue(value)})
	}

	body := p[bodyStart:]
	switch {
	case chunked:
		b, ok := dechunk(body)
		if !ok {
			return rec, "the chunked body is broken or cut short"
		}
		body = b
	case contentLength >= 0:
		if int64(len(body)) < contentLength {
			return rec, fmt.Sprintf("the body holds %d of its %d bytes (Content-Length)", len(body), contentLength)
		}
		body = body[:contentLength]
	default:
		body = nil // without framing a request has no body (RFC 9112, 6.3)
	}
	if len(body) > 0 {
		rec.Body = bytes.Clone(body)
	}
	return rec, ""
}

// dechunk decodes a chunked body; trailers are dropped.
func dechunk(b []byte) ([]byte, bool) {
	var out []byte
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return nil, false
		}
		size := string(bytes.TrimRight(b[:i], "\r"))
		if j := strings.IndexByte(size, ';'); j >= 0 {
			size = size[:j]
		}
		n, err := strconv.ParseUint(strings.TrimSpace(size), 16, 63)
		if err != nil {
			return nil, false
		}
		b = b[i+1:]
		if n == 0 {
			if out == nil {
				out = []byte{}
			}
			return out, true
		}
		if n > uint64(len(b)) {
			return nil, false
		}
		out = append(out, b[:n]...)
		b = b[n:]
		switch {
		case bytes.HasPrefix(b, []byte("\r\n")):
			b = b[2:]
		case bytes.HasPrefix(b, []byte("\n")):
			b = b[1:]
		default:
			return nil, false
		}
	}
}
