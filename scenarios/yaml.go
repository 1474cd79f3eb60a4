package scenarios

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.k6.io/k6/lib/types"
	"gopkg.in/yaml.v3"
)

// parser collects every problem of one file; the parse functions keep going
// after a problem so that a user sees all of them at once.
type parser struct {
	file   string // Error.File
	dir    string // CSV paths are relative to it
	target string // overrides the file's target: (WithTarget)
	errs   Errors
	// budget bounds the nodes visited while expanding aliases, so that a
	// "billion laughs" document fails instead of eating the machine.
	budget int
	// declared holds every request name written in the file, including
	// requests with problems, so references to them are not reported twice.
	declared     map[string]bool
	declaredList []string // the same, in file order
	// scenarioNames holds every scenario name written in the file.
	scenarioNames map[string]bool
	// protos holds the .proto files compiled so far (gRPC requests).
	protos protoCache
	// confined refuses files outside dir before opening them (Confined).
	confined bool
}

const (
	aliasBudget = 1 << 20
	maxMergeDep = 32
)

func posOf(n *yaml.Node) Pos {
	if n == nil {
		return Pos{}
	}
	return Pos{Line: n.Line, Col: n.Column}
}

func (p *parser) errAt(pos Pos, path, format string, args ...any) {
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	p.errs = append(p.errs, &Error{File: p.file, Pos: pos, Path: path, Msg: msg})
}

func (p *parser) errorf(n *yaml.Node, path, format string, args ...any) {
	p.errAt(posOf(n), path, format, args...)
}

var yamlLineErr = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// decode parses data into a document's root node. Syntax errors are recorded;
// nil is returned when there is nothing to look at.
func (p *parser) decode(data []byte) (root *yaml.Node) {
	defer func() {
		// yaml.v3 reports errors by panicking internally and recovering; a
		// panic that escapes it is still a broken input, not our crash.
		if r := recover(); r != nil {
			p.errAt(Pos{}, "", "YAML parser failed: %v", r)
			root = nil
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.errAt(Pos{}, "", "the file is empty")
			return nil
		}
		p.yamlError(err)
		return nil
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		p.errorf(&next, "", "only one YAML document is allowed per file")
	} else if !errors.Is(err, io.EOF) {
		p.yamlError(err)
	}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		return doc.Content[0]
	}
	p.errAt(Pos{}, "", "the file is empty")
	return nil
}

func (p *parser) yamlError(err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line == "yaml: unmarshal errors:" {
			continue
		}
		if m := yamlLineErr.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[1])
			p.errAt(Pos{Line: n}, "", "YAML syntax: %s", m[2])
			continue
		}
		p.errAt(Pos{}, "", "YAML syntax: %s", strings.TrimPrefix(line, "yaml: "))
	}
}

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 64; i++ {
		n = n.Alias
	}
	return n
}

// kv is one key of a mapping: its name, the key node (for positions) and the
// value, aliases resolved.
type kv struct {
	key  string
	k, v *yaml.Node
}

// describe names the kind of a node for "got ..." messages.
func describe(n *yaml.Node) string {
	n = resolve(n)
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "null"
		}
		v := n.Value
		if len(v) > 40 {
			v = v[:40] + "..."
		}
		return strconv.Quote(v)
	}
	return "an unexpected node"
}

// mapping returns the pairs of a mapping node, with YAML merge keys (<<)
// expanded and duplicate keys reported. It reports an error and returns
// ok=false when n is not a mapping.
func (p *parser) mapping(n *yaml.Node, path string) ([]kv, bool) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		if n != nil && n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return nil, true // an empty "key:" is an empty mapping
		}
		p.errorf(n, path, "must be a mapping, got %s", describe(n))
		return nil, false
	}
	seen := map[string]*yaml.Node{}
	var out []kv
	p.collect(n, path, seen, &out, 0, true)
	return out, true
}

func (p *parser) collect(n *yaml.Node, path string, seen map[string]*yaml.Node, out *[]kv, depth int, explicit bool) {
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k == nil || v == nil {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			p.errorf(k, path, "keys must be plain strings, got %s", describe(k))
			continue
		}
		if k.Tag == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			if explicit {
				p.errorf(k, join(path, k.Value), "duplicate key (first defined at line %d)", first.Line)
			}
			continue // merged keys never override
		}
		seen[k.Value] = k
		*out = append(*out, kv{key: k.Value, k: k, v: v})
	}
	for _, m := range merges {
		if depth >= maxMergeDep {
			p.errorf(m, path, "merge keys nested too deeply")
			return
		}
		switch m.Kind {
		case yaml.MappingNode:
			p.collect(m, path, seen, out, depth+1, false)
		case yaml.SequenceNode:
			for _, e := range m.Content {
				e = resolve(e)
				if e != nil && e.Kind == yaml.MappingNode {
					p.collect(e, path, seen, out, depth+1, false)
				} else {
					p.errorf(e, path, "a merge (<<) list must hold mappings, got %s", describe(e))
				}
			}
		default:
			p.errorf(m, path, "a merge (<<) must name a mapping, got %s", describe(m))
		}
	}
}

