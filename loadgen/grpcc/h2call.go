package grpcc

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/loadcap/loadcap/loadgen/internal/h2"
)

// Metadata is outgoing call metadata prepared once for many calls (see
// Caller.UnaryMD): its HPACK encoding is made here, and our transport
// reuses the whole request header block per (method, *Metadata). It is
// read-only after NewMetadata and safe to share.
type Metadata struct {
	md  metadata.MD
	enc []byte
}

// NewMetadata prepares md (not copied: do not change it afterwards). Keys
// starting with ':' are dropped; values of "-bin" keys are sent in base64
// as gRPC requires.
func NewMetadata(md metadata.MD) *Metadata {
	m := &Metadata{md: md}
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	e := newFieldEncoder()
	for _, k := range keys {
		lk := strings.ToLower(k)
		switch {
		case strings.HasPrefix(lk, ":"), lk == "content-type", lk == "te", lk == "grpc-timeout":
			continue
		}
		for _, v := range md[k] {
			if strings.HasSuffix(lk, "-bin") {
				v = base64.RawStdEncoding.EncodeToString([]byte(v))
			}
			e.field(lk, v)
		}
	}
	m.enc = e.bytes()
	return m
}

// fieldEncoder encodes header fields as never-indexed literals: they leave
// the HPACK dynamic table alone, so encoded blocks can be stored, joined
// and resent on any connection.
type fieldEncoder struct {
	buf bytes.Buffer
	e   *hpack.Encoder
}

func newFieldEncoder() *fieldEncoder {
	f := &fieldEncoder{}
	f.e = hpack.NewEncoder(&f.buf)
	return f
}

func (f *fieldEncoder) field(name, value string) {
	_ = f.e.WriteField(hpack.HeaderField{Name: name, Value: value, Sensitive: true})
}

func (f *fieldEncoder) bytes() []byte { return bytes.Clone(f.buf.Bytes()) }

// HPACK static-table entries sent as one byte each.
const (
	hpackMethodPOST  = 0x83
	hpackSchemeHTTP  = 0x86
	hpackSchemeHTTPS = 0x87
)

// requestBlock is the header block of a call of method with md (nil =
// none), less grpc-timeout; fixed holds the pool's :authority,
// content-type, user-agent and te.
func requestBlock(scheme byte, fixed []byte, method string, md *Metadata) []byte {
	e := newFieldEncoder()
	e.field(":path", method)
	b := []byte{hpackMethodPOST, scheme}
	b = append(b, e.buf.Bytes()...)
	b = append(b, fixed...)
	if md != nil {
		b = append(b, md.enc...)
	}
	return b
}

