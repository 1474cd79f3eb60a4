// Package httpc is the HTTP client on the load engine's hot path.
//
// A Transport holds what all virtual users (VUs) of a run share: options,
// the dialer, TLS settings and, for HTTP/2, the connections. Each VU
// gets its own Client from Transport.NewClient and sends one request at a
// time through it.
//
// HTTP/1.1 (the default) is our own client on a raw net.Conn, one keep-alive
// connection per VU and host, like wrk: the request is rendered into a reused
// buffer and sent with one Write, the response is parsed from a bufio.Reader
// and its body is read and discarded while counting bytes. In steady state it
// allocates nothing per request. HTTP/2 (Options.HTTP2) goes through the
// engine's own HTTP/2 transport (loadgen/internal/h2, which gRPC calls use
// too): one connection per scheme and host shared by every VU, requests
// multiplexed on it as streams, header blocks rendered into reused
// buffers; it allocates nothing per request either.
//
// A Poller (Linux) runs many callers' requests on one goroutine over
// epoll, by the same rules: HTTP/1.1 with a connection per caller, or h2c
// streams on a connection per host. The load engine's event loops use it.
//
// Request failures are data: Do fills Result.Class and Result.Err and never
// returns a Go error.
package httpc

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"
)

// DefaultTimeout is the whole-request timeout used when Options.Timeout is 0.
const DefaultTimeout = 60 * time.Second

// DefaultUserAgent is sent when Options.UserAgent is empty and the request
// has no User-Agent header of its own.
const DefaultUserAgent = "loadcap"

// maxDialTimeout caps the default dial timeout.
const maxDialTimeout = 10 * time.Second

// Options configures a Transport. The zero value is usable.
type Options struct {
	Timeout          time.Duration // whole request, connect included; 0 = DefaultTimeout
	DialTimeout      time.Duration // connect (TCP, TLS handshake, HTTP/2 preface); 0 = min(Timeout, 10s)
	HTTP2            bool          // https: ALPN h2; http: h2c with prior knowledge
	TLSConfig        *tls.Config   // nil = defaults; callers set InsecureSkipVerify here. Not modified.
	DisableKeepAlive bool          // one connection per request; sends "Connection: close"
	UserAgent        string        // "" = DefaultUserAgent
	// StaleAfter is how long a kept-alive connection must have been idle
	// before a failure on it, ahead of any response byte, is taken for the
	// server's idle close and retried once on a fresh connection. Under
	// load connections are never idle that long, so a server that resets
	// them shows as failures instead of being hidden by retries.
	// 0 = DefaultStaleAfter.
	StaleAfter time.Duration
}

// DefaultStaleAfter is Options.StaleAfter's default.
const DefaultStaleAfter = time.Second

// Header is one request header field. Value is not retained after Do.
type Header struct {
	Name  string
	Value []byte
}

// Request is one request, fully rendered by the engine. The client does not
// retain its slices after Do returns.
//
// In Header, a "Host" or "User-Agent" given by the caller replaces the
// client's own; "Content-Length" and "Transfer-Encoding" are dropped because
// the client frames the body itself. Names must be tokens and values must
// not contain CR, LF or NUL, or Do fails the request with a *RequestError
// (ClassOther) without sending it.
type Request struct {
	Method string   // "" = "GET"
	Scheme string   // "http" | "https" ("" = "http")
	Host   string   // authority with port: "127.0.0.1:8080" (dial address; Host header is this minus a default port)
	Target []byte   // request-target "/path?query" ("" = "/")
	Header []Header // extra headers; the client adds Host, User-Agent (unless given) and Content-Length when Body != nil or the method is POST/PUT/PATCH
	Body   []byte

	// Now, when set, is the caller's clock reading just before Do (a load
	// generator's send time): the request's timeout runs from it, and Do
	// spares a clock read of its own.
	Now time.Time
}

// start is when the request's timeout starts: Now, or the clock's reading.
func (r *Request) start() time.Time {
	if r.Now.IsZero() {
		return time.Now()
	}
	return r.Now
}

// Class is the transport error class of a failed request.
type Class uint8

// Error classes. ClassNone means a complete response (any status) arrived.
const (
	ClassNone     Class = iota
	ClassTimeout        // deadline exceeded, connect included
	ClassRefused        // connection refused
	ClassReset          // reset, broken pipe, or closed before the full response
	ClassDNS            // name resolution failed
	ClassTLS            // handshake or certificate failure
	ClassProtocol       // malformed response (status line, headers, chunking, lengths)
	ClassOther          // anything else, including requests aborted by Close
)

var classNames = [...]string{"", "timeout", "refused", "reset", "dns", "tls", "protocol", "other"}

// String returns the class name used in results: "timeout", "refused",
// "reset", "dns", "tls", "protocol", "other", or "" for ClassNone.
func (c Class) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return "other"
}

// Result is the outcome of one Do. Do resets it before filling it.
type Result struct {
	Status        int   // 0 when no response
	Class         Class // ClassNone when a response (any status) was received in full
	Err           error // underlying error when Class != ClassNone
	BytesSent     int64 // bytes written for this request (headers + body), retries included
	BytesReceived int64 // bytes read for this response (status line + headers + body)
	Reused        bool  // sent on a kept-alive connection
}

