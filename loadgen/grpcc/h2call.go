package grpcc

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
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

// h2slot is one connection of a pool on our transport: the current
// connection, replaced after it fails or goes away. One dial runs at a
// time, in its own goroutine, bounded by h2dialTimeout: callers wait for it
// only as long as their contexts allow. Failed dials back off (100 ms
// doubling to 2 s); calls meanwhile fail fast with the dial's error, as
// grpc-go's do in TRANSIENT_FAILURE.
type h2slot struct {
	p   *Pool
	cur atomic.Pointer[h2conn]

	mu      sync.Mutex
	dialing chan struct{} // closed when the dial under way ends
	retryAt time.Time
	backoff time.Duration
	lastErr error
}

const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 2 * time.Second
)

// conn returns a usable connection, dialling one if needed.
func (sl *h2slot) conn(ctx context.Context) (*h2conn, error) {
	for range 2 {
		if c := sl.cur.Load(); c != nil && c.usable() {
			return c, nil
		}
		sl.mu.Lock()
		if c := sl.cur.Load(); c != nil && c.usable() {
			sl.mu.Unlock()
			return c, nil
		}
		if sl.p.ctx.Err() != nil {
			sl.mu.Unlock()
			return nil, errPoolClosed
		}
		if sl.dialing == nil {
			if time.Now().Before(sl.retryAt) {
				err := sl.lastErr
				sl.mu.Unlock()
				return nil, err
			}
			sl.dialing = make(chan struct{})
			go sl.dial(sl.dialing)
		}
		dialing := sl.dialing
		sl.mu.Unlock()
		select {
		case <-dialing:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		sl.mu.Lock()
		err := sl.lastErr
		sl.mu.Unlock()
		if err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("connection to %s lost as it was made", sl.p.h2o.target)
}

// dial makes the slot's next connection and closes done.
func (sl *h2slot) dial(done chan struct{}) {
	ctx, cancel := context.WithTimeout(sl.p.ctx, h2dialTimeout)
	c, err := dialH2(ctx, &sl.p.h2o)
	cancel()
	sl.mu.Lock()
	if err != nil {
		sl.backoff = min(max(2*sl.backoff, minBackoff), maxBackoff)
		sl.retryAt = time.Now().Add(sl.backoff)
		sl.lastErr = fmt.Errorf("connect to %s: %w", sl.p.h2o.target, err)
	} else {
		sl.backoff, sl.lastErr = 0, nil
		sl.cur.Store(c)
	}
	closed := sl.p.ctx.Err() != nil
	sl.dialing = nil
	sl.mu.Unlock()
	close(done)
	if closed && c != nil {
		c.close(errPoolClosed)
	}
}

func (sl *h2slot) close() {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if c := sl.cur.Load(); c != nil {
		c.close(errPoolClosed)
	}
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
	for attempt := 0; ; attempt++ {
		conn, err := c.slot.conn(ctx)
		if err != nil {
			if ctx.Err() != nil {
				ctxResult(ctx.Err(), res)
				return
			}
			fail(codes.Unavailable, err.Error(), res)
			return
		}
		c.s.reset()
		err = conn.roundTrip(ctx, &c.s, buf, payload.b)
		switch {
		case err == errRetry && attempt < 3:
			continue // nothing sent: on the next connection
		case err == errRetry:
			fail(codes.Unavailable, "connection not usable", res)
		case err != nil:
			ctxResult(err, res)
		default:
			streamResult(&c.s, res)
			if res.Code == codes.Canceled && c.s.rst {
				// As grpc-go: a server's CANCEL after our deadline passed
				// is that deadline.
				if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
					fail(codes.DeadlineExceeded, "context deadline exceeded (stream reset by the server)", res)
				}
			}
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

// streamResult turns an ended stream into the call's result.
func streamResult(s *h2stream, res *Result) {
	res.BytesRecv, res.Messages = s.nrecv, s.msgs
	switch {
	case s.connErr != nil:
		code := codes.Unavailable
		if errors.Is(s.connErr, context.Canceled) {
			code = codes.Canceled
		}
		fail(code, "connection: "+s.connErr.Error(), res)
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
	case s.rst:
		fail(h2code(s.rstCode), fmt.Sprintf("stream reset by the server: %v", s.rstCode), res)
	case s.httpStatus != 0 && s.httpStatus != 200:
		fail(httpCode(s.httpStatus), fmt.Sprintf("unexpected HTTP status %d", s.httpStatus), res)
	case s.httpStatus != 0 && !s.ctOK:
		fail(codes.Unknown, "response content-type is not application/grpc", res)
	default:
		fail(codes.Internal, "the server ended the stream without grpc-status", res)
	}
}
