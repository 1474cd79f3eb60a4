package capture

import (
	"encoding/json"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
)

// Rewriter applies a rule file (see the package documentation) to records
// before they are replayed. It is compiled once by ParseRules or LoadRules,
// is immutable apart from its counters, and is safe for concurrent use.
type Rewriter struct {
	host   string
	scheme string
	hosts  []Header // recorded host → new host
	paths  []pathRule
	drops  []dropRule
	ids    []idRule

	pathIDs, queryIDs, headerIDs, fieldIDs []int     // indexes into ids
	fields                                 *pathNode // leaves index ids

	dropH []string
	setH  []Header
	addH  []Header

	droppedRoute, droppedID, droppedInvalid atomic.Int64
}

type pathRule struct {
	re   *regexp.Regexp
	repl string
}

type dropRule struct {
	method string // "" = any
	re     *regexp.Regexp
}

type idWhere uint8

const (
	idPath idWhere = iota
	idQuery
	idHeader
	idField
)

// idRule maps IDs found in one place into the shadow ID space.
type idRule struct {
	where  idWhere
	name   string         // query parameter, header or field path
	re     *regexp.Regexp // the path pattern, or where the ID is in a value (nil: the whole value)
	group  int            // the submatch holding the ID
	offset int64          // offset mode: id → offset + copy×stride + id
	stride int64
	prefix string // prefix mode (offset 0): id → prefix+id, with the copy in the prefix
}

// RewriteStats counts the records a Rewriter dropped, by reason.
type RewriteStats struct {
	DroppedRoute   int64 // matched a drop rule
	DroppedID      int64 // an ID could not be mapped: not a number in offset mode, ≥ stride, or overflow
	DroppedInvalid int64 // a path rewrite produced a path a request cannot carry (no leading /, a space, a control byte)
}

// Stats returns the drop counters so far.
func (rw *Rewriter) Stats() RewriteStats {
	return RewriteStats{
		DroppedRoute:   rw.droppedRoute.Load(),
		DroppedID:      rw.droppedID.Load(),
		DroppedInvalid: rw.droppedInvalid.Load(),
	}
}

// Apply rewrites rec for amplification copy number copy (0 for the first
// or only copy) and reports whether the record is to be sent. Steps, in
// order: drop rules (on the recorded method and path), ID remapping, path
// rewrites (a replacement may add query parameters: "/new?v=1"), host and
// scheme, header drop/set/add. A record is dropped
// (keep=false) when a drop rule matches, when an ID cannot be mapped into
// the copy's shadow range (it is never sent with a real ID), or when a
// path rewrite makes it invalid; Stats counts each. copy must be ≥ 0.
//
// Apply replaces rec's strings and slices rather than writing into them, so
// rec may be a shallow copy of a record shared with other goroutines. A nil
// Rewriter keeps every record unchanged.
func (rw *Rewriter) Apply(rec *Record, copy int) (keep bool) {
	if rw == nil {
		return true
	}
	if copy < 0 {
		rw.droppedID.Add(1)
		return false
	}
	origPath, origQuery := splitQuery(rec.Path)
	path, query := origPath, origQuery
	for i := range rw.drops {
		d := &rw.drops[i]
		if (d.method == "" || strings.EqualFold(d.method, rec.Method)) && (d.re == nil || d.re.MatchString(path)) {
			rw.droppedRoute.Add(1)
			return false
		}
	}
	if !rw.remapIDs(rec, &path, &query, copy) {
		rw.droppedID.Add(1)
		return false
	}
	newPath := path
	for i := range rw.paths {
		p := &rw.paths[i]
		if p.re.MatchString(newPath) {
			newPath = p.re.ReplaceAllString(newPath, p.repl)
		}
	}
	if newPath != path {
		if i := strings.IndexByte(newPath, '?'); i >= 0 {
			// A replacement may add query parameters: they go first.
			extra := newPath[i+1:]
			newPath = newPath[:i]
			switch {
			case query == "":
				query = extra
			case extra != "":
				query = extra + "&" + query
			}
		}
		if newPath == "" || newPath[0] != '/' || !cleanPath(newPath) || !cleanPath(query) {
			rw.droppedInvalid.Add(1)
			return false
		}
		path = newPath
	}
	if path != origPath || query != origQuery {
		rec.Path = joinQuery(path, query)
	}
	rw.retarget(rec)
	if len(rw.dropH)+len(rw.setH)+len(rw.addH) > 0 || len(rw.headerIDs) > 0 {
		if !rw.headers(rec, copy) {
			rw.droppedID.Add(1)
			return false
		}
	}
	return true
}

func (rw *Rewriter) retarget(rec *Record) {
	mapped := false
	for _, h := range rw.hosts {
		if strings.EqualFold(h.Name, rec.Host) {
			rec.Host, mapped = h.Value, true
			break
		}
	}
	if !mapped && rw.host != "" {
		rec.Host = rw.host
	}
	if rw.scheme != "" {
		rec.Scheme = rw.scheme
	}
}

// headers maps header IDs and applies drop, set and add, building one new
// slice; false means an ID could not be mapped.
func (rw *Rewriter) headers(rec *Record, k int) bool {
	ops := len(rw.dropH)+len(rw.setH)+len(rw.addH) > 0
	var out []Header
	if ops {
		out = make([]Header, 0, len(rec.Header)+len(rw.setH)+len(rw.addH))
	}
	for i, h := range rec.Header {
		if ops && rw.droppedHeader(h.Name) {
			continue
		}
		v := h.Value
		for _, j := range rw.headerIDs {
			r := &rw.ids[j]
			if !strings.EqualFold(r.name, h.Name) {
				continue
			}
			nv, ok := r.mapValue(v, k)
			if !ok {
				return false
			}
			v = nv
		}
		if out == nil && v != h.Value {
			out = make([]Header, i, len(rec.Header))
			copy(out, rec.Header[:i])
		}
		if out != nil {
			out = append(out, Header{Name: h.Name, Value: v})
		}
	}
	if out == nil {
		return true // no header ID found, and no header rules
	}
	out = append(out, rw.setH...)
	out = append(out, rw.addH...)
	if len(out) == 0 {
		out = nil
	}
	rec.Header = out
	return true
}