// appendTimeout appends a grpc-timeout field for d (a literal, never
// indexed, with a literal name): at most 8 digits and a unit, rounded up.
func appendTimeout(b []byte, d time.Duration) []byte {
	const name = "grpc-timeout"
	b = append(b, 0x10, byte(len(name)))
	b = append(b, name...)
	d = max(d, 1)
	units := [...]struct {
		d time.Duration
		c byte
	}{{time.Nanosecond, 'n'}, {time.Microsecond, 'u'}, {time.Millisecond, 'm'}, {time.Second, 'S'}, {time.Minute, 'M'}, {time.Hour, 'H'}}
	v, unit := int64(0), byte('H')
	for _, u := range units {
		v, unit = int64((d+u.d-1)/u.d), u.c
		if v <= 99999999 {
			break
		}
	}
	v = min(v, 99999999)
	var digits [9]byte
	i := len(digits)
	i--
	digits[i] = unit
	for {
		i--
		digits[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	b = append(b, byte(len(digits)-i))
	return append(b, digits[i:]...)
}

// decodeMessage undoes grpc-message's percent-encoding; a malformed
// escape is kept as it is.
func decodeMessage(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	unhex := func(c byte) (byte, bool) {
		switch {
		case '0' <= c && c <= '9':
			return c - '0', true
		case 'a' <= c && c <= 'f':
			return c - 'a' + 10, true
		case 'A' <= c && c <= 'F':
			return c - 'A' + 10, true
		}
		return 0, false
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			h, ok1 := unhex(s[i+1])
			l, ok2 := unhex(s[i+2])
			if ok1 && ok2 {
				b = append(b, h<<4|l)
				i += 2
				continue
			}
		}
		b = append(b, s[i])
	}
	return string(b)
}

var errPoolClosed = fmt.Errorf("grpcc: pool closed: %w", context.Canceled)

// hdrEntry is a cached request header block.
type hdrEntry struct {
	method string
	md     *Metadata
	block  []byte
}

// maxHdrCache bounds a Caller's cached header blocks (a VU's distinct
// methods and metadata).
const maxHdrCache = 16

// block returns the header block of (method, md), cached when cache.
func (c *Caller) block(method string, md *Metadata, cache bool) []byte {
	if !cache {
		return requestBlock(c.p.scheme, c.p.fixed, method, md)
	}
	for i := range c.hdrs {
		if h := &c.hdrs[i]; h.md == md && h.method == method {
			return h.block
		}
	}
	h := hdrEntry{method, md, requestBlock(c.p.scheme, c.p.fixed, method, md)}
	if len(c.hdrs) < maxHdrCache {
		c.hdrs = append(c.hdrs, h)
	} else {
		c.hdrs[c.evict] = h
		c.evict = (c.evict + 1) % maxHdrCache
	}
	return h.block
}

// unaryH2 is a unary call on our transport.
func (c *Caller) unaryH2(ctx context.Context, method string, md *Metadata, cache bool, payload *Payload, res *Result) {
	res.BytesSent = int64(len(payload.b) + frameOverhead)
	res.BytesRecv, res.Messages = 0, 0
	if err := ctx.Err(); err != nil {
		ctxResult(err, res)
		return
	}
	buf := append(c.call[:0], c.block(method, md, cache)...)
	if dl, ok := ctx.Deadline(); ok {
		buf = appendTimeout(buf, time.Until(dl))
	}
	c.call = buf
	n := len(payload.b)
	c.prefix = [frameOverhead]byte{0, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	for attempt := 0; ; attempt++ {
		conn, err := c.slot.Conn(ctx, nil)
		if err != nil {
			if ctx.Err() != nil {
				ctxResult(ctx.Err(), res)
				return
			}
			fail(codes.Unavailable, err.Error(), res)
			return
		}
		c.s.reset()
		err = conn.RoundTrip(ctx, nil, &c.s.Stream, buf, c.prefix[:], payload.b)
		switch {
		case err == h2.ErrRetry && attempt < 3:
			continue // nothing sent: on the next connection
		case err == h2.ErrRetry:
			fail(codes.Unavailable, "connection not usable", res)
		case err != nil:
			ctxResult(err, res)
		default:
			streamResult(&c.s, res)
		}
		// As grpc-go for a server's CANCEL after our deadline, and for
		// any other cancel then: whichever side noticed it first, a call
		// that ends canceled once its deadline has passed ended by it.
		if dl, ok := ctx.Deadline(); ok && res.Code == codes.Canceled && !time.Now().Before(dl) {
			fail(codes.DeadlineExceeded, "context deadline exceeded ("+status.Convert(res.Err).Message()+")", res)
		}
		return
	}
}

func fail(code codes.Code, msg string, res *Result) {
	res.Code, res.Err = code, status.Error(code, msg)
}

func ctxResult(err error, res *Result) {
	if errors.Is(err, context.DeadlineExceeded) {
		fail(codes.DeadlineExceeded, err.Error(), res)
		return
	}
	fail(codes.Canceled, err.Error(), res)
}

// grpcStream is a unary call's stream on the shared HTTP/2 transport with
// what gRPC reads from the response: content-type, grpc-status and
// grpc-message, and the messages counted by their length prefixes. A
// Caller owns one and reuses it.
type grpcStream struct {
	h2.Stream

	ctOK      bool
	hasStatus bool
	status    int
	message   string
	msgs      int
	hdrN      int // prefix bytes seen of the current message
	need      uint32
	plen      uint32
}

var _ h2.Receiver = (*grpcStream)(nil)

func (s *grpcStream) reset() {
	s.Stream.Reset()
	s.ctOK, s.hasStatus, s.status, s.message = false, false, 0, ""
	s.msgs, s.hdrN, s.need, s.plen = 0, 0, 0, 0
}

// Field keeps what a call's result needs.
func (s *grpcStream) Field(f hpack.HeaderField) {
	switch f.Name {
	case "content-type":
		s.ctOK = len(f.Value) >= 16 && f.Value[:16] == "application/grpc"
	case "grpc-status":
		if v, err := strconv.Atoi(f.Value); err == nil {
			s.hasStatus, s.status = true, v
		}
	case "grpc-message":
		s.message = f.Value
	}
}

// EndHeaders ends the call at a block with grpc-status (trailers, or a
// Trailers-Only response).
func (s *grpcStream) EndHeaders(bool) bool { return s.hasStatus }

// Data follows the gRPC length prefixes in d to count messages.
func (s *grpcStream) Data(d []byte) {
	for len(d) > 0 {
		if s.need > 0 {
			k := min(uint32(len(d)), s.need)
			s.need -= k
			d = d[k:]
			continue
		}
		if s.hdrN > 0 {
			s.plen = s.plen<<8 | uint32(d[0])
		}
		s.hdrN++
		d = d[1:]
		if s.hdrN == frameOverhead {
			s.msgs++
			s.need, s.hdrN, s.plen = s.plen, 0, 0
		}
	}
}

// streamResult turns an ended stream into the call's result.
func streamResult(s *grpcStream, res *Result) {
	res.BytesRecv, res.Messages = s.DataBytes, s.msgs
	switch {
	case s.ConnErr != nil:
		code := codes.Unavailable
		if errors.Is(s.ConnErr, context.Canceled) {
			code = codes.Canceled
		}
		fail(code, "connection: "+s.ConnErr.Error(), res)
	case s.hasStatus:
		code := codes.Code(s.status)
		switch {
		case code != codes.OK:
			fail(code, decodeMessage(s.message), res)
		case s.msgs == 0:
			fail(codes.Internal, "cardinality violation: no response message in a unary call", res)
		case s.msgs > 1:
			fail(codes.Internal, "cardinality violation: more than one response message in a unary call", res)
		default:
			res.Code, res.Err = codes.OK, nil
		}
	case s.RST:
		fail(h2code(s.RSTCode), fmt.Sprintf("stream reset by the server: %v", s.RSTCode), res)
	case s.Status != 0 && s.Status != 200:
		fail(httpCode(s.Status), fmt.Sprintf("unexpected HTTP status %d", s.Status), res)
	case s.Status != 0 && !s.ctOK:
		fail(codes.Unknown, "response content-type is not application/grpc", res)
	default:
		fail(codes.Internal, "the server ended the stream without grpc-status", res)
	}
}

// h2code maps an RST_STREAM code to a gRPC code as grpc-go does.
func h2code(e http2.ErrCode) codes.Code {
	switch e {
	case http2.ErrCodeRefusedStream:
		return codes.Unavailable
	case http2.ErrCodeCancel:
		return codes.Canceled
	case http2.ErrCodeFlowControl, http2.ErrCodeEnhanceYourCalm:
		return codes.ResourceExhausted
	case http2.ErrCodeInadequateSecurity:
		return codes.PermissionDenied
	}
	return codes.Internal
}

// httpCode maps a non-200 HTTP status without grpc-status to a gRPC code
// (the gRPC HTTP/2 spec's table).
func httpCode(status int) codes.Code {
	switch status {
	case 400:
		return codes.Internal
	case 401:
		return codes.Unauthenticated
	case 403:
		return codes.PermissionDenied
	case 404:
		return codes.Unimplemented
	case 429, 502, 503, 504:
		return codes.Unavailable
	}
	return codes.Unknown
}
