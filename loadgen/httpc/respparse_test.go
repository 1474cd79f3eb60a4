package httpc

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// responses are the parsers' shared corpus: well-formed responses in every
// framing, and the malformed ones each check refuses.
var responses = []struct{ method, raw string }{
	{"GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"},
	{"GET", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
	{"GET", "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nX-A: b\r\n\r\nnot found"},
	{"GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n10;ext=1\r\n0123456789abcdef\r\n0\r\nX-Trailer: t\r\n\r\n"},
	{"GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n1\r\na\r\n0\r\n\r\n"},
	{"GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n1\r\na\r\n0\r\n\r\n"},
	{"GET", "HTTP/1.1 200 OK\r\n\r\nbody until the connection closes"},
	{"GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nto the end"},
	{"GET", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"},
	{"GET", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"},
	{"GET", "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok"},
	{"GET", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx"},
	{"GET", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"},
	{"HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"},
	{"GET", "HTTP/1.1 204 No Content\r\n\r\n"},
	{"GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n"},
	{"GET", "HTTP/1.1 200 OK\r\nX-Folded: a\r\n  b\r\nContent-Length: 1\r\n\r\nz"},
	{"GET", "HTTP/1.1 200 OK\nContent-Length: 1\n\nz"},
	{"GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA"},
	{"GET", "HTTP/1.1 200 OK\r\nX-Long: " + strings.Repeat("v", 3*readBufSize) + "\r\nContent-Length: 1\r\n\r\nz"},
	{"GET", "HTTP/1.1 200 OK\r\nContent-Length: " + strings.Repeat("1", readBufSize) + "\r\n\r\n"},
	{"GET", "HTTP/1.1 200 " + strings.Repeat("A", readBufSize) + "\r\n\r\n"},
	{"GET", "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-H: "+strings.Repeat("h", 1000)+"\r\n", maxHeaderBytes/1000) + "\r\n"},
	{"GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + strings.Repeat("0", readBufSize) + "1\r\na\r\n0\r\n\r\n"},
	{"GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-T: " + strings.Repeat("t", 2*readBufSize) + "\r\n\r\n"},
	{"GET", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"},
	{"GET", "HTTP/1.1 200 OK\r\nContent-Len"},
	{"GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc"},
	{"GET", ""},
	{"GET", "HTTP/1.1 100 Continue\r\n\r\n"},
	{"GET", "SSH-2.0-OpenSSH_9.6\r\n\r\n"},
	{"GET", "HTTP/2 200\r\n\r\n"},
	{"GET", "HTTP/2.0 200 OK\r\n\r\n"},
	{"GET", "HTTP/1.1 2x0 OK\r\n\r\n"},
	{"GET", "HTTP/1.1 200 OK\r\nnonsense\r\n\r\n"},
	{"GET", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"},
	{"GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc"},
	{"GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"},
	{"GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX0\r\n\r\n"},
}

// parsed is what a parser made of a response.
type parsed struct {
	status   int
	keep     bool
	consumed int64
	err      string
}

// blockingParse runs readResponse over raw, as if the server then closed.
func blockingParse(method string, raw []byte) parsed {
	c := &h1Client{br: bufio.NewReaderSize(bytes.NewReader(raw), readBufSize)}
	var res Result
	status, keep, err := c.readResponse(method, &res)
	if err != nil {
		// How much of a failed response was counted differs with how it
		// arrived; the error does not.
		return parsed{err: errString(err)}
	}
	return parsed{status, keep, res.BytesReceived, ""}
}

// pushParse feeds raw to a respParser in pieces of the given sizes (the
// last size repeating), then the end of the stream.
func pushParse(method string, raw []byte, sizes ...int) parsed {
	var p respParser
	p.reset(method)
	rest, i := raw, 0
	for len(rest) > 0 && !p.done {
		n := min(sizes[min(i, len(sizes)-1)], len(rest))
		i++
		k, err := p.feed(rest[:n])
		if err != nil {
			return parsed{err: errString(err)}
		}
		rest = rest[n:]
		if p.done && (k < n || len(rest) > 0) {
			p.keep = false // bytes after the response are here: as both clients do
		}
	}
	if !p.done {
		if err := p.eof(); err != nil {
			return parsed{err: errString(err)}
		}
	}
	return parsed{p.h.status, p.keep, p.received, ""}
}

func errString(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected EOF"
	case errors.Is(err, io.EOF):
		return "EOF"
	}
	return err.Error()
}

// The Poller's parser, fed the bytes as they come in any pieces, makes of
// a response what the blocking client makes of it: status, reuse and
// size, or the same error.
func TestRespParserMatchesReadResponse(t *testing.T) {
	splits := [][]int{{1 << 20}, {1}, {7}, {readBufSize}, {3, 1000, 5}, {readBufSize - 1, 2}}
	for _, r := range responses {
		name := r.method + " " + r.raw
		if len(name) > 60 {
			name = name[:60]
		}
		want := blockingParse(r.method, []byte(r.raw))
		for _, sizes := range splits {
			if got := pushParse(r.method, []byte(r.raw), sizes...); got != want {
				t.Errorf("%q in pieces of %v:\n got %+v\nwant %+v", name, sizes, got, want)
			}
		}
	}
}

func FuzzRespParser(f *testing.F) {
	for _, r := range responses {
		if len(r.raw) < 4096 {
			f.Add(r.method == "HEAD", []byte(r.raw), uint8(5))
		}
	}
	f.Fuzz(func(t *testing.T, head bool, raw []byte, piece uint8) {
		method := "GET"
		if head {
			method = "HEAD"
		}
		want := blockingParse(method, raw)
		if got := pushParse(method, raw, int(piece)+1); got != want {
			t.Errorf("pieces of %d: got %+v, want %+v", int(piece)+1, got, want)
		}
	})
}

// Sanity of the corpus: it holds each framing and each error.
func TestResponsesCoverTheParser(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range responses {
		seen[blockingParse(r.method, []byte(r.raw)).err] = true
	}
	for _, e := range []error{errStatusLine, errVersion, errHeaderLine, errHeaderTooLong, errContentLength, errChunkSize, errChunkEnd} {
		if !seen[e.Error()] {
			t.Errorf("no response in the corpus fails with %v", e)
		}
	}
	for _, e := range []string{"", "EOF", "unexpected EOF"} {
		if !seen[e] {
			t.Errorf("no response in the corpus ends with %q", e)
		}
	}
}
