// Package grpcc is the gRPC client on the load engine's hot path.
//
// A Pool holds several HTTP/2 connections to one target (one connection caps
// throughput: its streams share one TCP stream, one reader and one writer
// goroutine), and each VU sticks to one of them (Pool.Caller). Calls go
// through grpc-go with a pass-through codec: the request message is
// marshalled before the call (a Payload, built once when the message has no
// generators) and the response is counted, never decoded, so the hot path
// does no proto reflection.
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

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
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
}

// Pool is a fixed set of HTTP/2 connections to one target. Connections are
// made in the background as Dial returns and remade after failures (as
// grpc-go does). It is safe for concurrent use.
type Pool struct {
	conns []*grpc.ClientConn
}

// Dial returns a pool of o.Connections connections to o.Target. It fails
// only on bad options; an unreachable target shows in the calls' results.
func Dial(o Options) (*Pool, error) {
	n := max(o.Connections, 1)
	ua := o.UserAgent
	if ua == "" {
		ua = "loadcap"
	}
	creds := insecure.NewCredentials()
	if o.TLS != nil {
		creds = credentials.NewTLS(o.TLS)
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})),
		grpc.WithUserAgent(ua),
		grpc.WithSharedWriteBuffer(true),
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
	p := &Pool{}
	for range n {
		// passthrough: the address is dialled as written, with no DNS
		// resolver goroutine per connection.
		c, err := grpc.NewClient("passthrough:///"+o.Target, opts...)
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("grpc client for %s: %w", o.Target, err)
		}
		c.Connect()
		p.conns = append(p.conns, c)
	}
	return p, nil
}

// Len is the number of connections.
func (p *Pool) Len() int { return len(p.conns) }

// Conn returns connection i modulo Len.
func (p *Pool) Conn(i int) *grpc.ClientConn { return p.conns[i%len(p.conns)] }

// Close closes every connection; calls in flight fail with Canceled.
func (p *Pool) Close() {
	for _, c := range p.conns {
		_ = c.Close()
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
	conn *grpc.ClientConn
	resp response
}

// Caller returns a Caller for VU number vu: VUs are spread over the
// connections round-robin.
func (p *Pool) Caller(vu int) *Caller { return &Caller{conn: p.Conn(vu)} }

// Unary makes one unary call of method ("/pkg.Service/Method") with the
// request in payload; ctx carries the deadline and outgoing metadata.
func (c *Caller) Unary(ctx context.Context, method string, payload *Payload, res *Result) {
	c.resp = response{}
	err := c.conn.Invoke(ctx, method, payload, &c.resp)
	res.BytesSent = int64(len(payload.b) + frameOverhead)
	c.finish(err, res)
}

// ServerStream makes one server-streaming call and reads every response:
// the call ends with the stream (its latency runs to the last message).
func (c *Caller) ServerStream(ctx context.Context, method string, payload *Payload, res *Result) {
	c.resp = response{}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := c.conn.NewStream(ctx, &streamDesc, method)
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
