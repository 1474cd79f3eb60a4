package capture

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// pathNode is a trie of JSON field paths ("card.number" is card → number).
// Arrays are transparent: a path names an object member wherever arrays
// occur on the way, so items.sku matches {"items":[{"sku":1},{"sku":2}]}.
type pathNode struct {
	children map[string]*pathNode
	leaf     int // the rule ending here, or -1
}

func newPathTrie() *pathNode { return &pathNode{leaf: -1} }

// checkFieldPath validates a dotted path: non-empty names between the dots.
func checkFieldPath(path string) error {
	if path == "" {
		return errors.New("the field path is empty")
	}
	for i, seg := range strings.Split(path, ".") {
		if seg == "" {
			return fmt.Errorf("field path %q has an empty name at part %d (names are separated by single dots)", path, i+1)
		}
	}
	return nil
}

// add puts path into the trie with rule index leaf. A path that is a prefix
// of another wins over it (the whole value is handled).
func (n *pathNode) add(path string, leaf int) {
	for seg := range strings.SplitSeq(path, ".") {
		if n.children == nil {
			n.children = map[string]*pathNode{}
		}
		c := n.children[seg]
		if c == nil {
			c = &pathNode{leaf: -1}
			n.children[seg] = c
		}
		n = c
	}
	if n.leaf < 0 {
		n.leaf = leaf
	}
}

// leafAct is what a leaf function does with a value.
type leafAct uint8

const (
	leafKeep    leafAct = iota // leave the value as it is
	leafReplace                // the value becomes the bytes the function appended
	leafRemove                 // the object member is removed
	leafFail                   // the document cannot be handled; the edit fails
)

// leafFunc decides about one value at a leaf; for leafReplace it appends
// the new JSON value to dst and returns it.
type leafFunc func(n *pathNode, val, dst []byte) ([]byte, leafAct)

// jsonEdit rewrites a JSON document in one pass, copying every byte it does
// not change. It only descends where the trie has paths, so a large body
// with no configured fields costs one scan. src must be valid JSON.
type jsonEdit struct {
	src      []byte
	out      []byte // nil until the first change
	last     int    // src[:last] is in out
	scratch  []byte
	leaf     leafFunc
	elements bool // at a leaf, apply leaf to each scalar of an array instead of the array
	failed   bool
}

// editJSON applies leaf at every path of root in src. It returns src itself
// and changed=false when nothing changed, and ok=false when a leaf failed.
func editJSON(src []byte, root *pathNode, elements bool, leaf leafFunc) (out []byte, changed, ok bool) {
	e := jsonEdit{src: src, leaf: leaf, elements: elements}
	i := skipWS(src, 0)
	if i < len(src) && (src[i] == '{' || src[i] == '[') {
		e.walk(i, root)
	}
	if e.failed {
		return nil, false, false
	}
	if e.out == nil {
		return src, false, true
	}
	return append(e.out, src[e.last:]...), true, true
}

// looksJSON reports whether a body starts like a JSON object or array.
func looksJSON(b []byte) bool {
	i := skipWS(b, 0)
	return i < len(b) && (b[i] == '{' || b[i] == '[')
}

func (e *jsonEdit) edit(from, to int, repl []byte) {
	if e.out == nil {
		e.out = make([]byte, 0, len(e.src)+len(repl)+16)
	}
	e.out = append(e.out, e.src[e.last:from]...)
	e.out = append(e.out, repl...)
	e.last = to
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the end of the string whose quote is at i.
func skipString(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(b)
}

// skipValue returns the end of the value starting at i.
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = skipString(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	}
	j := i
	for j < len(b) {
		switch b[j] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return j
		}
		j++
	}
	return j
}

// walk handles the value at i, whose members n's children name, and
// returns its end.
func (e *jsonEdit) walk(i int, n *pathNode) int {
	if n == nil || len(n.children) == 0 || e.failed {
		return skipValue(e.src, i)
	}
	switch e.src[i] {
	case '{':
		return e.object(i, n)
	case '[':
		j := skipWS(e.src, i+1)
		if e.src[j] == ']' {
			return j + 1
		}
		for {
			j = skipWS(e.src, e.walk(j, n))
			if e.src[j] != ',' {
				return j + 1
			}
			j = skipWS(e.src, j+1)
		}
	}
	return skipValue(e.src, i)
}

