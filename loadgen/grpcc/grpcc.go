// Package grpcc is the gRPC client on the load engine's hot path.
//
// A Pool holds several HTTP/2 connections to one target (one connection caps
// throughput: its streams share one TCP stream, one reader and one writer
// goroutine), and each VU sticks to one of them (Pool.Caller). Unary calls
// go through our own HTTP/2 transport (loadgen/internal/h2, shared with
// httpc's HTTP/2 requests: x/net/http2's framer and HPACK, one reader
// goroutine per connection; this package adds gRPC's framing, header
// blocks encoded once and trailers; no allocation per call in steady
// state) unless Options.Transport asks for grpc-go; server-streaming calls
// always use grpc-go, with a pass-through codec. Either way the request
// message is marshalled before the call (a Payload, built once when the
// message has no generators) and the response is counted, never decoded,
// so the hot path does no proto reflection.
//
// Request failures are data: a call fills Result.Code and Result.Err and
// never returns a Go error.
package grpcc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/loadcap/loadcap/loadgen/internal/h2"
)

// DefaultMaxConnections caps the default number of connections per target:
// min(VUs, DefaultMaxConnections).
const DefaultMaxConnections = 32

// Flow-control windows: large and fixed, so that small calls never wait for
// WINDOW_UPDATEs and grpc-go's BDP probing (pings) stays off.
const (
	streamWindow = 1 << 20
	connWindow   = 16 << 20
)

// Options configures a Pool.
type Options struct {
	Target      string      // dial address, host:port
	Authority   string      // :authority; "" = Target
	TLS         *tls.Config // nil = plaintext HTTP/2 (h2c with prior knowledge). Not modified.
	Connections int         // HTTP/2 connections; < 1 = 1
	UserAgent   string      // "" = "loadcap"
	Transport   Transport   // unary calls' transport; TransportDefault = DefaultTransport
}

// Transport selects the HTTP/2 client of unary calls.
type Transport int

// Transports.
const (
	TransportDefault Transport = iota // DefaultTransport
	TransportH2                       // ours (loadgen/internal/h2)
	TransportGRPCGo                   // grpc-go's
)

// DefaultTransport is the transport of unary calls when Options leave it
// unset.
const DefaultTransport = TransportH2

// Pool is a fixed set of HTTP/2 connections to one target. Connections are
// made in the background as Dial returns and remade after failures (as
// grpc-go does). It is safe for concurrent use.
type Pool struct {
	o     Options
	n     int
	once  sync.Once
	conns []*grpc.ClientConn // grpc-go's: every call, or server streaming only
	err   error              // grpc-go's dial error

	// Our transport (TransportH2).
	h2     []*h2.Slot
	scheme byte   // HPACK :scheme
	fixed  []byte // HPACK :authority, content-type, user-agent, te
	ctx    context.Context
	cancel context.CancelFunc
}

// Dial returns a pool of o.Connections connections to o.Target. It fails
// only on bad options; an unreachable target shows in the calls' results.
func Dial(o Options) (*Pool, error) {
	if o.Transport == TransportDefault {
		o.Transport = DefaultTransport
	}
	if o.UserAgent == "" {
		o.UserAgent = "loadcap"
	}
	p := &Pool{o: o, n: max(o.Connections, 1)}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	if o.Transport == TransportGRPCGo {
		if err := p.dialGRPC(); err != nil {
			return nil, err
		}
		return p, nil
	}
	if o.Target == "" {
		return nil, errors.New("grpc client: no target")
	}
	authority := o.Authority
	if authority == "" {
		authority = o.Target
	}
	h2o := h2.Options{Addr: o.Target, TLS: o.TLS, DialTimeout: h2.DefaultDialTimeout}
	if host, _, err := net.SplitHostPort(authority); err == nil {
		h2o.ServerName = host
	} else {
		h2o.ServerName = authority
	}
	p.scheme = hpackSchemeHTTP
	if o.TLS != nil {
		p.scheme = hpackSchemeHTTPS
	}
	e := newFieldEncoder()
	e.field(":authority", authority)
	e.field("content-type", "application/grpc")
	e.field("user-agent", o.UserAgent)
	e.field("te", "trailers")
	p.fixed = e.bytes()
	for range p.n {
		sl := h2.NewSlot(p.ctx, h2o, errPoolClosed)
		p.h2 = append(p.h2, sl)
		_, _ = sl.Conn(ctxDone, nil) // starts connecting ahead of the first call
	}
	return p, nil
}

