package scenarios

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
)

// Template is a compiled string with generators ({{seq}}, {{randInt 1 9}},
// {{users.id}}, ...). It is immutable after compilation except for its {{seq}}
// counters, which are atomic: AppendTo is safe for concurrent use by
// different States, and allocates nothing beyond growing dst.
type Template struct {
	src   string
	parts []part
	mode  escapeMode
}

// escapeMode says how generated text is made safe for where it goes.
type escapeMode uint8

const (
	// rawMode (bodies) appends generated text unchanged.
	rawMode escapeMode = iota
	// urlMode (paths and queries) percent-encodes the bytes a URL may not
	// hold (controls, space, non-ASCII, "#<>\^`{|}); reserved characters such
	// as / ? & = are kept so a column may hold a whole path.
	urlMode
	// headerMode replaces control characters (except tab) by spaces, so a
	// value can never end a header line early.
	headerMode
	// jsonMode (gRPC messages) escapes generated text as the inside of a
	// JSON string (" \ and control characters), so a CSV value can never
	// break the message's JSON.
	jsonMode
)

type partKind uint8

const (
	partLit partKind = iota
	partSeq
	partRandInt
	partPick
	partUUID
	partColumn
)

type part struct {
	kind    partKind
	lit     string         // partLit
	seq     *atomic.Uint64 // partSeq: run-wide counter of this occurrence
	start   int64          // partSeq: first value; partRandInt: MIN
	span    uint64         // partRandInt: MAX-MIN+1, 0 meaning all 2^64 values
	choices []string       // partPick, escaped for the template's mode
	src     int            // partColumn: index in File.Data
	col     int            // partColumn: column index
}

// Static reports whether the template has no generators, so the engine may
// render it once.
func (t *Template) Static() bool {
	for i := range t.parts {
		if t.parts[i].kind != partLit {
			return false
		}
	}
	return true
}

// String returns the template's source text.
func (t *Template) String() string { return t.src }

// AppendTo renders the template for one request of s's VU and appends it to
// dst. s may be nil only for a Static template. Column values come from the
// rows s has chosen since its last Next, so all references to one data
// source within a request agree.
func (t *Template) AppendTo(dst []byte, s *State) []byte {
	for i := range t.parts {
		p := &t.parts[i]
		switch p.kind {
		case partLit:
			dst = append(dst, p.lit...)
		case partSeq:
			n := p.seq.Add(1) - 1
			dst = strconv.AppendInt(dst, p.start+int64(n), 10)
		case partRandInt:
			var v uint64
			if p.span == 0 {
				v = s.rng.Uint64()
			} else {
				v = s.rng.Uint64N(p.span)
			}
			dst = strconv.AppendInt(dst, p.start+int64(v), 10)
		case partPick:
			dst = append(dst, p.choices[s.rng.IntN(len(p.choices))]...)
		case partUUID:
			dst = appendUUID(dst, s.rng)
		case partColumn:
			row := s.row(p.src)
			if p.col < len(row) {
				start := len(dst)
				dst = append(dst, row[p.col]...)
				dst = escapeTail(dst, start, t.mode)
			}
		}
	}
	return dst
}

const hexDigits = "0123456789abcdef"

// appendUUID appends a random (version 4) UUID in its 36-character form.
func appendUUID(dst []byte, rng *rand.Rand) []byte {
	var b [16]byte
	hi, lo := rng.Uint64(), rng.Uint64()
	for i := 0; i < 8; i++ {
		b[i] = byte(hi >> (56 - 8*i))
		b[8+i] = byte(lo >> (56 - 8*i))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	j := 0
	for i := 0; i < 16; i++ {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out[j] = '-'
			j++
		}
		out[j] = hexDigits[b[i]>>4]
		out[j+1] = hexDigits[b[i]&0x0f]
		j += 2
	}
	return append(dst, out[:]...)
}

// urlUnsafe reports whether c may not appear as is in a request target.
func urlUnsafe(c byte) bool {
	if c <= ' ' || c >= 0x7f {
		return true
	}
	switch c {
	case '"', '#', '<', '>', '\\', '^', '`', '{', '|', '}':
		return true
	}
	return false
}

