package httpc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/loadcap/loadcap/loadgen/internal/h2"
)

// h2Pool holds a Transport's HTTP/2 connections (loadgen/internal/h2, the
// transport gRPC calls use too): one per scheme and host, shared by every
// client, which multiplex their requests on it. A connection at the
// server's MAX_CONCURRENT_STREAMS makes further requests wait for a
// stream (the wait counts in their latency and timeout).
type h2Pool struct {
	t   *Transport
	tls *tls.Config // ALPN h2 is set per dial

	mu    sync.Mutex
	slots map[h2Key]*h2.Slot
}

type h2Key struct {
	https bool
	host  string
}

func newH2Pool(t *Transport, tlsConf *tls.Config) *h2Pool {
	return &h2Pool{t: t, tls: tlsConf, slots: map[h2Key]*h2.Slot{}}
}

// options is how to dial host.
func (p *h2Pool) options(https bool, host string) h2.Options {
	o := h2.Options{Addr: dialAddr(https, host), DialTimeout: p.t.dialTimeout}
	if https {
		o.TLS = p.tls
	}
	return o
}

// slot returns the connection slot of (https, host), made on first use.
func (p *h2Pool) slot(https bool, host string) *h2.Slot {
	k := h2Key{https, host}
	p.mu.Lock()
	defer p.mu.Unlock()
	sl := p.slots[k]
	if sl == nil {
		sl = h2.NewSlot(p.t.ctx, p.options(https, host), ErrClosed)
		p.slots[k] = sl
	}
	return sl
}

// close closes every connection; requests in flight fail with ErrClosed.
func (p *h2Pool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, sl := range p.slots {
		sl.Close(ErrClosed)
	}
}

// h2Client sends requests on the Transport's shared HTTP/2 connections.
// Its header block, stream and timer are reused: in steady state a
// request allocates nothing.
type h2Client struct {
	t      *Transport
	ctx    context.Context // canceled by abort
	cancel context.CancelFunc
	timer  *time.Timer // the request timeout

	s    h2.Stream
	resp h2Resp
	req  h2Req

	// The slot of the last request's scheme and host.
	https bool
	host  string
	slot  *h2.Slot
}

func newH2Client(t *Transport) *h2Client {
	c := &h2Client{t: t, timer: time.NewTimer(time.Hour)}
	c.timer.Stop()
	c.ctx, c.cancel = context.WithCancel(t.ctx)
	c.s.Recv = &c.resp
	c.s.Watch(c.ctx) // abort wakes a round trip in flight
	return c
}

func (c *h2Client) abort() { c.cancel() }

// Close implements Client.
func (c *h2Client) Close() {
	c.abort()
	c.t.forget(c)
}

// h2Resp sizes the response's header block as HTTP/1.1 header lines.
type h2Resp struct {
	hdrBytes int64     // "Name: value\r\n" of the final response's fields
	counting bool      // in a response (not trailer) header block
	x        *Exchange // a Poller's exchange whose stream this is
}

var _ h2.Receiver = (*h2Resp)(nil)

func (r *h2Resp) Field(f hpack.HeaderField) {
	switch {
	case f.Name == ":status": // a new response block (after 1xx ones)
		r.hdrBytes, r.counting = 0, true
	case len(f.Name) > 0 && f.Name[0] == ':':
	case r.counting:
		r.hdrBytes += int64(len(f.Name) + 2 + len(f.Value) + 2)
	}
}

func (r *h2Resp) EndHeaders(bool) bool {
	r.counting = false // a later block without :status is trailers
	return false
}

func (r *h2Resp) Data([]byte) {}