func (e *jsonEdit) object(i int, n *pathNode) int {
	src := e.src
	j := skipWS(src, i+1)
	if src[j] == '}' {
		return j + 1
	}
	prevKeptEnd, pending, lastEnd := -1, -1, -1
	for {
		keyStart := j
		keyEnd := skipString(src, j)
		child := n.children[string(src[keyStart+1:keyEnd-1])]
		if child == nil && bytes.IndexByte(src[keyStart+1:keyEnd-1], '\\') >= 0 {
			var key string
			if json.Unmarshal(src[keyStart:keyEnd], &key) == nil {
				child = n.children[key]
			}
		}
		valStart := skipWS(src, skipWS(src, keyEnd)+1) // past the colon
		var valEnd int
		act := leafKeep
		switch {
		case child == nil:
			valEnd = skipValue(src, valStart)
		case child.leaf >= 0:
			valEnd = skipValue(src, valStart)
			if e.elements && src[valStart] == '[' {
				act = leafKeep
				if pending >= 0 {
					e.edit(pending, keyStart, nil)
					pending = -1
				}
				e.scalars(valStart, child)
			} else {
				var repl []byte
				repl, act = e.leaf(child, src[valStart:valEnd], e.scratch[:0])
				e.scratch = repl[:0]
				switch act {
				case leafFail:
					e.failed = true
					return len(src)
				case leafReplace:
					if pending >= 0 {
						e.edit(pending, keyStart, nil)
						pending = -1
					}
					e.edit(valStart, valEnd, repl)
				}
			}
		default:
			if pending >= 0 {
				e.edit(pending, keyStart, nil)
				pending = -1
			}
			valEnd = e.walk(valStart, child)
		}
		if act == leafRemove {
			if prevKeptEnd >= 0 {
				e.edit(max(prevKeptEnd, e.last), valEnd, nil)
			} else if pending < 0 {
				pending = keyStart
			}
		} else {
			if pending >= 0 {
				e.edit(pending, keyStart, nil)
				pending = -1
			}
			prevKeptEnd = valEnd
		}
		lastEnd = valEnd
		j = skipWS(src, valEnd)
		if e.failed || src[j] != ',' {
			if pending >= 0 {
				e.edit(pending, lastEnd, nil) // every member was removed
			}
			return j + 1
		}
		j = skipWS(src, j+1)
	}
}

// scalars applies the leaf to each scalar of the array at i.
func (e *jsonEdit) scalars(i int, n *pathNode) {
	src := e.src
	j := skipWS(src, i+1)
	if src[j] == ']' {
		return
	}
	for !e.failed {
		end := skipValue(src, j)
		switch src[j] {
		case '[':
			e.scalars(j, n)
		case '{':
		default:
			repl, act := e.leaf(n, src[j:end], e.scratch[:0])
			e.scratch = repl[:0]
			switch act {
			case leafFail:
				e.failed = true
				return
			case leafReplace:
				e.edit(j, end, repl)
			}
		}
		j = skipWS(src, end)
		if src[j] != ',' {
			return
		}
		j = skipWS(src, j+1)
	}
}

// paramAct is what a query or form parameter function does.
type paramAct uint8

const (
	paramKeep paramAct = iota
	paramSet
	paramRemove
	paramFail
)

// editParams rewrites an application/x-www-form-urlencoded string (a query
// or a form body). fn sees each parameter's decoded name and raw value; for
// paramSet it returns the new raw (escaped) value. It returns q itself when
// nothing changed, and ok=false when fn failed.
func editParams(q string, fn func(name, raw string) (string, paramAct)) (string, bool) {
	var buf [256]byte
	b := buf[:0]
	changed := false
	last := 0 // q[:last] is in b
	for pos := 0; pos <= len(q); {
		end := strings.IndexByte(q[pos:], '&')
		if end < 0 {
			end = len(q)
		} else {
			end += pos
		}
		param := q[pos:end]
		pos = end + 1
		if param == "" {
			continue
		}
		name, raw, hasEq := strings.Cut(param, "=")
		if strings.ContainsAny(name, "%+") {
			if n, err := url.QueryUnescape(name); err == nil {
				name = n
			}
		}
		nv, act := fn(name, raw)
		switch act {
		case paramFail:
			return "", false
		case paramRemove:
			changed = true
			b = append(b, q[last:end-len(param)]...)
			if end < len(q) {
				last = end + 1 // the '&' after it goes too
			} else {
				last = end
				if n := len(b); n > 0 && b[n-1] == '&' {
					b = b[:n-1] // the last one went: so does the '&' before it
				}
			}
		case paramSet:
			changed = true
			b = append(b, q[last:end-len(raw)]...)
			if !hasEq {
				b = append(b, '=')
			}
			b = append(b, nv...)
			last = end
		}
	}
	if !changed {
		return q, true
	}
	return string(append(b, q[last:]...)), true
}