// ctxDone is a context that has ended.
var ctxDone = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// dialGRPC makes the grpc-go connections, once.
func (p *Pool) dialGRPC() error {
	p.once.Do(func() { p.err = p.makeGRPC() })
	return p.err
}

func (p *Pool) makeGRPC() error {
	o := p.o
	ua := o.UserAgent
	creds := insecure.NewCredentials()
	if o.TLS != nil {
		creds = credentials.NewTLS(o.TLS)
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})),
		grpc.WithUserAgent(ua),
		grpc.WithInitialWindowSize(streamWindow),
		grpc.WithInitialConnWindowSize(connWindow),
		grpc.WithDisableRetry(),           // retries buffer every message for replay
		grpc.WithDisableServiceConfig(),   // nothing to look up
		grpc.WithReadBufferSize(64 << 10), // fewer read syscalls under load
		grpc.WithWriteBufferSize(64 << 10),
	}
	if o.Authority != "" {
		opts = append(opts, grpc.WithAuthority(o.Authority))
	}
	for range p.n {
		// passthrough: the address is dialled as written, with no DNS
		// resolver goroutine per connection.
		c, err := grpc.NewClient("passthrough:///"+o.Target, opts...)
		if err != nil {
			for _, c := range p.conns {
				_ = c.Close()
			}
			p.conns = nil
			return fmt.Errorf("grpc client for %s: %w", o.Target, err)
		}
		c.Connect()
		p.conns = append(p.conns, c)
	}
	return nil
}

// Len is the number of connections (of each transport in use).
func (p *Pool) Len() int { return p.n }

// Conn returns grpc-go's connection i modulo Len, made on first use when
// unary calls use our transport; nil if grpc-go refused the options.
func (p *Pool) Conn(i int) *grpc.ClientConn {
	if p.dialGRPC() != nil {
		return nil
	}
	return p.conns[i%len(p.conns)]
}

// Close closes every connection; calls in flight fail with Canceled.
func (p *Pool) Close() {
	p.cancel()
	p.once.Do(func() {}) // no grpc-go connections after Close
	for _, c := range p.conns {
		_ = c.Close()
	}
	for _, sl := range p.h2 {
		sl.Close(errPoolClosed)
	}
}

// Payload is a marshalled request message. A Payload may be shared by
// concurrent calls as long as nobody changes it (Set) while one is in
// flight.
type Payload struct {
	bs mem.BufferSlice
	b  []byte
}

// NewPayload returns a Payload holding b (not copied).
func NewPayload(b []byte) *Payload {
	p := &Payload{}
	p.Set(b)
	return p
}

// Set replaces the payload's bytes with b (not copied).
func (p *Payload) Set(b []byte) {
	p.b = b
	if len(p.bs) == 0 {
		p.bs = mem.BufferSlice{mem.SliceBuffer(b)}
		return
	}
	p.bs[0] = mem.SliceBuffer(b) // a slice in an interface: no allocation
}

// Bytes returns the marshalled message.
func (p *Payload) Bytes() []byte { return p.b }

// frameOverhead is the gRPC length prefix of every message: a compression
// flag and a 4-byte length.
const frameOverhead = 5

// Result is the outcome of one call. The caller resets it.
type Result struct {
	Code      codes.Code // OK when the call succeeded
	Err       error      // the status error when Code != OK
	BytesSent int64      // request message bytes with their 5-byte gRPC prefix
	BytesRecv int64      // response message bytes with their prefixes
	Messages  int        // responses received (1 for a successful unary call)
}

// Caller sends calls on one connection of a pool. It is used by one
// goroutine at a time (a VU).
type Caller struct {
	p    *Pool
	vu   int
	resp response

	// Our transport.
	slot   *h2.Slot
	s      grpcStream
	prefix [frameOverhead]byte // the request message's length prefix
	hdrs   []hdrEntry
	evict  int
	call   []byte // this call's header block
}

