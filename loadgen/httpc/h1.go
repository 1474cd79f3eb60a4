package httpc

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// readBufSize is the per-client response buffer; also the longest
	// status line or interesting header line accepted.
	readBufSize = 8 << 10
	// inlineBody is the largest body copied into the request buffer so the
	// request goes out in one Write; larger bodies take a second Write.
	inlineBody = 64 << 10
	// maxConns is how many (scheme, host) connections one client keeps.
	maxConns = 8
	// maxHeaderBytes bounds the response head (status line + headers).
	maxHeaderBytes = 1 << 20
	// scratchSize is the read size for discarding large bodies.
	scratchSize = 64 << 10
)

// scratchPool holds buffers for reading large bodies past the bufio.Reader.
var scratchPool = sync.Pool{New: func() any { b := make([]byte, scratchSize); return &b }}

// h1Conn is one keep-alive connection of a client to one scheme and host.
type h1Conn struct {
	https   bool
	host    string
	tlsConf *tls.Config // per host (ServerName), made at first TLS dial
	conn    net.Conn    // what requests use: tcp (or raw), or a *tls.Conn over it
	raw     net.Conn    // the TCP connection; closing it aborts any I/O
	tcp     *tcpConn    // raw with the fast read path; nil if unavailable
	used    time.Time   // start of the last request that succeeded on it
}

// h1Client is our HTTP/1.1 client: one request at a time, one keep-alive
// connection per scheme and host.
//
// Concurrency: only Do's goroutine writes conns (under mu); abort, called
// from any goroutine, reads them under mu and closes the raw connections,
// which unblocks Do's I/O. Do reads conns without the lock.
type h1Client struct {
	t      *Transport
	ctx    context.Context // canceled by abort; bounds dials and handshakes
	cancel context.CancelFunc
	closed atomic.Bool

	mu    sync.Mutex
	conns []h1Conn

	br     *bufio.Reader
	brConn net.Conn // the connection br currently reads
	wbuf   []byte   // rendered request, reused
	next   int      // eviction cursor into conns
}

func newH1Client(t *Transport) *h1Client {
	c := &h1Client{
		t:     t,
		conns: make([]h1Conn, 0, 1),
		br:    bufio.NewReaderSize(nil, readBufSize),
		wbuf:  make([]byte, 0, 512),
	}
	c.ctx, c.cancel = context.WithCancel(t.ctx)
	return c
}

// Do implements Client.
func (c *h1Client) Do(r *Request, res *Result) {
	*res = Result{}
	if c.closed.Load() {
		res.fail(ErrClosed)
		return
	}
	https, err := r.secure()
	if err != nil {
		res.fail(err)
		return
	}
	body, err := c.render(r, https)
	if err != nil {
		res.fail(err)
		return
	}
	now := r.start()
	deadline := now.Add(c.t.timeout)
	cn := c.find(https, r.Host)
	for attempt := 0; ; attempt++ {
		reused := cn.conn != nil
		if !reused {
			if err := c.dial(cn, deadline); err != nil {
				c.failed(res, err)
				return
			}
		}
		keep, early, err := c.roundTrip(cn, r.Method, body, deadline, res)
		if err == nil {
			res.Reused = reused
			cn.used = now
			if !keep || !c.t.keepAlive {
				c.drop(cn, true)
			}
			return
		}
		c.drop(cn, false)
		// A kept-alive connection the server closed while idle fails on
		// write or before the first response byte: retry once, fresh.
		if reused && attempt == 0 && early && now.Sub(cn.used) >= c.t.staleAfter && retryable(err) && !c.closed.Load() {
			res.BytesReceived = 0
			continue
		}
		c.failed(res, err)
		return
	}
}

// failed records err, reporting ErrClosed when the client was closed
// under the request.
func (c *h1Client) failed(res *Result, err error) {
	if c.closed.Load() {
		err = ErrClosed
	}
	res.fail(err)
}

// find returns the connection slot for (https, host), making one.
func (c *h1Client) find(https bool, host string) *h1Conn {
	for i := range c.conns {
		if cn := &c.conns[i]; cn.host == host && cn.https == https {
			return cn
		}
	}
	if len(c.conns) < maxConns {
		c.mu.Lock()
		c.conns = append(c.conns, h1Conn{https: https, host: host})
		c.mu.Unlock()
		return &c.conns[len(c.conns)-1]
	}
	cn := &c.conns[c.next]
	c.next = (c.next + 1) % maxConns
	c.drop(cn, true)
	c.mu.Lock()
	*cn = h1Conn{https: https, host: host}
	c.mu.Unlock()
	return cn
}

// dial connects cn (TCP, then TLS for https) within the dial timeout and
// the request deadline.
func (c *h1Client) dial(cn *h1Conn, deadline time.Time) error {
	d := c.t.dialer
	dl := time.Now().Add(c.t.dialTimeout)
	if deadline.Before(dl) {
		dl = deadline
	}
	d.Deadline = dl
	raw, err := d.DialContext(c.ctx, "tcp", dialAddr(cn.https, cn.host))
	if err != nil {
		return err
	}
	conn := raw
	tcp := newTCPConn(raw)
	if tcp != nil {
		conn = tcp
	}
	if cn.https {
		if cn.tlsConf == nil {
			cn.tlsConf = c.t.tlsConf.Clone()
			if cn.tlsConf.ServerName == "" {
				cn.tlsConf.ServerName = serverName(cn.host)
			}
		}
		tc := tls.Client(conn, cn.tlsConf)
		_ = raw.SetDeadline(dl)
		if err := tc.HandshakeContext(c.ctx); err != nil {
			raw.Close()
			if isTimeout(err) {
				return err
			}
			return &tlsError{err}
		}
		conn = tc
	}
	c.mu.Lock()
	if c.closed.Load() {
		c.mu.Unlock()
		raw.Close()
		return ErrClosed
	}
	cn.conn, cn.raw, cn.tcp = conn, raw, tcp
	c.mu.Unlock()
	return nil
}

