package loadgen

import (
	"strings"

	"github.com/loadcap/loadcap/loadgen/httpc"
	"github.com/loadcap/loadcap/scenarios"
)

// tmpl is a template with its rendering precomputed when it has no
// generators.
type tmpl struct {
	t      *scenarios.Template
	static []byte // rendered once when t.Static()
}

func newTmpl(t *scenarios.Template, st *scenarios.State) tmpl {
	if t == nil {
		return tmpl{}
	}
	x := tmpl{t: t}
	if t.Static() {
		x.static = t.AppendTo(nil, st)
	}
	return x
}

// appendTo renders into dst; static templates cost a copy.
func (x *tmpl) appendTo(dst []byte, st *scenarios.State) []byte {
	if x.static != nil || x.t == nil {
		return append(dst, x.static...)
	}
	return x.t.AppendTo(dst, st)
}

type hdrTmpl struct {
	name string
	val  tmpl
}

// entry is one request of a scenario's mix, ready to render.
type entry struct {
	name    int // index into the recorder's series
	method  string
	scheme  string
	host    string
	path    tmpl
	headers []hdrTmpl
	body    tmpl
	hasBody bool
	grpc    *grpcEntry // set for a gRPC call (the HTTP fields are unused)
}

// mix is a scenario's requests ready to render, by index into File.Requests;
// the scenario's Pick chooses among them by weight.
type mix struct {
	sc      *scenarios.Scenario
	entries []entry // by File.Requests index; only the scenario's are set
}

func newMix(f *scenarios.File, sc *scenarios.Scenario, index map[Series]int) mix {
	m := mix{sc: sc, entries: make([]entry, len(f.Requests))}
	st := f.NewState(0)
	for _, i := range sc.Requests {
		r := &f.Requests[i]
		if r.GRPC != nil {
			// addGRPC completes it.
			m.entries[i] = entry{name: index[Series{Scenario: sc.Name, Name: r.Name}]}
			continue
		}
		e := entry{
			name:    index[Series{Scenario: sc.Name, Name: r.Name}],
			method:  r.Method,
			scheme:  r.Scheme,
			host:    r.Host,
			path:    newTmpl(r.Path, st),
			hasBody: r.Body != nil,
			body:    newTmpl(r.Body, st),
		}
		// Default headers first, unless the request sets the same name.
		for _, h := range f.Headers {
			if !hasHeader(r.Headers, h.Name) {
				e.headers = append(e.headers, hdrTmpl{h.Name, newTmpl(h.Value, st)})
			}
		}
		for _, h := range r.Headers {
			e.headers = append(e.headers, hdrTmpl{h.Name, newTmpl(h.Value, st)})
		}
		m.entries[i] = e
	}
	return m
}

func hasHeader(hs []scenarios.Header, name string) bool {
	for _, h := range hs {
		if strings.EqualFold(h.Name, name) {
			return true
		}
	}
	return false
}

// pick chooses the next request by weight, with the VU's generator state.
func (m *mix) pick(st *scenarios.State) *entry { return &m.entries[m.sc.Pick(st)] }

// renderer turns a mix entry into an httpc.Request in buffers it reuses, so
// that rendering allocates nothing once warm.
type renderer struct {
	st   *scenarios.State
	buf  []byte
	offs []int
	hdr  []httpc.Header
	req  httpc.Request
}

func (rd *renderer) render(e *entry) *httpc.Request {
	rd.st.Next()
	r := &rd.req
	r.Method, r.Scheme, r.Host = e.method, e.scheme, e.host
	buf := rd.buf[:0]
	offs := rd.offs[:0]
	buf = e.path.appendTo(buf, rd.st)
	offs = append(offs, len(buf))
	for i := range e.headers {
		buf = e.headers[i].val.appendTo(buf, rd.st)
		offs = append(offs, len(buf))
	}
	if e.hasBody {
		buf = e.body.appendTo(buf, rd.st)
	}
	// Slice only after all appends: buf may have moved while growing.
	r.Target = buf[:offs[0]]
	hs := rd.hdr[:0]
	for i := range e.headers {
		hs = append(hs, httpc.Header{Name: e.headers[i].name, Value: buf[offs[i]:offs[i+1]]})
	}
	r.Header, rd.hdr = hs, hs
	if e.hasBody {
		r.Body = buf[offs[len(offs)-1]:]
	} else {
		r.Body = nil
	}
	rd.buf, rd.offs = buf, offs
	return r
}
