package loadgen

import (
	"strings"
	"time"

	"github.com/loadcap/loadcap/loadgen/httpc"
	"github.com/loadcap/loadcap/scenarios"
)

// ReplayItem is one recorded request, ready to send. The engine does not
// change it; a source may reuse it once Released.
type ReplayItem struct {
	// At is the arrival's offset from the scenario's start in a timed
	// replay (recorded time divided by speed); unused at a given rate.
	At time.Duration
	// Request indexes File.Requests: the route the request is recorded
	// under (scenarios.File.SetReplayRequests).
	Request int
	Method  string
	Scheme  string // "http" or "https"
	Host    string // authority with the port
	Target  []byte // path and query
	Header  []httpc.Header
	Body    []byte
}

// ReplaySource hands out a replay's requests in the order they are sent.
// Next and Release must be safe for concurrent use. Next reports false when
// a timed recording has ended or the source failed (its error is the
// source's to report); a source replaying at a rate cycles the recording.
type ReplaySource interface {
	Next() (*ReplayItem, bool)
	// Release returns an item the engine has finished with (sent or
	// dropped).
	Release(*ReplayItem)
}

// WithReplay supplies the requests of a file with a replay: section.
func WithReplay(src ReplaySource) Option {
	return func(o *options) { o.replay = src }
}

// arrival is one open-model arrival: its intended send time and, when
// replaying, its recorded request.
type arrival struct {
	t    time.Time
	item *ReplayItem
}

// replaySource is the source a scenario takes its requests from, nil when
// it sends its own mix.
func (e *Engine) replaySource() ReplaySource {
	if e.f.Replay == nil {
		return nil
	}
	return e.o.replay
}

func (s *scenarioRun) release(it *ReplayItem) {
	if it != nil {
		s.e.o.replay.Release(it)
	}
}

// replay points the renderer's request at a recorded one, with the file's
// default headers (e's, static for a replay) where the recording has none
// of the name. The shadow tag is the file's, never the recording's.
func (rd *renderer) replay(it *ReplayItem, e *entry) *httpc.Request {
	r := &rd.req
	r.Method, r.Scheme, r.Host = it.Method, it.Scheme, it.Host
	r.Target, r.Body = it.Target, it.Body
	hs := rd.hdr[:0]
	for _, h := range it.Header {
		if !strings.EqualFold(h.Name, scenarios.ShadowHeader) {
			hs = append(hs, h)
		}
	}
	n := len(hs)
	// Render the default headers that have generators first, slice after:
	// the buffer may move while it grows.
	rd.st.Next()
	buf, offs := rd.buf[:0], rd.offs[:0]
	for i := range e.headers {
		buf = e.headers[i].val.appendTo(buf, rd.st)
		offs = append(offs, len(buf))
	}
	from := 0
	for i := range e.headers {
		h := &e.headers[i]
		if !has(hs[:n], h.name) || strings.EqualFold(h.name, scenarios.ShadowHeader) {
			hs = append(hs, httpc.Header{Name: h.name, Value: buf[from:offs[i]]})
		}
		from = offs[i]
	}
	r.Header, rd.hdr, rd.buf, rd.offs = hs, hs, buf, offs
	return r
}

func has(hs []httpc.Header, name string) bool {
	for _, h := range hs {
		if strings.EqualFold(h.Name, name) {
			return true
		}
	}
	return false
}