// Do implements Client. BytesSent and BytesReceived are the HTTP/1.1
// equivalent sizes (request line or status line, headers, body), not the
// compressed frames on the wire, which several clients share.
func (c *h2Client) Do(r *Request, res *Result) {
	*res = Result{}
	if c.ctx.Err() != nil {
		res.fail(ErrClosed)
		return
	}
	https, sent, err := c.req.prepare(c.t, r)
	if err != nil {
		res.fail(err)
		return
	}
	res.BytesSent = sent

	slot := c.slot
	if slot == nil || c.https != https || c.host != r.Host {
		slot = c.t.h2.slot(https, r.Host)
		c.slot, c.https, c.host = slot, https, r.Host
	}
	if !c.t.keepAlive {
		// One connection per request; canceling the slot's context also
		// closes a connection whose dial outlives the request.
		ctx, cancel := context.WithCancel(c.ctx)
		defer cancel()
		slot = h2.NewSlot(ctx, c.t.h2.options(https, r.Host), ErrClosed)
		defer slot.Close(ErrClosed)
	}
	// The whole request, a wait for a connection included, has the
	// transport's timeout from start (Request.Now, the intended send
	// time of a late request included). On the usual path (a usable
	// connection) it is carried by the stream's own timer: the round
	// trip then waits on the stream alone.
	start := r.start()
	refused := 0
	for attempt := 0; ; attempt++ {
		left := c.t.timeout - time.Since(start)
		conn := slot.Ready()
		if conn == nil {
			c.timer.Reset(max(c.t.timeout-time.Since(start), 0))
			var err error
			conn, err = slot.Conn(c.ctx, c.timer.C)
			c.timer.Stop()
			if err != nil {
				c.failed(res, err)
				return
			}
			left = c.t.timeout - time.Since(start)
		}
		if left <= 0 {
			c.failed(res, h2.ErrExpired)
			return
		}
		c.s.Reset()
		c.s.Timeout = left
		c.resp = h2Resp{}
		err := conn.RoundTrip(c.ctx, nil, &c.s, c.req.hdr, nil, r.Body)
		switch {
		case err == h2.ErrRetry && attempt < maxRefused:
			continue // nothing sent: on the next connection
		case err == nil && refused < maxRefused && c.s.Status == 0 &&
			(c.s.Refused || c.s.RST && c.s.RSTCode == http2.ErrCodeRefusedStream):
			// The server says it did not process the request: again, on a
			// new connection after a GOAWAY.
			refused++
			res.BytesSent += sent
			continue
		}
		res.Reused = c.s.Reused
		if err != nil {
			c.failed(res, err)
			return
		}
		c.result(res)
		return
	}
}

// maxRefused bounds the resends of a request the server refused
// unprocessed.
const maxRefused = 8

// h2Req renders requests' header blocks into reused buffers.
type h2Req struct {
	hdr   []byte // the request's header block
	lname []byte // a header name in lower case
	num   [20]byte
}

// prepare checks r and renders its header block into q.hdr. It returns
// whether r is https and its HTTP/1.1-equivalent size.
func (q *h2Req) prepare(t *Transport, r *Request) (https bool, sent int64, err error) {
	if https, err = r.secure(); err != nil {
		return false, 0, err
	}
	method := r.Method
	if method == "" {
		method = "GET"
	}
	if !validToken(method) {
		return false, 0, errBadMethod
	}
	if !validTarget(r.Target) {
		return false, 0, errBadTarget
	}
	sent, ok := q.encode(t, r, https, method)
	if !ok {
		return false, 0, errBadHeader
	}
	return https, sent, nil
}

// encode renders r's header block into q.hdr and returns the request's
// HTTP/1.1-equivalent size; false when a header is invalid.
func (q *h2Req) encode(t *Transport, r *Request, https bool, method string) (int64, bool) {
	authority := hostHeader(https, r.Host)
	var hostOverride []byte
	hdrSize, hasUA := 0, false
	for _, h := range r.Header {
		if !validToken(h.Name) || !validValue(h.Value) {
			return 0, false
		}
		switch {
		case equalFold(h.Name, "host"):
			hostOverride = h.Value
		case equalFold(h.Name, "content-length"), equalFold(h.Name, "transfer-encoding"):
		default:
			hasUA = hasUA || equalFold(h.Name, "user-agent")
			hdrSize += len(h.Name) + 2 + len(h.Value) + 2
		}
	}
	b := q.hdr[:0]
	switch method {
	case "GET":
		b = h2.AppendIndexed(b, h2.StaticMethodGET)
	case "POST":
		b = h2.AppendIndexed(b, h2.StaticMethodPOST)
	default:
		b = h2.AppendIndexedName(b, h2.StaticMethodGET, method)
	}
	if https {
		b = h2.AppendIndexed(b, h2.StaticSchemeHTTPS)
	} else {
		b = h2.AppendIndexed(b, h2.StaticSchemeHTTP)
	}
	target := len(r.Target)
	if target == 0 || string(r.Target) == "/" {
		b = h2.AppendIndexed(b, h2.StaticPath) // ":path: /"
		target = 1
	} else {
		b = h2.AppendIndexedName(b, h2.StaticPath, r.Target)
	}
	authLen := len(authority)
	if hostOverride != nil {
		b = h2.AppendIndexedName(b, h2.StaticAuthority, hostOverride)
		authLen = len(hostOverride)
	} else {
		b = h2.AppendIndexedName(b, h2.StaticAuthority, authority)
	}
	for _, h := range r.Header {
		if equalFold(h.Name, "host") || equalFold(h.Name, "content-length") || equalFold(h.Name, "transfer-encoding") ||
			connectionHeader(h) {
			continue
		}
		q.lname = appendLower(q.lname[:0], h.Name)
		b = h2.AppendField(b, q.lname, h.Value)
	}
	if !hasUA {
		b = h2.AppendIndexedName(b, h2.StaticUserAgent, t.userAgent)
		hdrSize += len("User-Agent: \r\n") + len(t.userAgent)
	}
	if len(r.Body) > 0 || method == "POST" || method == "PUT" || method == "PATCH" {
		b = h2.AppendIndexedName(b, h2.StaticContentLength, strconv.AppendInt(q.num[:0], int64(len(r.Body)), 10))
	}
	q.hdr = b
	return int64(len(method)+1+target+len(" HTTP/1.1\r\nHost: \r\n")+authLen+hdrSize+2) + int64(len(r.Body)), true
}