// fail records err as the failure of the request.
func (res *Result) fail(err error) {
	res.Status = 0
	res.Err = err
	res.Class = Classify(err)
}

// ErrClosed is the Result.Err of a request aborted or refused because its
// Client or Transport was closed (class ClassOther).
var ErrClosed = errors.New("httpc: client closed")

// Client sends one request at a time; Do is not safe for concurrent use.
type Client interface {
	// Do sends r and waits for the full response, filling res (which it
	// resets first). It never panics; failures are reported in res.
	// Redirects are not followed. A request that fails on a kept-alive
	// connection before any response byte (the server closed it while
	// idle) is retried once on a new connection, whatever its method; a
	// failure on a new connection is never retried. Over HTTP/2, a request
	// the server refused unprocessed (above a GOAWAY's last stream, or
	// REFUSED_STREAM) is resent on a new connection, a few times at most.
	Do(r *Request, res *Result)
	// Close closes the client's connections. It is safe to call
	// concurrently with Do, which it aborts; later Do calls fail with
	// ErrClosed.
	Close()
}

var (
	_ Client = (*h1Client)(nil)
	_ Client = (*h2Client)(nil)
)

// aborter is a client as the Transport sees it.
type aborter interface{ abort() }

// Transport is shared by all VUs of a run and safe for concurrent use.
type Transport struct {
	timeout     time.Duration
	dialTimeout time.Duration
	keepAlive   bool
	staleAfter  time.Duration
	userAgent   string
	dialer      net.Dialer  // template, copied per dial
	tlsConf     *tls.Config // HTTP/1.1: ALPN http/1.1, shared session cache
	h2          *h2Pool     // HTTP/2 connections, when Options.HTTP2

	ctx    context.Context // canceled by Close; parent of every client context
	cancel context.CancelFunc

	mu      sync.Mutex
	closed  bool
	clients map[aborter]struct{}
}

// NewTransport returns a Transport for o.
func NewTransport(o Options) *Transport {
	t := &Transport{
		timeout:     o.Timeout,
		dialTimeout: o.DialTimeout,
		keepAlive:   !o.DisableKeepAlive,
		staleAfter:  o.StaleAfter,
		userAgent:   o.UserAgent,
		clients:     make(map[aborter]struct{}),
	}
	if t.timeout <= 0 {
		t.timeout = DefaultTimeout
	}
	if t.dialTimeout <= 0 {
		t.dialTimeout = min(t.timeout, maxDialTimeout)
	}
	if t.userAgent == "" {
		t.userAgent = DefaultUserAgent
	}
	if t.staleAfter <= 0 {
		t.staleAfter = DefaultStaleAfter
	}
	t.dialer = net.Dialer{Timeout: t.dialTimeout, KeepAlive: 30 * time.Second}
	t.ctx, t.cancel = context.WithCancel(context.Background())

	var base *tls.Config
	if o.TLSConfig != nil {
		base = o.TLSConfig.Clone()
	} else {
		base = &tls.Config{}
	}
	if base.ClientSessionCache == nil {
		base.ClientSessionCache = tls.NewLRUClientSessionCache(0)
	}
	if o.HTTP2 {
		t.h2 = newH2Pool(t, base)
	} else {
		t.tlsConf = base.Clone()
		t.tlsConf.NextProtos = []string{"http/1.1"}
	}
	return t
}

// NewClient returns a new Client for one VU. Clients made after Close fail
// every request with ErrClosed.
func (t *Transport) NewClient() Client {
	var c interface {
		Client
		aborter
	}
	if t.h2 != nil {
		c = newH2Client(t)
	} else {
		c = newH1Client(t)
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		c.abort()
		return c
	}
	t.clients[c] = struct{}{}
	t.mu.Unlock()
	return c
}

// forget drops a closed client from the Transport's set.
func (t *Transport) forget(c aborter) {
	t.mu.Lock()
	delete(t.clients, c)
	t.mu.Unlock()
}

// Close aborts every in-flight request of every client and closes all
// connections. Safe to call concurrently with Do and more than once.
func (t *Transport) Close() {
	t.mu.Lock()
	t.closed = true
	cs := make([]aborter, 0, len(t.clients))
	for c := range t.clients {
		cs = append(cs, c)
	}
	clear(t.clients)
	t.mu.Unlock()

	t.cancel()
	for _, c := range cs {
		c.abort()
	}
	if t.h2 != nil {
		t.h2.close()
	}
}

// hostHeader returns the Host header value for host: host minus the
// scheme's default port.
func hostHeader(https bool, host string) string {
	port := ":80"
	if https {
		port = ":443"
	}
	if len(host) > len(port) && host[len(host)-len(port):] == port {
		return host[:len(host)-len(port)]
	}
	return host
}

// dialAddr returns the address to dial for host, adding the scheme's
// default port when host has none.
func dialAddr(https bool, host string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	h := host
	if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
		h = h[1 : len(h)-1]
	}
	if https {
		return net.JoinHostPort(h, "443")
	}
	return net.JoinHostPort(h, "80")
}

// secure checks the request's scheme and host; it reports whether the
// request goes over TLS.
func (r *Request) secure() (bool, error) {
	if r.Host == "" {
		return false, errBadHost
	}
	switch r.Scheme {
	case "http", "":
		return false, nil
	case "https":
		return true, nil
	}
	return false, errBadScheme
}