// serverName is host without port or IPv6 brackets, for SNI and
// certificate checks.
func serverName(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
		return host[1 : len(host)-1]
	}
	return host
}

// drop forgets cn's connection and closes it: gracefully (TLS
// close_notify) after a complete response, abruptly after an error.
func (c *h1Client) drop(cn *h1Conn, graceful bool) {
	c.mu.Lock()
	conn, raw := cn.conn, cn.raw
	cn.conn, cn.raw, cn.tcp = nil, nil, nil
	c.mu.Unlock()
	if conn == nil {
		return
	}
	if c.brConn == conn {
		c.brConn = nil
	}
	if graceful {
		conn.Close()
	} else {
		raw.Close()
	}
}

// abort closes the client from any goroutine, unblocking Do.
func (c *h1Client) abort() {
	c.closed.Store(true)
	c.cancel()
	c.mu.Lock()
	for i := range c.conns {
		if raw := c.conns[i].raw; raw != nil {
			raw.Close()
		}
	}
	c.mu.Unlock()
}

// Close implements Client.
func (c *h1Client) Close() {
	c.abort()
	c.t.forget(c)
}

// roundTrip writes the rendered request on cn and reads the response.
// early reports that the failure came before any response byte.
func (c *h1Client) roundTrip(cn *h1Conn, method string, body []byte, deadline time.Time, res *Result) (keep, early bool, err error) {
	conn, tcp := cn.conn, cn.tcp
	if err := conn.SetDeadline(deadline); err != nil {
		return false, true, err
	}
	if tcp != nil && len(body) == 0 {
		// Small request: queue it; the first read of the reply sends it.
		tcp.deferring = true
	}
	n, err := conn.Write(c.wbuf)
	res.BytesSent += int64(n)
	if err == nil && len(body) > 0 {
		n, err = conn.Write(body)
		res.BytesSent += int64(n)
	}
	if tcp != nil {
		tcp.deferring = false
	}
	if err != nil {
		return false, true, err
	}
	if c.brConn != conn {
		c.br.Reset(conn)
		c.brConn = conn
	}
	status, keep, err := c.readResponse(method, res)
	if err != nil {
		if tcp != nil && !cn.https {
			res.BytesSent -= int64(tcp.dropped) // queued but never written
		}
		return false, res.BytesReceived == 0, err
	}
	res.Status = status
	return keep, false, nil
}

// render writes the request head (and a small body) into c.wbuf. It
// returns the body still to be written separately.
func (c *h1Client) render(r *Request, https bool) ([]byte, error) {
	b, body, err := renderH1(c.wbuf[:0], c.t, r, https, inlineBody)
	if err != nil {
		return nil, err
	}
	c.wbuf = b
	return body, nil
}

// renderH1 appends r's request head to b, and its body when at most
// inline bytes long; it returns the body still to be written separately.
func renderH1(b []byte, t *Transport, r *Request, https bool, inline int) ([]byte, []byte, error) {
	method := r.Method
	if method == "" {
		method = "GET"
	}
	if !validToken(method) {
		return b, nil, errBadMethod
	}
	target := r.Target
	if !validTarget(target) {
		return b, nil, errBadTarget
	}
	hasHost, hasUA := false, false
	for i := range r.Header {
		h := &r.Header[i]
		if !validToken(h.Name) || !validValue(h.Value) {
			return b, nil, errBadHeader
		}
		switch len(h.Name) {
		case 4:
			hasHost = hasHost || equalFold(h.Name, "host")
		case 10:
			hasUA = hasUA || equalFold(h.Name, "user-agent")
		}
	}

	b = append(b, method...)
	b = append(b, ' ')
	if len(target) == 0 {
		b = append(b, '/')
	} else {
		b = append(b, target...)
	}
	b = append(b, " HTTP/1.1\r\n"...)
	if !hasHost {
		b = append(b, "Host: "...)
		b = append(b, hostHeader(https, r.Host)...)
		b = append(b, "\r\n"...)
	}
	if !hasUA {
		b = append(b, "User-Agent: "...)
		b = append(b, t.userAgent...)
		b = append(b, "\r\n"...)
	}
	if r.Body != nil || method == "POST" || method == "PUT" || method == "PATCH" {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(len(r.Body)), 10)
		b = append(b, "\r\n"...)
	}
	if !t.keepAlive {
		b = append(b, "Connection: close\r\n"...)
	}
	for i := range r.Header {
		h := &r.Header[i]
		if (len(h.Name) == 14 && equalFold(h.Name, "content-length")) ||
			(len(h.Name) == 17 && equalFold(h.Name, "transfer-encoding")) {
			continue // we frame the body
		}
		b = append(b, h.Name...)
		b = append(b, ": "...)
		b = append(b, h.Value...)
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	body := r.Body
	if len(body) <= inline {
		b = append(b, body...)
		body = nil
	}
	return b, body, nil
}

// tchar marks the bytes allowed in a token (method, header name).
var tchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tchar[s[i]] {
			return false
		}
	}
	return true
}

// validTarget rejects control bytes, spaces and DEL in the request-target.
func validTarget(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// validValue rejects CR, LF and NUL in a header value.
func validValue(b []byte) bool {
	for _, c := range b {
		if c == '\r' || c == '\n' || c == 0 {
			return false
		}
	}
	return true
}

// equalFold reports whether s equals lower, an ASCII lower-case string,
// ignoring ASCII case.
func equalFold[T string | []byte](s T, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
