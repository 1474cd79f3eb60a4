package capture

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/loadcap/loadcap/scenarios"
	"gopkg.in/yaml.v3"
)

// LoadRules reads and compiles the rewrite rule file at path (see
// ParseRules).
func LoadRules(path string) (*Rewriter, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read rewrite rules: %w", err)
	}
	return ParseRules(path, data)
}

// ParseRules compiles a rewrite rule file; name is the file name errors
// give. Every problem is reported at once, as scenarios.Errors with
// file:line:col and the key path of the value at fault (e.g.
// "ids[1].offset"); scenarios.Invalid reports true for them.
func ParseRules(name string, data []byte) (*Rewriter, error) {
	p := &ruleParser{file: name}
	rw := &Rewriter{}
	if root := p.decode(data); root != nil {
		p.rules(root, rw)
	}
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	return rw, nil
}

type ruleParser struct {
	file string
	errs scenarios.Errors
}

type ruleKV struct {
	key  string
	k, v *yaml.Node
}

func (p *ruleParser) errorf(n *yaml.Node, path, format string, args ...any) {
	var pos scenarios.Pos
	if n != nil {
		pos = scenarios.Pos{Line: n.Line, Col: n.Column}
	}
	p.errs = append(p.errs, &scenarios.Error{File: p.file, Pos: pos, Path: path, Msg: fmt.Sprintf(format, args...)})
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (p *ruleParser) decode(data []byte) (root *yaml.Node) {
	defer func() {
		if r := recover(); r != nil {
			p.errorf(nil, "", "YAML parser failed: %v", r)
			root = nil
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.errorf(nil, "", "the file is empty")
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
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		p.errorf(nil, "", "the file is empty")
		return nil
	}
	return doc.Content[0]
}

func (p *ruleParser) yamlError(err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line == "yaml: unmarshal errors:" {
			continue
		}
		if m := yamlLine.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[1])
			p.errs = append(p.errs, &scenarios.Error{File: p.file, Pos: scenarios.Pos{Line: n}, Msg: "YAML syntax: " + m[2]})
			continue
		}
		p.errorf(nil, "", "YAML syntax: %s", strings.TrimPrefix(line, "yaml: "))
	}
}

func resolveNode(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 64; i++ {
		n = n.Alias
	}
	return n
}

func describeNode(n *yaml.Node) string {
	n = resolveNode(n)
	switch {
	case n == nil:
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Kind == yaml.ScalarNode && n.Tag == "!!null":
		return "null"
	case n.Kind == yaml.ScalarNode:
		return quoteShort(n.Value)
	}
	return "an unexpected node"
}

func isNullNode(n *yaml.Node) bool {
	n = resolveNode(n)
	return n == nil || n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// mapping returns a mapping's pairs with merge keys (<<) expanded and
// duplicate keys reported; ok=false when n is not a mapping.
func (p *ruleParser) mapping(n *yaml.Node, path string) ([]ruleKV, bool) {
	n = resolveNode(n)
	if isNullNode(n) {
		return nil, true
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, path, "must be a mapping, got %s", describeNode(n))
		return nil, false
	}
	seen := map[string]*yaml.Node{}
	var out []ruleKV
	p.collect(n, path, seen, &out, 0, true)
	return out, true
}

func (p *ruleParser) collect(n *yaml.Node, path string, seen map[string]*yaml.Node, out *[]ruleKV, depth int, explicit bool) {
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolveNode(n.Content[i]), resolveNode(n.Content[i+1])
		if k == nil || v == nil {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			p.errorf(k, path, "keys must be plain strings, got %s", describeNode(k))
			continue
		}
		if k.Tag == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			if explicit {
				p.errorf(k, joinPath(path, k.Value), "duplicate key (first defined at line %d)", first.Line)
			}
			continue
		}
		seen[k.Value] = k
		*out = append(*out, ruleKV{key: k.Value, k: k, v: v})
	}
	for _, m := range merges {
		if depth >= 8 {
			p.errorf(m, path, "merge keys nested too deeply")
			return
		}
		var maps []*yaml.Node
		switch m.Kind {
		case yaml.MappingNode:
			maps = []*yaml.Node{m}
		case yaml.SequenceNode:
			for _, e := range m.Content {
				maps = append(maps, resolveNode(e))
			}
		}
		for _, mm := range maps {
			if mm == nil || mm.Kind != yaml.MappingNode {
				p.errorf(m, path, "a merge (<<) must name a mapping, got %s", describeNode(mm))
				continue
			}
			p.collect(mm, path, seen, out, depth+1, false)
		}
	}
}