// escapeTail makes dst[start:] safe for mode, in place.
func escapeTail(dst []byte, start int, mode escapeMode) []byte {
	switch mode {
	case headerMode:
		for i := start; i < len(dst); i++ {
			if c := dst[i]; (c < ' ' && c != '\t') || c == 0x7f {
				dst[i] = ' '
			}
		}
	case jsonMode:
		return escapeJSONTail(dst, start)
	case urlMode:
		n := 0
		for _, c := range dst[start:] {
			if urlUnsafe(c) {
				n++
			}
		}
		if n == 0 {
			return dst
		}
		// Grow by two bytes per escaped byte and fill from the back, so
		// the tail is rewritten in place without a scratch buffer.
		old := len(dst)
		for i := 0; i < 2*n; i++ {
			dst = append(dst, 0)
		}
		w := len(dst)
		for r := old - 1; r >= start; r-- {
			c := dst[r]
			if urlUnsafe(c) {
				w -= 3
				dst[w], dst[w+1], dst[w+2] = '%', "0123456789ABCDEF"[c>>4], "0123456789ABCDEF"[c&0x0f]
			} else {
				w--
				dst[w] = c
			}
		}
	}
	return dst
}

// escapeJSONTail escapes dst[start:] as the inside of a JSON string, in
// place: the tail is rewritten from the back, so no scratch buffer.
func escapeJSONTail(dst []byte, start int) []byte {
	grow := 0
	for _, c := range dst[start:] {
		switch {
		case c == '"' || c == '\\':
			grow++
		case c < ' ':
			grow += 5 // \u00XX
		}
	}
	if grow == 0 {
		return dst
	}
	old := len(dst)
	for range grow {
		dst = append(dst, 0)
	}
	w := len(dst)
	for r := old - 1; r >= start; r-- {
		c := dst[r]
		switch {
		case c == '"' || c == '\\':
			w -= 2
			dst[w], dst[w+1] = '\\', c
		case c < ' ':
			w -= 6
			copy(dst[w:], `\u00`)
			dst[w+4], dst[w+5] = hexDigits[c>>4], hexDigits[c&0x0f]
		default:
			w--
			dst[w] = c
		}
	}
	return dst
}

// escapeString is escapeTail for compile-time text.
func escapeString(s string, mode escapeMode) string {
	return string(escapeTail([]byte(s), 0, mode))
}

// dataEnv is what templates may reference: the data sources by name.
type dataEnv struct {
	sources  []*DataSource
	failed   map[string]bool // declared but unusable; references are not re-reported
	declared []string        // every name under data:, in file order
}

func (e *dataEnv) lookup(name string) (int, *DataSource) {
	for i, s := range e.sources {
		if s.Name == name {
			return i, s
		}
	}
	return -1, nil
}

func (e *dataEnv) names() []string { return e.declared }

var generators = []string{"seq", "randInt", "pick", "uuid"}

// compileTemplate compiles src for mode. It returns every problem found, as
// messages that quote the tag at fault (the caller adds the position).
func compileTemplate(src string, mode escapeMode, env *dataEnv) (*Template, []string) {
	t := &Template{src: src, mode: mode}
	var errs []string
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t.parts = append(t.parts, part{kind: partLit, lit: lit.String()})
			lit.Reset()
		}
	}
	addLit := func(s string) {
		switch mode {
		case urlMode:
			for i := 0; i < len(s); i++ {
				c := s[i]
				if c < ' ' || c == 0x7f {
					errs = append(errs, fmt.Sprintf("control character %q is not allowed in a URL", c))
					return
				}
				if c == '#' {
					errs = append(errs, "a URL fragment (#...) is never sent to the server; remove it or write # as %23")
					return
				}
			}
			lit.WriteString(escapeString(s, urlMode))
		case headerMode:
			for i := 0; i < len(s); i++ {
				if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
					errs = append(errs, fmt.Sprintf("control character %q is not allowed in a header value", c))
					return
				}
			}
			lit.WriteString(s)
		default:
			lit.WriteString(s)
		}
	}

	rest := src
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			addLit(rest)
			break
		}
		addLit(rest[:i])
		end, ok := tagEnd(rest, i+2)
		if !ok {
			errs = append(errs, fmt.Sprintf("unclosed %q: close it with }}, or write a literal {{ as {{\"{{\"}}", clip(rest[i:])))
			break
		}
		tag := rest[i : end+2]
		body := rest[i+2 : end]
		rest = rest[end+2:]

		toks, err := tokenize(body)
		if err != "" {
			errs = append(errs, fmt.Sprintf("%s: %s", clip(tag), err))
			continue
		}
		if len(toks) == 0 {
			errs = append(errs, fmt.Sprintf("%s: empty generator; expected one of %s, or SOURCE.COLUMN", tag, strings.Join(generators, ", ")))
			continue
		}
		if toks[0].quoted {
			if len(toks) != 1 {
				errs = append(errs, fmt.Sprintf("%s: a quoted literal must be alone inside {{ }}", clip(tag)))
				continue
			}
			addLit(toks[0].text)
			continue
		}
		p, msg := compileGenerator(toks, mode, env)
		if msg != "" {
			errs = append(errs, fmt.Sprintf("%s: %s", clip(tag), msg))
			continue
		}
		flush()
		t.parts = append(t.parts, p)
	}
	flush()
	return t, errs
}

