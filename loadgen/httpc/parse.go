package httpc

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math"
)

// readResponse reads one response from c.br: interim 1xx responses are
// skipped, the body is discarded. Every byte consumed is added to
// res.BytesReceived. keep reports whether the connection may carry
// another request.
func (c *h1Client) readResponse(method string, res *Result) (status int, keep bool, err error) {
	var (
		h    respHead
		head int64 // bytes of the response head so far
	)
	for {
		line, err := c.br.ReadSlice('\n')
		res.BytesReceived += int64(len(line))
		head += int64(len(line))
		if err != nil {
			if err == bufio.ErrBufferFull {
				return 0, false, errStatusLine
			}
			return 0, false, eofUnexpected(err, res.BytesReceived)
		}
		if err := h.statusLine(line); err != nil {
			return 0, false, err
		}
		for {
			line, err := c.br.ReadSlice('\n')
			res.BytesReceived += int64(len(line))
			head += int64(len(line))
			if err == bufio.ErrBufferFull {
				// A header line longer than the buffer: fine unless it is
				// one we need to read.
				if name, _, _ := bytes.Cut(line, []byte(":")); interesting(name) {
					return 0, false, errHeaderTooLong
				}
				if err = c.skipLine(res, &head); err != nil {
					return 0, false, err
				}
				if head > maxHeaderBytes {
					return 0, false, errHeaderTooLong
				}
				continue
			}
			if err != nil {
				return 0, false, eofUnexpected(err, 1)
			}
			if head > maxHeaderBytes {
				return 0, false, errHeaderTooLong
			}
			end, err := h.headerLine(line)
			if err != nil {
				return 0, false, err
			}
			if end {
				break
			}
		}
		if h.final() {
			break
		}
	}

	var body framing
	body, keep = h.framing(method)
	switch body {
	case bodyChunked:
		err = c.readChunked(res)
	case bodyLength:
		err = c.discard(h.cl, res)
	case bodyToEOF:
		err = c.discardToEOF(res)
	}
	if err != nil {
		return 0, false, err
	}
	if keep && c.br.Buffered() > 0 {
		keep = false // bytes we did not ask for: do not trust this connection
	}
	return h.status, keep, nil
}

// respHead is what a response head says about its body's framing and the
// connection's reuse; both HTTP/1.1 parsers (readResponse and the
// Poller's respParser) feed it their lines.
type respHead struct {
	status    int
	minor     byte
	cl        int64 // -1: no Content-Length
	te        bool  // Transfer-Encoding present
	chunked   bool  // ... and chunked is the final coding
	connClose bool
	connKA    bool
}

// statusLine starts a head (an interim response's head resets it).
func (h *respHead) statusLine(line []byte) error {
	status, minor, err := parseStatusLine(line)
	if err != nil {
		return err
	}
	*h = respHead{status: status, minor: minor, cl: -1}
	return nil
}

// headerLine reads one header line; end reports the empty line that ends
// the head.
func (h *respHead) headerLine(line []byte) (end bool, err error) {
	line = trimEOL(line)
	if len(line) == 0 {
		return true, nil
	}
	if line[0] == ' ' || line[0] == '\t' {
		return false, nil // obsolete line folding: ignored
	}
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return false, errHeaderLine
	}
	name, value := line[:colon], trimOWS(line[colon+1:])
	switch len(name) {
	case 14:
		if equalFold(name, "content-length") {
			n, ok := parseContentLength(value)
			if !ok || (h.cl >= 0 && n != h.cl) {
				return false, errContentLength
			}
			h.cl = n
		}
	case 17:
		if equalFold(name, "transfer-encoding") {
			h.te = true
			h.chunked = lastTokenIs(value, "chunked")
		}
	case 10:
		if equalFold(name, "connection") {
			forEachToken(value, func(tok []byte) {
				switch {
				case equalFold(tok, "close"):
					h.connClose = true
				case equalFold(tok, "keep-alive"):
					h.connKA = true
				}
			})
		}
	}
	return false, nil
}

// final reports a head that is the response's own: interim responses
// (100 Continue, 103 Early Hints...) precede it; 101 Switching Protocols
// ends HTTP on this connection.
func (h *respHead) final() bool { return h.status >= 200 || h.status == 101 }

// framing is how a response's body is delimited.
type framing uint8

const (
	bodyNone framing = iota
	bodyChunked
	bodyLength // respHead.cl bytes
	bodyToEOF  // until the connection closes
)

// framing tells how the body of a final head is delimited, and whether
// the connection may carry another request after it.
func (h *respHead) framing(method string) (body framing, keep bool) {
	if h.minor == 0 {
		keep = h.connKA && !h.connClose
	} else {
		keep = !h.connClose
	}
	switch {
	case method == "HEAD" || h.status == 204 || h.status == 304 || h.status < 200:
		if h.status == 101 {
			keep = false
		}
		return bodyNone, keep
	case h.te:
		if h.cl >= 0 {
			keep = false // both framings: never reuse (request smuggling defence)
		}
		if h.chunked {
			return bodyChunked, keep
		}
		return bodyToEOF, false
	case h.cl >= 0:
		return bodyLength, keep
	}
	return bodyToEOF, false
}

// eofUnexpected turns io.EOF into io.ErrUnexpectedEOF once n bytes of the
// response have arrived: the response was cut short.
func eofUnexpected(err error, n int64) error {
	if err == io.EOF && n > 0 {
		return io.ErrUnexpectedEOF
	}
	return err
}