// Caller returns a Caller for VU number vu: VUs are spread over the
// connections round-robin.
func (p *Pool) Caller(vu int) *Caller {
	c := &Caller{p: p, vu: vu}
	if p.h2 != nil {
		c.slot = p.h2[vu%len(p.h2)]
		c.s.Recv = &c.s
	}
	return c
}

// Unary makes one unary call of method ("/pkg.Service/Method") with the
// request in payload; ctx carries the deadline and outgoing metadata.
// Metadata in ctx is encoded afresh for each call: UnaryMD spares that.
func (c *Caller) Unary(ctx context.Context, method string, payload *Payload, res *Result) {
	if c.slot != nil {
		md, _ := metadata.FromOutgoingContext(ctx)
		if len(md) == 0 {
			c.unaryH2(ctx, method, nil, true, payload, res)
			return
		}
		c.unaryH2(ctx, method, NewMetadata(md), false, payload, res)
		return
	}
	c.unaryGRPC(ctx, method, payload, res)
}

// UnaryMD is Unary with the outgoing metadata md (nil = none) prepared
// beforehand; metadata in ctx is ignored. Our transport reuses the
// request's encoded header block for every call with the same method and
// md.
func (c *Caller) UnaryMD(ctx context.Context, method string, md *Metadata, payload *Payload, res *Result) {
	if c.slot != nil {
		c.unaryH2(ctx, method, md, true, payload, res)
		return
	}
	if md != nil {
		ctx = metadata.NewOutgoingContext(ctx, md.md)
	}
	c.unaryGRPC(ctx, method, payload, res)
}

func (c *Caller) unaryGRPC(ctx context.Context, method string, payload *Payload, res *Result) {
	conn := c.p.Conn(c.vu)
	if conn == nil {
		fail(codes.Unavailable, c.p.err.Error(), res)
		return
	}
	c.resp = response{}
	err := conn.Invoke(ctx, method, payload, &c.resp)
	res.BytesSent = int64(len(payload.b) + frameOverhead)
	c.finish(err, res)
}

// ServerStream makes one server-streaming call and reads every response:
// the call ends with the stream (its latency runs to the last message).
func (c *Caller) ServerStream(ctx context.Context, method string, payload *Payload, res *Result) {
	conn := c.p.Conn(c.vu)
	if conn == nil {
		fail(codes.Unavailable, c.p.err.Error(), res)
		return
	}
	c.resp = response{}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := conn.NewStream(ctx, &streamDesc, method)
	if err == nil {
		err = s.SendMsg(payload)
		if err == nil {
			res.BytesSent = int64(len(payload.b) + frameOverhead)
			err = s.CloseSend()
		}
		for err == nil {
			err = s.RecvMsg(&c.resp)
		}
		if errors.Is(err, io.EOF) {
			err = nil
		}
	}
	c.finish(err, res)
}

var streamDesc = grpc.StreamDesc{ServerStreams: true}

func (c *Caller) finish(err error, res *Result) {
	res.BytesRecv = c.resp.n
	res.Messages = c.resp.msgs
	if err != nil {
		res.Code, res.Err = status.Code(err), err
		if res.Code == codes.Unknown && errors.Is(err, context.DeadlineExceeded) {
			res.Code = codes.DeadlineExceeded
		}
		return
	}
	res.Code, res.Err = codes.OK, nil
}

// response counts what a call received.
type response struct {
	n    int64
	msgs int
}

// rawCodec passes Payloads through and counts responses without decoding
// them. It names itself "proto", so the content-type is
// application/grpc+proto as every server expects.
type rawCodec struct{}

var _ encoding.CodecV2 = rawCodec{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	p, ok := v.(*Payload)
	if !ok {
		return nil, fmt.Errorf("grpcc: cannot marshal %T", v)
	}
	return p.bs, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	r, ok := v.(*response)
	if !ok {
		return fmt.Errorf("grpcc: cannot unmarshal into %T", v)
	}
	r.n += int64(data.Len() + frameOverhead)
	r.msgs++
	return nil
}

func (rawCodec) Name() string { return "proto" }
