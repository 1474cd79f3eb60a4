package httpc

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
)

// newH2Transport returns the net/http Transport shared by every HTTP/2
// client of t: HTTP/2 only (ALPN h2 for https, h2c with prior knowledge
// for http), so a server without HTTP/2 fails instead of silently falling
// back to HTTP/1.1.
func newH2Transport(t *Transport, tlsConf *tls.Config) *http.Transport {
	var p http.Protocols
	p.SetHTTP2(true)
	p.SetUnencryptedHTTP2(true)
	d := t.dialer
	return &http.Transport{
		Protocols:           &p,
		DialContext:         d.DialContext,
		TLSClientConfig:     tlsConf,
		TLSHandshakeTimeout: t.dialTimeout,
		DisableKeepAlives:   !t.keepAlive,
		DisableCompression:  true,
		MaxIdleConnsPerHost: 16,
	}
}

// h2Client sends requests through the Transport's shared net/http
// Transport. It allocates per request.
type h2Client struct {
	t      *Transport
	ctx    context.Context // canceled by abort; parent of every request context
	cancel context.CancelFunc
}

func newH2Client(t *Transport) *h2Client {
	c := &h2Client{t: t}
	c.ctx, c.cancel = context.WithCancel(t.ctx)
	return c
}

func (c *h2Client) abort() { c.cancel() }

// Close implements Client.
func (c *h2Client) Close() {
	c.abort()
	c.t.forget(c)
}

// Do implements Client. BytesSent and BytesReceived are the HTTP/1.1
// equivalent sizes (request line or status line, headers, body), not the
// compressed frames on the wire, which several clients share.
func (c *h2Client) Do(r *Request, res *Result) {
	*res = Result{}
	if c.ctx.Err() != nil {
		res.fail(ErrClosed)
		return
	}
	https, err := r.secure()
	if err != nil {
		res.fail(err)
		return
	}
	method := r.Method
	if method == "" {
		method = "GET"
	}
	if !validToken(method) {
		res.fail(errBadMethod)
		return
	}
	if !validTarget(r.Target) {
		res.fail(errBadTarget)
		return
	}
	target := string(r.Target)
	if target == "" {
		target = "/"
	}
	scheme := "http://"
	if https {
		scheme = "https://"
	}

	ctx, cancel := context.WithTimeout(c.ctx, c.t.timeout)
	defer cancel()
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { res.Reused = i.Reused },
	})
	var body io.Reader
	if r.Body != nil {
		// Copied: the Transport may read the body after Do returns.
		body = bytes.NewReader(bytes.Clone(r.Body))
	}
	req, err := http.NewRequestWithContext(ctx, method, scheme+r.Host+target, body)
	if err != nil {
		res.fail(&RequestError{err.Error()})
		return
	}
	if r.Body == nil && (method == "POST" || method == "PUT" || method == "PATCH") {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	req.Host = hostHeader(https, r.Host)
	hasUA := false
	for _, h := range r.Header {
		if !validToken(h.Name) || !validValue(h.Value) {
			res.fail(errBadHeader)
			return
		}
		switch {
		case equalFold(h.Name, "host"):
			req.Host = string(h.Value)
		case equalFold(h.Name, "content-length"), equalFold(h.Name, "transfer-encoding"):
		default:
			hasUA = hasUA || equalFold(h.Name, "user-agent")
			req.Header.Add(h.Name, string(h.Value))
		}
	}
	if !hasUA {
		req.Header.Set("User-Agent", c.t.userAgent)
	}
	res.BytesSent = int64(len(method)+1+len(target)+len(" HTTP/1.1\r\nHost: \r\n")+len(req.Host)) +
		headerSize(req.Header) + 2 + int64(len(r.Body))

	resp, err := c.t.h2.RoundTrip(req)
	if err != nil {
		c.failed(res, err)
		return
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	res.BytesReceived = int64(len("HTTP/2.0 000 \r\n")+len(http.StatusText(resp.StatusCode))) +
		headerSize(resp.Header) + 2 + n
	if err != nil {
		res.Reused = false
		c.failed(res, err)
		return
	}
	res.Status = resp.StatusCode
}

// failed records err; ErrClosed when the client was closed under the
// request, and h2 framing errors as protocol errors.
func (c *h2Client) failed(res *Result, err error) {
	switch {
	case c.ctx.Err() != nil && !errors.Is(err, context.DeadlineExceeded):
		err = ErrClosed
	case strings.HasPrefix(err.Error(), "http2: ") && Classify(err) == ClassOther:
		err = &ProtocolError{err.Error()}
	}
	res.fail(err)
}

// headerSize is the HTTP/1.1 size of h: "Name: value\r\n" per value.
func headerSize(h http.Header) int64 {
	var n int
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + 2 + len(v) + 2
		}
	}
	return int64(n)
}