// known reports keys that are not in allowed, with a suggestion.
func (p *parser) known(pairs []kv, path string, allowed ...string) {
	for _, e := range pairs {
		ok := false
		for _, a := range allowed {
			if e.key == a {
				ok = true
				break
			}
		}
		if !ok {
			p.errorf(e.k, join(path, e.key), "unknown key%s; expected one of: %s",
				suggest(e.key, allowed), strings.Join(allowed, ", "))
		}
	}
}

func find(pairs []kv, key string) (kv, bool) {
	for _, e := range pairs {
		if e.key == key {
			return e, true
		}
	}
	return kv{}, false
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

func isNull(n *yaml.Node) bool {
	n = resolve(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// str returns a scalar's text. Numbers and booleans are accepted as their
// text; null and non-scalars are errors.
func (p *parser) str(n *yaml.Node, path string) (string, bool) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errorf(n, path, "must be a string, got %s", describe(n))
		return "", false
	}
	return n.Value, true
}

func (p *parser) boolean(n *yaml.Node, path string) (bool, bool) {
	n = resolve(n)
	var b bool
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&b) != nil {
		p.errorf(n, path, "must be true or false, got %s", describe(n))
		return false, false
	}
	return b, true
}

func (p *parser) integer(n *yaml.Node, path string) (int64, bool) {
	n = resolve(n)
	var i int64
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&i) != nil {
		p.errorf(n, path, "must be an integer, got %s", describe(n))
		return 0, false
	}
	return i, true
}

func (p *parser) number(n *yaml.Node, path string) (float64, bool) {
	n = resolve(n)
	var f float64
	if n == nil || n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") ||
		n.Decode(&f) != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		p.errorf(n, path, "must be a number, got %s", describe(n))
		return 0, false
	}
	return f, true
}

// duration parses a duration the way k6 does: a Go duration string ("30s",
// "1m30s"), k6's day form ("1d12h"), or a bare number of milliseconds.
// Negative durations are rejected.
func (p *parser) duration(n *yaml.Node, path string) (time.Duration, bool) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag == "!!null" || n.Tag == "!!bool" {
		p.errorf(n, path, "must be a duration such as 30s, got %s", describe(n))
		return 0, false
	}
	d, err := parseDuration(n.Value)
	if err != nil {
		p.errorf(n, path, "%v", err)
		return 0, false
	}
	return d, true
}

func parseDuration(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(t, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > float64(math.MaxInt64/int64(time.Millisecond)) {
			return 0, fmt.Errorf("duration %q is out of range", s)
		}
		if f < 0 {
			return 0, fmt.Errorf("duration %q can't be negative", s)
		}
		return time.Duration(f * float64(time.Millisecond)), nil
	}
	d, err := types.ParseExtendedDuration(t)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: use a number with a unit, such as 500ms, 30s, 1m30s, 2h", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("duration %q can't be negative", s)
	}
	return d, nil
}

// toJSON converts a YAML node to the value encoding/json would produce, for
// handing a scenario to k6's JSON config parser. It returns an error message
// and the node at fault when a value has no JSON form.
func (p *parser) toJSON(n *yaml.Node, depth int) (any, *yaml.Node, string) {
	n = resolve(n)
	p.budget--
	if p.budget < 0 {
		return nil, nil, "the document expands to too many values (aliases nested too deeply?)"
	}
	if n == nil || depth > 100 {
		return nil, n, "value nested too deeply"
	}
	switch n.Kind {
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return nil, nil, ""
		case "!!bool":
			var b bool
			if n.Decode(&b) != nil {
				return nil, n, "invalid boolean"
			}
			return b, nil, ""
		case "!!int":
			var i int64
			if n.Decode(&i) == nil {
				return i, nil, ""
			}
			var u uint64
			if n.Decode(&u) == nil {
				return u, nil, ""
			}
			return nil, n, "integer out of range"
		case "!!float":
			var f float64
			if n.Decode(&f) != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				return nil, n, "must be a finite number"
			}
			return f, nil, ""
		default:
			return n.Value, nil, ""
		}
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, e := range n.Content {
			v, bad, msg := p.toJSON(e, depth+1)
			if msg != "" {
				return nil, bad, msg
			}
			out = append(out, v)
		}
		return out, nil, ""
	case yaml.MappingNode:
		out := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := resolve(n.Content[i])
			if k == nil || k.Kind != yaml.ScalarNode {
				return nil, k, "keys must be plain strings"
			}
			if k.Tag == "!!merge" {
				return nil, k, "merge keys (<<) are not supported here"
			}
			v, bad, msg := p.toJSON(n.Content[i+1], depth+1)
			if msg != "" {
				return nil, bad, msg
			}
			out[k.Value] = v
		}
		return out, nil, ""
	}
	return nil, n, "unsupported YAML value"
}