// droppedHeader: a header dropped, or replaced by a set.
func (rw *Rewriter) droppedHeader(name string) bool {
	for _, d := range rw.dropH {
		if strings.EqualFold(d, name) {
			return true
		}
	}
	for _, s := range rw.setH {
		if strings.EqualFold(s.Name, name) {
			return true
		}
	}
	return false
}

// remapIDs applies the ID rules; false means an ID could not be mapped.
func (rw *Rewriter) remapIDs(rec *Record, path, query *string, k int) bool {
	for _, i := range rw.pathIDs {
		p, ok := rw.ids[i].replaceIn(*path, k)
		if !ok {
			return false
		}
		*path = p
	}
	if len(rw.queryIDs) > 0 && *query != "" {
		q, ok := editParams(*query, func(name, raw string) (string, paramAct) {
			act := paramKeep
			for _, i := range rw.queryIDs {
				r := &rw.ids[i]
				if r.name != name {
					continue
				}
				v, ok := r.mapValue(raw, k)
				if !ok {
					return "", paramFail
				}
				raw, act = v, paramSet
			}
			return raw, act
		})
		if !ok {
			return false
		}
		*query = q
	}
	if rw.fields != nil && len(rec.Body) > 0 && looksJSON(rec.Body) {
		if !json.Valid(rec.Body) {
			return true // not JSON after all: no field to map
		}
		out, changed, ok := editJSON(rec.Body, rw.fields, true, func(n *pathNode, val, dst []byte) ([]byte, leafAct) {
			return rw.ids[n.leaf].mapJSON(dst, val, k)
		})
		if !ok {
			return false
		}
		if changed {
			rec.Body = out
		}
	}
	return true
}

// mapID appends the shadow form of id for copy k.
func (r *idRule) mapID(dst []byte, id string, k int) ([]byte, bool) {
	if r.prefix != "" {
		if k == 0 {
			return append(append(dst, r.prefix...), id...), true
		}
		// prefix "shadow-" becomes "shadow1-", "shadow2-", ...: the copy
		// number goes before the last (non-digit) character, which keeps
		// the copies' prefixes from being prefixes of one another.
		p := r.prefix
		dst = append(dst, p[:len(p)-1]...)
		dst = strconv.AppendInt(dst, int64(k), 10)
		dst = append(dst, p[len(p)-1])
		return append(dst, id...), true
	}
	if id == "" || len(id) > 19 {
		return dst, false
	}
	var n int64
	for i := 0; i < len(id); i++ {
		d := id[i] - '0'
		if d > 9 {
			return dst, false
		}
		n = n*10 + int64(d)
	}
	if n < 0 || n >= r.stride {
		return dst, false
	}
	if int64(k) > (math.MaxInt64-r.offset)/r.stride {
		return dst, false
	}
	base := r.offset + int64(k)*r.stride
	if n > math.MaxInt64-base {
		return dst, false
	}
	return strconv.AppendInt(dst, base+n, 10), true
}

// replaceIn maps every ID r.re finds in s.
func (r *idRule) replaceIn(s string, k int) (string, bool) {
	locs := r.re.FindAllStringSubmatchIndex(s, -1)
	if locs == nil {
		return s, true
	}
	var buf [128]byte
	b := buf[:0]
	last := 0
	for _, m := range locs {
		a, e := m[2*r.group], m[2*r.group+1]
		if a < 0 || a < last {
			continue
		}
		b = append(b, s[last:a]...)
		var ok bool
		if b, ok = r.mapID(b, s[a:e], k); !ok {
			return "", false
		}
		last = e
	}
	if last == 0 {
		return s, true
	}
	return string(append(b, s[last:]...)), true
}

// mapValue maps a query, header or field value: the whole value, or what
// r.re finds in it.
func (r *idRule) mapValue(v string, k int) (string, bool) {
	if r.re != nil {
		return r.replaceIn(v, k)
	}
	var buf [64]byte
	b, ok := r.mapID(buf[:0], v, k)
	return string(b), ok
}

// mapJSON maps a JSON value at a field rule: a number stays a number in
// offset mode and becomes a string in prefix mode; a string stays a string;
// true, false, null, objects and arrays are left alone.
func (r *idRule) mapJSON(dst, val []byte, k int) ([]byte, leafAct) {
	switch val[0] {
	case '"':
		var s string
		if json.Unmarshal(val, &s) != nil {
			return dst, leafFail
		}
		v, ok := r.mapValue(s, k)
		if !ok {
			return dst, leafFail
		}
		if v == s {
			return dst, leafKeep
		}
		return appendJSONString(dst, v), leafReplace
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		v, ok := r.mapValue(string(val), k)
		if !ok {
			return dst, leafFail
		}
		if r.prefix != "" {
			return appendJSONString(dst, v), leafReplace
		}
		if !json.Valid([]byte(v)) {
			return dst, leafFail
		}
		return append(dst, v...), leafReplace
	}
	return dst, leafKeep
}

// Hosts lists every host the rules send requests to (host: and the
// values of hosts:), for allow lists.
func (rw *Rewriter) Hosts() []string {
	var out []string
	if rw.host != "" {
		out = append(out, rw.host)
	}
	for _, h := range rw.hosts {
		out = append(out, h.Value)
	}
	return out
}