// parseStatusLine parses "HTTP/1.x NNN reason\r\n".
func parseStatusLine(line []byte) (status int, minor byte, err error) {
	line = trimEOL(line)
	if len(line) < 12 || string(line[:5]) != "HTTP/" {
		return 0, 0, errStatusLine
	}
	if line[5] != '1' || line[6] != '.' || line[7] < '0' || line[7] > '9' {
		return 0, 0, errVersion
	}
	minor = line[7] - '0'
	if line[8] != ' ' || (len(line) > 12 && line[12] != ' ') {
		return 0, 0, errStatusLine
	}
	for _, d := range line[9:12] {
		if d < '0' || d > '9' {
			return 0, 0, errStatusLine
		}
		status = status*10 + int(d-'0')
	}
	if status < 100 {
		return 0, 0, errStatusLine
	}
	return status, minor, nil
}

// interesting reports whether a header name is one the parser acts on.
func interesting(name []byte) bool {
	name = trimOWS(name)
	return equalFold(name, "content-length") || equalFold(name, "transfer-encoding") ||
		equalFold(name, "connection")
}

// skipLine consumes the rest of an over-long line.
func (c *h1Client) skipLine(res *Result, head *int64) error {
	for {
		line, err := c.br.ReadSlice('\n')
		res.BytesReceived += int64(len(line))
		*head += int64(len(line))
		switch {
		case err == nil:
			return nil
		case err != bufio.ErrBufferFull:
			return eofUnexpected(err, 1)
		case *head > maxHeaderBytes:
			return errHeaderTooLong
		}
	}
}

// parseContentLength accepts 1 to 18 decimal digits.
func parseContentLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, d := range b {
		if d < '0' || d > '9' {
			return 0, false
		}
		n = n*10 + int64(d-'0')
	}
	return n, true
}

// readChunked discards a chunked body and its trailers.
func (c *h1Client) readChunked(res *Result) error {
	for {
		line, err := c.br.ReadSlice('\n')
		res.BytesReceived += int64(len(line))
		if err != nil {
			if err == bufio.ErrBufferFull {
				return errChunkSize
			}
			return eofUnexpected(err, 1)
		}
		size, ok := parseChunkSize(line)
		if !ok {
			return errChunkSize
		}
		if size == 0 {
			return c.readTrailers(res)
		}
		if err := c.discard(size, res); err != nil {
			return err
		}
		line, err = c.br.ReadSlice('\n')
		res.BytesReceived += int64(len(line))
		if err != nil {
			if err == bufio.ErrBufferFull {
				return errChunkEnd
			}
			return eofUnexpected(err, 1)
		}
		if len(trimEOL(line)) != 0 {
			return errChunkEnd
		}
	}
}

// readTrailers consumes trailer fields up to the final empty line.
func (c *h1Client) readTrailers(res *Result) error {
	var head int64
	for {
		line, err := c.br.ReadSlice('\n')
		res.BytesReceived += int64(len(line))
		head += int64(len(line))
		if err == bufio.ErrBufferFull {
			if err := c.skipLine(res, &head); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return eofUnexpected(err, 1)
		}
		if head > maxHeaderBytes {
			return errHeaderTooLong
		}
		if len(trimEOL(line)) == 0 {
			return nil
		}
	}
}

// parseChunkSize parses "HEX[;ext]\r\n".
func parseChunkSize(line []byte) (int64, bool) {
	line = trimEOL(line)
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	line = trimOWS(line)
	if len(line) == 0 || len(line) > 15 {
		return 0, false
	}
	var n int64
	for _, d := range line {
		switch {
		case '0' <= d && d <= '9':
			d -= '0'
		case 'a' <= d && d <= 'f':
			d -= 'a' - 10
		case 'A' <= d && d <= 'F':
			d -= 'A' - 10
		default:
			return 0, false
		}
		n = n<<4 | int64(d)
	}
	return n, true
}

// discard consumes exactly n body bytes. Large remainders are read
// straight from the connection into a pooled scratch buffer.
func (c *h1Client) discard(n int64, res *Result) error {
	var scratch *[]byte
	defer func() {
		if scratch != nil {
			scratchPool.Put(scratch)
		}
	}()
	for n > 0 {
		if b := c.br.Buffered(); b > 0 {
			k := int(min(int64(b), n))
			_, _ = c.br.Discard(k)
			n -= int64(k)
			res.BytesReceived += int64(k)
			continue
		}
		if n >= readBufSize {
			if scratch == nil {
				scratch = scratchPool.Get().(*[]byte)
			}
			// The bufio buffer is empty and the read is at least its size,
			// so Read goes to the connection directly.
			k, err := c.br.Read((*scratch)[:min(int64(len(*scratch)), n)])
			n -= int64(k)
			res.BytesReceived += int64(k)
			if err != nil {
				return eofUnexpected(err, 1)
			}
			continue
		}
		if _, err := c.br.Peek(1); err != nil {
			return eofUnexpected(err, 1)
		}
	}
	return nil
}

// discardToEOF consumes a body delimited by the connection closing.
func (c *h1Client) discardToEOF(res *Result) error {
	err := c.discard(math.MaxInt64, res)
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n > 1 && b[n-2] == '\r' {
			b = b[:n-2]
		}
	}
	return b
}

// trimOWS trims optional whitespace (space, tab) at both ends.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// forEachToken calls f with each trimmed, non-empty element of a
// comma-separated list.
func forEachToken(v []byte, f func([]byte)) {
	for len(v) > 0 {
		var tok []byte
		tok, v, _ = bytes.Cut(v, []byte(","))
		if tok = trimOWS(tok); len(tok) > 0 {
			f(tok)
		}
	}
}

// lastTokenIs reports whether the last element of a comma-separated list
// equals lower, ignoring case.
func lastTokenIs(v []byte, lower string) bool {
	if i := bytes.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return equalFold(trimOWS(v), lower)
}
