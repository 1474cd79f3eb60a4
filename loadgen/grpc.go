package loadgen

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/loadcap/loadcap/loadgen/grpcc"
	"github.com/loadcap/loadcap/loadgen/httpc"
	"github.com/loadcap/loadcap/scenarios"
)

// grpcTarget is what gRPC requests to one target share: a pool of
// connections.
type grpcTarget struct {
	key  grpcKey
	pool *grpcc.Pool
	idx  int // index in grpcTargets.list: a VU's caller for it
}

type grpcKey struct {
	target, authority string
	tls               bool
	conns             int
	grpcGo            bool
}

// grpcTargets holds an engine's connection pools, one per target.
type grpcTargets struct {
	list []*grpcTarget
	by   map[grpcKey]*grpcTarget
}

func (g *grpcTargets) close() {
	if g == nil {
		return
	}
	for _, t := range g.list {
		t.pool.Close()
	}
}

// hasGRPC reports whether any request of f is a gRPC call.
func hasGRPC(f *scenarios.File) bool {
	for i := range f.Requests {
		if f.Requests[i].GRPC != nil {
			return true
		}
	}
	return false
}

// reflectionTimeout bounds the schema lookups New makes.
const reflectionTimeout = 10 * time.Second

// prepareGRPC resolves every reflection: true call of f (once per target
// and service, before the run) and dials the connection pools: per target,
// the request's connections:, else min(VUs, grpcc.DefaultMaxConnections).
func prepareGRPC(f *scenarios.File, vus int) (*grpcTargets, error) {
	if !hasGRPC(f) {
		return nil, nil
	}
	if f.Replay != nil {
		return nil, fmt.Errorf("%s: replay is HTTP-only: gRPC requests can't be replayed", f.Path)
	}
	type svcKey struct {
		k   grpcKey
		svc string
	}
	found := map[svcKey]protoreflect.ServiceDescriptor{}
	var errs scenarios.Errors
	for i := range f.Requests {
		g := f.Requests[i].GRPC
		if g == nil || !g.Reflection || g.Method != nil {
			continue
		}
		k := svcKey{grpcKey{target: g.Target, authority: g.Authority, tls: g.TLS}, g.ServiceName()}
		sd, ok := found[k]
		if !ok {
			ctx, cancel := context.WithTimeout(context.Background(), min(reflectionTimeout, f.Timeout))
			var err error
			sd, err = grpcc.Reflect(ctx, grpcOptions(f, g, 1), g.ServiceName())
			cancel()
			if err != nil && !errors.Is(err, grpcc.ErrNoService) {
				return nil, fmt.Errorf("%s: request %s: server reflection at %s: %w", f.Path, f.Requests[i].Name, g.Target, err)
			}
			found[k] = sd
		}
		err := g.Resolve(func(name protoreflect.FullName) protoreflect.ServiceDescriptor {
			if sd == nil || sd.FullName() != name {
				return nil
			}
			return sd
		})
		var es scenarios.Errors
		if errors.As(err, &es) {
			errs = append(errs, es...)
		} else if err != nil {
			return nil, err
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	ts := &grpcTargets{by: map[grpcKey]*grpcTarget{}}
	for i := range f.Requests {
		g := f.Requests[i].GRPC
		if g == nil {
			continue
		}
		k := grpcKey{target: g.Target, authority: g.Authority, tls: g.TLS, conns: g.Connections, grpcGo: g.GRPCGo}
		if k.conns == 0 {
			k.conns = max(1, min(vus, grpcc.DefaultMaxConnections))
		}
		if _, ok := ts.by[k]; ok {
			continue
		}
		p, err := grpcc.Dial(grpcOptions(f, g, k.conns))
		if err != nil {
			ts.close()
			return nil, err
		}
		t := &grpcTarget{key: k, pool: p, idx: len(ts.list)}
		ts.list = append(ts.list, t)
		ts.by[k] = t
	}
	return ts, nil
}

func grpcOptions(f *scenarios.File, g *scenarios.GRPCCall, conns int) grpcc.Options {
	o := grpcc.Options{Target: g.Target, Authority: g.Authority, Connections: conns}
	if g.GRPCGo {
		o.Transport = grpcc.TransportGRPCGo
	}
	if g.TLS {
		o.TLS = &tls.Config{}
		if f.Insecure {
			o.TLS = insecureTLS()
		}
	}
	return o
}

// grpcEntry is a gRPC request of the mix, ready to send.
type grpcEntry struct {
	target  *grpcTarget
	method  string // "/pkg.Service/Method"
	stream  bool
	in      protoreflect.MessageDescriptor
	static  *grpcc.Payload // the message, marshalled once, when it has no generators
	msg     tmpl
	md      []hdrTmpl       // metadata, the shadow tag included
	mdFixed metadata.MD     // md when no value has generators; shared, read-only
	mdPrep  *grpcc.Metadata // mdFixed, encoded once for unary calls
	timeout time.Duration
	idx     int // index among the mix's gRPC entries (a VU's marshaler)
}

// newGRPCEntry prepares r (a gRPC request) for the mix. The file's shadow
// tag headers travel as metadata with lower-case keys (gRPC's rule),
// unless the request sets the same key.
func newGRPCEntry(f *scenarios.File, r *scenarios.Request, ts *grpcTargets, st *scenarios.State, idx int) (*grpcEntry, error) {
	g := r.GRPC
	if g.Method == nil {
		return nil, fmt.Errorf("%s: request %s: the method's schema is not resolved", f.Path, r.Name)
	}
	conns := g.Connections
	var t *grpcTarget
	for _, c := range ts.list {
		if c.key.target == g.Target && c.key.authority == g.Authority && c.key.tls == g.TLS && c.key.grpcGo == g.GRPCGo && (conns == 0 || c.key.conns == conns) {
			t = c
			break
		}
	}
	if t == nil {
		return nil, fmt.Errorf("%s: request %s: no connection pool for %s", f.Path, r.Name, g.Target)
	}
	e := &grpcEntry{
		target:  t,
		method:  g.FullMethod,
		stream:  g.Streaming(),
		in:      g.Method.Input(),
		msg:     newTmpl(g.Message, st),
		timeout: g.Timeout,
		idx:     idx,
	}
	if e.timeout <= 0 {
		e.timeout = f.Timeout
	}
	if e.timeout <= 0 {
		e.timeout = scenarios.DefaultTimeout
	}
	if g.Message.Static() {
		b, err := grpcc.Marshal(e.in, e.msg.static)
		if err != nil {
			return nil, fmt.Errorf("%s: request %s: %w", f.Path, r.Name, err)
		}
		e.static = grpcc.NewPayload(b)
	}
	for _, h := range f.Headers {
		name := strings.ToLower(h.Name)
		if name != strings.ToLower(scenarios.ShadowHeader) && name != "baggage" {
			continue // other default headers are HTTP's
		}
		if !hasHeader(g.Metadata, name) {
			e.md = append(e.md, hdrTmpl{name, newTmpl(h.Value, st)})
		}
	}
	for _, h := range g.Metadata {
		e.md = append(e.md, hdrTmpl{h.Name, newTmpl(h.Value, st)})
	}
	fixed := true
	for _, h := range e.md {
		fixed = fixed && (h.val.t == nil || h.val.t.Static())
	}
	if fixed && len(e.md) > 0 {
		e.mdFixed = metadata.MD{}
		for _, h := range e.md {
			e.mdFixed[h.name] = append(e.mdFixed[h.name], string(h.val.static))
		}
		e.mdPrep = grpcc.NewMetadata(e.mdFixed)
	}
	return e, nil
}

// vuGRPC is a VU's gRPC state: its callers (one per target), marshalers
// and buffers. Its context ends when the VU is abandoned at a hard stop.
type vuGRPC struct {
	ctx     context.Context
	callers []*grpcc.Caller
	marsh   []*grpcc.Marshaler
	js, buf []byte
	payload grpcc.Payload
	res     grpcc.Result
}

// doGRPC makes one gRPC call; see do.
func (v *vu) doGRPC(intended time.Time, ent *entry) {
	e := v.s.e
	ge := ent.grpc
	g := v.g
	st := v.rd.st
	st.Next()
	pl := ge.static
	var marshalErr error
	if pl == nil {
		g.js = ge.msg.appendTo(g.js[:0], st)
		for len(g.marsh) <= ge.idx {
			g.marsh = append(g.marsh, nil)
		}
		m := g.marsh[ge.idx]
		if m == nil {
			m = grpcc.NewMarshaler(ge.in)
			g.marsh[ge.idx] = m
		}
		// g.buf is nil after a failed call: grpc-go may still hold the
		// last payload then, so it is not overwritten.
		b, err := m.Marshal(g.buf[:0], g.js)
		g.buf, marshalErr = b, err
		g.payload.Set(b)
		pl = &g.payload
	}
	ctx := g.ctx
	if ge.mdFixed != nil && ge.stream {
		ctx = metadata.NewOutgoingContext(ctx, ge.mdFixed)
	} else if ge.mdFixed == nil && len(ge.md) > 0 {
		ctx = metadata.NewOutgoingContext(ctx, v.renderMD(ge))
	}
	ctx, cancel := context.WithTimeout(ctx, ge.timeout)
	for len(g.callers) <= ge.target.idx {
		g.callers = append(g.callers, nil)
	}
	c := g.callers[ge.target.idx]
	if c == nil {
		c = ge.target.pool.Caller(v.id)
		g.callers[ge.target.idx] = c
	}
	sent := time.Now()
	e.rec.Sent(ent.name, v.id, sent)
	if intended.IsZero() {
		intended = sent
	}
	g.res = grpcc.Result{}
	switch {
	case marshalErr != nil:
		// The message did not fit its schema with these values: a failed
		// request, never sent.
	case ge.stream:
		c.ServerStream(ctx, ge.method, pl, &g.res)
	case ge.mdPrep != nil:
		c.UnaryMD(ctx, ge.method, ge.mdPrep, pl, &g.res)
	default:
		c.Unary(ctx, ge.method, pl, &g.res)
	}
	cancel()
	end := time.Now()
	if v.s.hardStop.Load() {
		return // abandoned at the hard stop: counted as in flight at stop
	}
	if g.res.Code != codes.OK && ge.static == nil {
		g.buf = nil
	}
	o := &v.out
	*o = Outcome{
		Name:      ent.name,
		Latency:   end.Sub(intended),
		Service:   end.Sub(sent),
		End:       end,
		BytesSent: g.res.BytesSent,
		BytesRecv: g.res.BytesRecv,
		Class:     grpcClass(g.res.Code),
	}
	if marshalErr != nil {
		o.Class = uint8(httpc.ClassOther)
		if e.rec.WantSample(ent.name, o.Class) {
			o.Err = fmt.Sprintf("%s: %v", ge.method, marshalErr)
		}
	} else if o.Class != 0 && e.rec.WantSample(ent.name, o.Class) {
		o.Err = fmt.Sprintf("%s: %v", ge.method, g.res.Err)
	}
	e.rec.Record(v.id, o)
}

// renderMD renders metadata with generators (allocates: metadata.MD is a
// map of strings).
func (v *vu) renderMD(ge *grpcEntry) metadata.MD {
	md := make(metadata.MD, len(ge.md))
	buf := v.rd.buf[:0]
	for _, h := range ge.md {
		buf = h.val.appendTo(buf[:0], v.rd.st)
		md[h.name] = append(md[h.name], string(buf))
	}
	v.rd.buf = buf
	return md
}

// addGRPC completes the mix's gRPC entries with their connection pools and
// prebuilt messages.
func (m *mix) addGRPC(f *scenarios.File, ts *grpcTargets) error {
	st := f.NewState(0)
	n := 0
	for _, i := range m.sc.Requests {
		r := &f.Requests[i]
		if r.GRPC == nil {
			continue
		}
		ge, err := newGRPCEntry(f, r, ts, st, n)
		if err != nil {
			return err
		}
		m.entries[i].grpc = ge
		n++
	}
	return nil
}