// connectionHeader reports the HTTP/1.1 connection-specific fields that
// HTTP/2 forbids (RFC 9113 8.2.2); they are not sent.
func connectionHeader(h Header) bool {
	switch {
	case equalFold(h.Name, "connection"), equalFold(h.Name, "keep-alive"),
		equalFold(h.Name, "proxy-connection"), equalFold(h.Name, "upgrade"):
		return true
	case equalFold(h.Name, "te"):
		return !equalFold(h.Value, "trailers")
	}
	return false
}

func appendLower(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		b = append(b, ch)
	}
	return b
}

// HTTP/2 failures of a request, as errors of the classes users expect.
var (
	errNoStatus  = &ProtocolError{"HTTP/2 response without a final :status"}
	errNotUsable = fmt.Errorf("httpc: HTTP/2 connections kept going away: %w", io.ErrUnexpectedEOF)
)

// result turns the ended stream into res.
func (c *h2Client) result(res *Result) { h2Outcome(&c.s, &c.resp, c.ctx.Err() != nil, res) }

// h2Outcome turns s, an ended stream whose response resp sized, into res;
// closed says the client was closed under it.
func h2Outcome(s *h2.Stream, resp *h2Resp, closed bool, res *Result) {
	if s.Status >= 200 {
		res.BytesReceived = int64(len("HTTP/2.0 000 \r\n")+len(http.StatusText(s.Status))) +
			resp.hdrBytes + 2 + s.DataBytes
	}
	switch {
	case s.ConnErr != nil:
		err := s.ConnErr
		switch {
		case closed || errors.Is(err, ErrClosed):
			err = ErrClosed
		case s.Refused:
			err = fmt.Errorf("%v: %w", err, io.ErrUnexpectedEOF)
		case h2.IsProtocol(err):
			err = &ProtocolError{err.Error()}
		case Classify(err) == ClassOther:
			err = fmt.Errorf("connection lost: %v: %w", err, io.ErrUnexpectedEOF)
		}
		res.Reused = false
		res.fail(err)
	case s.RST:
		res.fail(fmt.Errorf("stream reset by the server (%v): %w", s.RSTCode, syscall.ECONNRESET))
	case s.Status < 200:
		res.fail(errNoStatus)
	default:
		res.Status = s.Status
	}
}

// failed records err, a round trip's or a dial's: ErrClosed when the
// client or Transport was closed under the request.
func (c *h2Client) failed(res *Result, err error) { res.fail(h2Failure(err, c.ctx.Err() != nil)) }

// h2Failure is err, a round trip's or a dial's, as the error a request
// fails with; closed says the client was closed under it.
func h2Failure(err error, closed bool) error {
	var te *h2.TLSError
	switch {
	case err == h2.ErrExpired:
		err = context.DeadlineExceeded
	case closed:
		err = ErrClosed
	case err == h2.ErrRetry:
		err = errNotUsable
	case errors.As(err, &te):
		err = &tlsError{te.Err}
	case h2.IsProtocol(err):
		err = &ProtocolError{err.Error()}
	}
	return err
}