// clip shortens a tag for an error message.
func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

// tagEnd finds the "}}" closing a tag whose body starts at from, skipping
// quoted strings.
func tagEnd(s string, from int) (int, bool) {
	for i := from; i < len(s); i++ {
		switch s[i] {
		case '"':
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' {
					i++
				}
			}
		case '`':
			for i++; i < len(s) && s[i] != '`'; i++ {
			}
		case '}':
			if i+1 < len(s) && s[i+1] == '}' {
				return i, true
			}
		}
	}
	return 0, false
}

type token struct {
	text   string
	quoted bool
}

// tokenize splits a tag body on blanks; "double" (Go escapes) and `raw`
// quoted strings are single tokens.
func tokenize(body string) ([]token, string) {
	var toks []token
	i := 0
	for i < len(body) {
		c := body[i]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			i++
			continue
		}
		if c == '"' || c == '`' {
			j := i + 1
			for j < len(body) && body[j] != c {
				if c == '"' && body[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(body) {
				return nil, "unterminated quoted string"
			}
			s, err := strconv.Unquote(body[i : j+1])
			if err != nil {
				return nil, fmt.Sprintf("bad quoted string %s", body[i:j+1])
			}
			toks = append(toks, token{text: s, quoted: true})
			i = j + 1
			if i < len(body) && !isBlank(body[i]) {
				return nil, "a quoted string must be followed by a space"
			}
			continue
		}
		j := i
		for j < len(body) && !isBlank(body[j]) {
			if body[j] == '"' || body[j] == '`' {
				return nil, "a quote must start a new argument"
			}
			j++
		}
		toks = append(toks, token{text: body[i:j]})
		i = j
	}
	return toks, ""
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func compileGenerator(toks []token, mode escapeMode, env *dataEnv) (part, string) {
	name, args := toks[0].text, toks[1:]
	intArg := func(i int, what string) (int64, string) {
		if args[i].quoted {
			return 0, fmt.Sprintf("%s must be an integer, not a quoted string", what)
		}
		v, err := strconv.ParseInt(args[i].text, 10, 64)
		if err != nil {
			return 0, fmt.Sprintf("%s must be an integer, got %q", what, args[i].text)
		}
		return v, ""
	}
	switch name {
	case "seq":
		if len(args) > 1 {
			return part{}, "seq takes at most one argument: {{seq}} or {{seq START}}"
		}
		p := part{kind: partSeq, seq: new(atomic.Uint64), start: 1}
		if len(args) == 1 {
			v, msg := intArg(0, "START")
			if msg != "" {
				return part{}, msg
			}
			p.start = v
		}
		return p, ""
	case "randInt":
		if len(args) != 2 {
			return part{}, "randInt takes two arguments: {{randInt MIN MAX}}"
		}
		lo, msg := intArg(0, "MIN")
		if msg != "" {
			return part{}, msg
		}
		hi, msg := intArg(1, "MAX")
		if msg != "" {
			return part{}, msg
		}
		if lo > hi {
			return part{}, fmt.Sprintf("MIN (%d) is greater than MAX (%d)", lo, hi)
		}
		return part{kind: partRandInt, start: lo, span: uint64(hi) - uint64(lo) + 1}, ""
	case "pick":
		if len(args) == 0 {
			return part{}, `pick needs at least one choice: {{pick "a" "b"}}`
		}
		p := part{kind: partPick}
		for _, a := range args {
			if mode == urlMode {
				for i := 0; i < len(a.text); i++ {
					if c := a.text[i]; c < ' ' || c == 0x7f {
						return part{}, fmt.Sprintf("control character %q is not allowed in a URL", c)
					}
				}
			}
			p.choices = append(p.choices, escapeString(a.text, mode))
		}
		return p, ""
	case "uuid":
		if len(args) != 0 {
			return part{}, "uuid takes no arguments"
		}
		return part{kind: partUUID}, ""
	}
	if src, col, ok := strings.Cut(name, "."); ok && !toks[0].quoted {
		if len(args) != 0 {
			return part{}, "a column reference takes no arguments"
		}
		i, ds := env.lookup(src)
		if ds == nil {
			if env.failed[src] {
				return part{kind: partLit}, "" // already reported at data.SOURCE
			}
			if len(env.names()) == 0 {
				return part{}, fmt.Sprintf("unknown data source %q: declare it under data:", src)
			}
			return part{}, fmt.Sprintf("unknown data source %q%s; declared: %s", src, suggest(src, env.names()), strings.Join(env.names(), ", "))
		}
		for c, name := range ds.Columns {
			if name == col {
				return part{kind: partColumn, src: i, col: c}, ""
			}
		}
		return part{}, fmt.Sprintf("data source %q has no column %q%s; columns: %s", src, col, suggest(col, ds.Columns), strings.Join(ds.Columns, ", "))
	}
	return part{}, fmt.Sprintf("unknown generator %q%s; expected one of %s, or SOURCE.COLUMN", name, suggest(name, generators), strings.Join(generators, ", "))
}

// State is one VU's generator state: its random source and the data rows
// chosen for the current request. It is not safe for concurrent use; give
// each VU its own (File.NewState).
type State struct {
	f      *File
	pcg    rand.PCG
	rng    *rand.Rand
	gen    uint64   // request generation, bumped by Next
	rowGen []uint64 // generation in which rowIdx[i] was chosen
	rowIdx []int
}

// NewState returns the generator state of VU number vu. It is deterministic:
// the same File.Seed and vu give the same random values.
func (f *File) NewState(vu int) *State {
	s := &State{
		f:      f,
		gen:    1,
		rowGen: make([]uint64, len(f.Data)),
		rowIdx: make([]int, len(f.Data)),
	}
	s.pcg.Seed(splitmix(f.Seed), splitmix(f.Seed^splitmix(uint64(vu)+0x9e3779b97f4a7c15)))
	s.rng = rand.New(&s.pcg)
	return s
}

// Next begins a new request: the data rows chosen so far are forgotten.
func (s *State) Next() { s.gen++ }

// Rand returns the VU's random source (for example to pick the next request
// with Scenario.Pick). It is the one generators use, so the whole run is
// reproducible from File.Seed.
func (s *State) Rand() *rand.Rand { return s.rng }

// row returns the row of data source i chosen for the current request,
// choosing it on first use.
func (s *State) row(i int) []string {
	if i < 0 || i >= len(s.rowGen) {
		return nil
	}
	if s.rowGen[i] != s.gen {
		s.rowIdx[i] = s.f.Data[i].pick(s.rng)
		s.rowGen[i] = s.gen
	}
	return s.f.Data[i].Rows[s.rowIdx[i]]
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// appendSample renders t like AppendTo but without side effects on the run:
// {{seq}} gives its first value and a column its source's first row, random
// values come from rng. Validation renders a sample to check a message
// against its schema before the run starts.
func (t *Template) appendSample(dst []byte, rng *rand.Rand, data []*DataSource) []byte {
	for i := range t.parts {
		p := &t.parts[i]
		switch p.kind {
		case partLit:
			dst = append(dst, p.lit...)
		case partSeq:
			dst = strconv.AppendInt(dst, p.start, 10)
		case partRandInt:
			v := rng.Uint64()
			if p.span != 0 {
				v = rng.Uint64N(p.span)
			}
			dst = strconv.AppendInt(dst, p.start+int64(v), 10)
		case partPick:
			dst = append(dst, p.choices[rng.IntN(len(p.choices))]...)
		case partUUID:
			dst = appendUUID(dst, rng)
		case partColumn:
			if p.src < len(data) && len(data[p.src].Rows) > 0 && p.col < len(data[p.src].Rows[0]) {
				start := len(dst)
				dst = append(dst, data[p.src].Rows[0][p.col]...)
				dst = escapeTail(dst, start, t.mode)
			}
		}
	}
	return dst
}