// known reports keys not in allowed, with a suggestion.
func (p *ruleParser) known(pairs []ruleKV, path string, allowed ...string) {
	for _, e := range pairs {
		found := false
		for _, a := range allowed {
			if e.key == a {
				found = true
				break
			}
		}
		if !found {
			p.errorf(e.k, joinPath(path, e.key), "unknown key%s; expected one of: %s", suggestKey(e.key, allowed), strings.Join(allowed, ", "))
		}
	}
}

func (p *ruleParser) str(n *yaml.Node, path string) (string, bool) {
	n = resolveNode(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errorf(n, path, "must be a string, got %s", describeNode(n))
		return "", false
	}
	return n.Value, true
}

func (p *ruleParser) integer(n *yaml.Node, path string) (int64, bool) {
	n = resolveNode(n)
	var i int64
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&i) != nil {
		p.errorf(n, path, "must be an integer, got %s", describeNode(n))
		return 0, false
	}
	return i, true
}

func (p *ruleParser) list(n *yaml.Node, path string) []*yaml.Node {
	n = resolveNode(n)
	if isNullNode(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, path, "must be a list, got %s", describeNode(n))
		return nil
	}
	return n.Content
}

func (p *ruleParser) regex(n *yaml.Node, path string) *regexp.Regexp {
	s, ok := p.str(n, path)
	if !ok {
		return nil
	}
	re, err := regexp.Compile(s)
	if err != nil {
		p.errorf(n, path, "not a regular expression (Go RE2 syntax): %s", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		return nil
	}
	return re
}

func (p *ruleParser) headerName(n *yaml.Node, path, name string) bool {
	switch {
	case !isToken(name):
		p.errorf(n, path, "%s is not a header name", quoteShort(name))
		return false
	case strings.EqualFold(name, "Host"):
		p.errorf(n, path, "Host is not a header of a record: retarget with host: or hosts:")
		return false
	case dropped(name):
		p.errorf(n, path, "%s is set by the client that replays, not by rules", name)
		return false
	}
	return true
}

func (p *ruleParser) host(n *yaml.Node, path string) (string, bool) {
	s, ok := p.str(n, path)
	if !ok {
		return "", false
	}
	if strings.Contains(s, "://") {
		p.errorf(n, path, "give host[:port] without a scheme (set scheme: for that)")
		return "", false
	}
	if s == "" || !validHost(s) {
		p.errorf(n, path, "%s is not a host[:port]", quoteShort(s))
		return "", false
	}
	return s, true
}

func (p *ruleParser) rules(root *yaml.Node, rw *Rewriter) {
	pairs, ok := p.mapping(root, "")
	if !ok {
		return
	}
	var keys []ruleKV
	for _, e := range pairs {
		if !strings.HasPrefix(e.key, "x-") {
			keys = append(keys, e)
		}
	}
	p.known(keys, "", "host", "scheme", "hosts", "paths", "headers", "drop", "ids")
	for _, e := range keys {
		switch e.key {
		case "host":
			rw.host, _ = p.host(e.v, "host")
		case "scheme":
			if s, ok := p.str(e.v, "scheme"); ok {
				if s != "http" && s != "https" {
					p.errorf(e.v, "scheme", "must be http or https, got %s", quoteShort(s))
				} else {
					rw.scheme = s
				}
			}
		case "hosts":
			hs, _ := p.mapping(e.v, "hosts")
			for _, h := range hs {
				if h.key == "" || !validHost(h.key) {
					p.errorf(h.k, joinPath("hosts", h.key), "%s is not a recorded host[:port]", quoteShort(h.key))
					continue
				}
				if v, ok := p.host(h.v, joinPath("hosts", h.key)); ok {
					rw.hosts = append(rw.hosts, Header{Name: h.key, Value: v})
				}
			}
		case "paths":
			for i, n := range p.list(e.v, "paths") {
				path := "paths[" + strconv.Itoa(i) + "]"
				m, ok := p.mapping(n, path)
				if !ok {
					continue
				}
				p.known(m, path, "match", "replace")
				var r pathRule
				var haveRepl bool
				for _, f := range m {
					switch f.key {
					case "match":
						r.re = p.regex(f.v, path+".match")
					case "replace":
						r.repl, haveRepl = p.str(f.v, path+".replace")
					}
				}
				if _, has := find(m, "match"); !has {
					p.errorf(n, path, "match: is required (a regular expression over the path)")
				}
				if _, has := find(m, "replace"); !has {
					p.errorf(n, path, "replace: is required (the new path; $1 or ${name} insert groups)")
				}
				if r.re != nil && haveRepl {
					rw.paths = append(rw.paths, r)
				}
			}
		case "headers":
			p.headerRules(e.v, rw)
		case "drop":
			for i, n := range p.list(e.v, "drop") {
				path := "drop[" + strconv.Itoa(i) + "]"
				m, ok := p.mapping(n, path)
				if !ok {
					continue
				}
				p.known(m, path, "method", "path")
				var d dropRule
				good := true
				for _, f := range m {
					switch f.key {
					case "method":
						s, ok := p.str(f.v, path+".method")
						if ok && !isToken(s) {
							p.errorf(f.v, path+".method", "%s is not a method", quoteShort(s))
							ok = false
						}
						d.method, good = s, good && ok
					case "path":
						d.re = p.regex(f.v, path+".path")
						good = good && d.re != nil
					}
				}
				if len(m) == 0 {
					p.errorf(n, path, "give method:, path: (a regular expression) or both")
					good = false
				}
				if good {
					rw.drops = append(rw.drops, d)
				}
			}
		case "ids":
			for i, n := range p.list(e.v, "ids") {
				p.idRule(n, "ids["+strconv.Itoa(i)+"]", rw)
			}
		}
	}
}

func find(pairs []ruleKV, key string) (ruleKV, bool) {
	for _, e := range pairs {
		if e.key == key {
			return e, true
		}
	}
	return ruleKV{}, false
}

func (p *ruleParser) headerRules(n *yaml.Node, rw *Rewriter) {
	m, ok := p.mapping(n, "headers")
	if !ok {
		return
	}
	p.known(m, "headers", "set", "add", "drop")
	for _, f := range m {
		path := "headers." + f.key
		switch f.key {
		case "set", "add":
			hs, _ := p.mapping(f.v, path)
			for _, h := range hs {
				hp := joinPath(path, h.key)
				if !p.headerName(h.k, hp, h.key) {
					continue
				}
				v, ok := p.str(h.v, hp)
				if !ok {
					continue
				}
				if !validHeaderValue(v) {
					p.errorf(h.v, hp, "a header value may not hold CR, LF or NUL")
					continue
				}
				if f.key == "set" {
					rw.setH = append(rw.setH, Header{Name: h.key, Value: v})
				} else {
					rw.addH = append(rw.addH, Header{Name: h.key, Value: v})
				}
			}
		case "drop":
			for i, e := range p.list(f.v, path) {
				ep := path + "[" + strconv.Itoa(i) + "]"
				if s, ok := p.str(e, ep); ok && p.headerName(e, ep, s) {
					rw.dropH = append(rw.dropH, s)
				}
			}
		}
	}
}

// prefixChars are the bytes a prefix may hold: URL-unreserved, so a mapped
// ID needs no escaping in a path, a query, a header or JSON.
func validPrefix(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

func (p *ruleParser) idRule(n *yaml.Node, path string, rw *Rewriter) {
	m, ok := p.mapping(n, path)
	if !ok {
		return
	}
	p.known(m, path, "path", "query", "header", "field", "match", "offset", "stride", "prefix")
	r := idRule{stride: -1}
	good := true
	var places []string
	var hasOffset, hasPrefix, hasStride, hasMatch bool
	var matchNode *yaml.Node
	for _, f := range m {
		fp := path + "." + f.key
		switch f.key {
		case "path":
			places = append(places, f.key)
			r.where = idPath
			if r.re = p.regex(f.v, fp); r.re == nil {
				good = false
			}
		case "query":
			places = append(places, f.key)
			r.where = idQuery
			if s, ok := p.str(f.v, fp); !ok || s == "" {
				if ok {
					p.errorf(f.v, fp, "the parameter name is empty")
				}
				good = false
			} else {
				r.name = s
			}
		case "header":
			places = append(places, f.key)
			r.where = idHeader
			if s, ok := p.str(f.v, fp); !ok || !p.headerName(f.v, fp, s) {
				good = false
			} else {
				r.name = s
			}
		case "field":
			places = append(places, f.key)
			r.where = idField
			if s, ok := p.str(f.v, fp); !ok {
				good = false
			} else if err := checkFieldPath(s); err != nil {
				p.errorf(f.v, fp, "%v", err)
				good = false
			} else {
				r.name = s
			}
		case "match":
			hasMatch, matchNode = true, f.k
			if r.re = p.regex(f.v, fp); r.re == nil {
				good = false
			}
		case "offset":
			hasOffset = true
			if v, ok := p.integer(f.v, fp); !ok {
				good = false
			} else if v <= 0 {
				p.errorf(f.v, fp, "must be positive: shadow IDs must differ from real ones")
				good = false
			} else {
				r.offset = v
			}
		case "stride":
			hasStride = true
			if v, ok := p.integer(f.v, fp); !ok {
				good = false
			} else if v <= 0 {
				p.errorf(f.v, fp, "must be positive")
				good = false
			} else {
				r.stride = v
			}
		case "prefix":
			hasPrefix = true
			s, ok := p.str(f.v, fp)
			switch {
			case !ok:
				good = false
			case s == "" || !validPrefix(s):
				p.errorf(f.v, fp, "must be letters, digits and - . _ ~ (got %s)", quoteShort(s))
				good = false
			case s[len(s)-1] >= '0' && s[len(s)-1] <= '9':
				p.errorf(f.v, fp, "must not end in a digit, so that each amplify copy's prefix stays distinct (%s-, say)", s)
				good = false
			default:
				r.prefix = s
			}
		}
	}
	switch len(places) {
	case 0:
		p.errorf(n, path, "say where the ID is: path:, query:, header: or field:")
		good = false
	case 1:
	default:
		p.errorf(n, path, "give one of path:, query:, header:, field: per rule, got %s", strings.Join(places, ", "))
		good = false
	}
	if hasMatch && len(places) == 1 && places[0] == "path" {
		p.errorf(matchNode, path+".match", "path: is already the pattern; match: is for query:, header: and field:")
		good = false
	}
	switch {
	case hasOffset && hasPrefix:
		p.errorf(n, path, "give offset: or prefix:, not both")
		good = false
	case !hasOffset && !hasPrefix:
		p.errorf(n, path, "give offset: (id → id + offset) or prefix: (id → prefix + id)")
		good = false
	case hasStride && hasPrefix:
		p.errorf(n, path, "stride: goes with offset:, not prefix:")
		good = false
	}
	if !good {
		return
	}
	if r.stride < 0 {
		r.stride = r.offset // copy k lives in [offset×(k+1), offset×(k+2))
	}
	if r.prefix == "" && r.stride <= 0 {
		r.stride = 1
	}
	if r.re != nil {
		r.group = 0
		if i := r.re.SubexpIndex("id"); i > 0 {
			r.group = i
		} else if r.re.NumSubexp() > 0 {
			r.group = 1
		}
	}
	i := len(rw.ids)
	rw.ids = append(rw.ids, r)
	switch r.where {
	case idPath:
		rw.pathIDs = append(rw.pathIDs, i)
	case idQuery:
		rw.queryIDs = append(rw.queryIDs, i)
	case idHeader:
		rw.headerIDs = append(rw.headerIDs, i)
	case idField:
		if rw.fields == nil {
			rw.fields = newPathTrie()
		}
		for _, j := range rw.fieldIDs {
			if rw.ids[j].name == r.name {
				p.errorf(n, path, "field %s already has an ID rule above", r.name)
				rw.ids = rw.ids[:i]
				return
			}
		}
		rw.fieldIDs = append(rw.fieldIDs, i)
		rw.fields.add(r.name, i)
	}
}

// suggestKey returns ` (did you mean "x"?)` when a candidate is within two
// edits of got.
func suggestKey(got string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(got), c); d < bestDist && d < len(got) {
			best, bestDist = c, d
		}
	}
	if best == "" {
		return ""
	}
	return ` (did you mean "` + best + `"?)`
}

func editDistance(a, b string) int {
	if len(a) > 32 || len(b) > 32 {
		return 1 << 20
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
