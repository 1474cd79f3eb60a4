package httpc

import (
	"bytes"
	"io"
)

// respParser reads one HTTP/1.1 response from bytes pushed to it as they
// arrive (the Poller's connections), with the rules of the blocking
// parser (readResponse): the same head semantics (respHead), limits and
// errors. The body is counted and discarded.
type respParser struct {
	method   string
	state    parseState
	h        respHead
	keep     bool
	done     bool
	remain   int64  // body or chunk bytes still to come
	head     int64  // bytes of the current head (or trailer) so far
	line     []byte // a line split across reads, up to readBufSize
	skipping bool   // discarding the rest of an over-long line
	received int64  // bytes consumed: the response's size so far
}

type parseState uint8

const (
	stStatus parseState = iota
	stHeader
	stLength    // bodyLength: remain bytes
	stToEOF     // bodyToEOF
	stChunkSize // a chunk-size line
	stChunkData // remain bytes of chunk data
	stChunkEnd  // the CRLF after chunk data
	stTrailer   // trailer fields up to the empty line
)

// reset readies p for the response to a request with method.
func (p *respParser) reset(method string) {
	*p = respParser{method: method, line: p.line[:0]}
}

// feed consumes the response's bytes from b and returns how many were
// its; p.done reports the response complete (bytes after n are not its).
func (p *respParser) feed(b []byte) (n int, err error) {
	for n < len(b) && !p.done && err == nil {
		switch p.state {
		case stLength, stChunkData:
			k := int(min(int64(len(b)-n), p.remain))
			n += k
			p.remain -= int64(k)
			if p.remain == 0 {
				if p.state == stLength {
					p.done = true
				} else {
					p.state = stChunkEnd
				}
			}
		case stToEOF:
			n = len(b)
		default:
			var k int
			k, err = p.lineOf(b[n:])
			n += k
		}
	}
	p.received += int64(n)
	return n, err
}

// lineOf consumes up to the end of a line from b, handling the line once
// it is whole.
func (p *respParser) lineOf(b []byte) (int, error) {
	i := bytes.IndexByte(b, '\n')
	k := i + 1
	if i < 0 {
		k = len(b)
	}
	if p.state == stStatus || p.state == stHeader || p.state == stTrailer {
		p.head += int64(k)
	}
	if p.skipping {
		if i >= 0 {
			p.skipping = false
		}
		return k, p.headLimit()
	}
	var line []byte
	switch {
	case len(p.line)+k > readBufSize:
		// Longer than the blocking parser's buffer: the same verdicts.
		return k, p.overLong(append(p.line, b[:min(k, readBufSize-len(p.line))]...), i >= 0)
	case i >= 0 && len(p.line) == 0:
		line = b[:k] // the usual case: the whole line in one read
	default:
		p.line = append(p.line, b[:k]...)
		if i < 0 {
			return k, p.headLimit()
		}
		line = p.line
	}
	err := p.handle(line)
	p.line = p.line[:0]
	if err == nil {
		err = p.headLimit()
	}
	return k, err
}

// headLimit fails a head or trailer past maxHeaderBytes.
func (p *respParser) headLimit() error {
	if p.head > maxHeaderBytes {
		return errHeaderTooLong
	}
	return nil
}

// overLong handles a line longer than readBufSize, of which prefix is the
// start; ended reports that its end is in the bytes consumed.
func (p *respParser) overLong(prefix []byte, ended bool) error {
	p.line = p.line[:0]
	switch p.state {
	case stStatus:
		return errStatusLine
	case stChunkSize:
		return errChunkSize
	case stChunkEnd:
		return errChunkEnd
	case stHeader:
		if name, _, _ := bytes.Cut(prefix, []byte(":")); interesting(name) {
			return errHeaderTooLong
		}
	}
	p.skipping = !ended
	return p.headLimit()
}

// handle acts on one whole line (with its line ending).
func (p *respParser) handle(line []byte) error {
	switch p.state {
	case stStatus:
		if err := p.h.statusLine(line); err != nil {
			return err
		}
		p.state = stHeader
	case stHeader:
		end, err := p.h.headerLine(line)
		if err != nil || !end {
			return err
		}
		p.head = 0
		if !p.h.final() {
			p.state = stStatus
			return nil
		}
		var body framing
		body, p.keep = p.h.framing(p.method)
		switch body {
		case bodyNone:
			p.done = true
		case bodyChunked:
			p.state = stChunkSize
		case bodyLength:
			p.state, p.remain = stLength, p.h.cl
			p.done = p.remain == 0
		case bodyToEOF:
			p.state = stToEOF
		}
	case stChunkSize:
		size, ok := parseChunkSize(line)
		if !ok {
			return errChunkSize
		}
		if size == 0 {
			p.state = stTrailer
		} else {
			p.state, p.remain = stChunkData, size
		}
	case stChunkEnd:
		if len(trimEOL(line)) != 0 {
			return errChunkEnd
		}
		p.state = stChunkSize
	case stTrailer:
		if len(trimEOL(line)) == 0 {
			p.done = true
		}
	}
	return nil
}

// eof is the connection's end before the response completed: the end of
// a body delimited by it, or the error the blocking parser reports.
func (p *respParser) eof() error {
	if p.state == stToEOF {
		p.done, p.keep = true, false
		return nil
	}
	if p.state == stStatus && p.received == 0 {
		return io.EOF
	}
	return io.ErrUnexpectedEOF
}
