package scenarios

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// DefaultTimeout is the per-request timeout when http.timeout is not set
// (k6's default).
const DefaultTimeout = 60 * time.Second

// DefaultSeed seeds the random generators when the file sets no seed, so
// that runs are reproducible.
const DefaultSeed = 1

// File is a parsed and validated scenario file.
type File struct {
	Path       string
	Target     string        // the base URL as written ("" when every request has url:)
	Timeout    time.Duration // per request
	HTTP2      bool          // ALPN h2 over TLS, prior-knowledge h2c over http
	Insecure   bool          // skip TLS certificate verification
	Headers    []Header      // default headers of every request
	Seed       uint64
	Scenarios  []Scenario // sorted by start time, then name
	Requests   []Request
	Thresholds []Threshold
	Data       []*DataSource
	// DrillID is the shadow tag every request carries (drill_id:); "" sends
	// untagged traffic.
	DrillID string
	// Replay is set when requests come from a recording (replay:).
	Replay *Replay
	// K6Script is set when requests come from a k6 script (k6: {script:}):
	// the script's path resolved against the file's directory. Such a file
	// has scenarios and no Requests; K6Pos is where k6: is written.
	K6Script string
	K6Pos    Pos
}

// Header is one header line; its value may hold generators.
type Header struct {
	Name  string
	Value *Template
}

// Request is one entry of the request mix.
type Request struct {
	Name    string
	Method  string
	Scheme  string    // "http" or "https"
	Host    string    // authority with the port always present: "127.0.0.1:8080"
	Path    *Template // request target: the target's base path + path, with query; never empty
	Headers []Header  // this request's own headers; File.Headers are sent too, these win
	Body    *Template // nil when the request has no body
	Weight  float64   // relative share of the mix, > 0
	Pos     Pos
	// Protocol is HTTP unless the request says protocol: grpc; a gRPC
	// request has GRPC set and no Scheme, Host, Path, Headers or Body.
	Protocol Protocol
	GRPC     *GRPCCall
}

// Option adjusts how a file is parsed.
type Option func(*parser)

// WithTarget replaces the file's target: base URL, so that one scenario can
// be aimed at another deployment (staging, a local copy) without editing
// it. Requests written with an absolute url: keep theirs.
func WithTarget(url string) Option { return func(p *parser) { p.target = url } }

// Load reads and parses the scenario file at path. CSV data files are
// resolved relative to path's directory.
func Load(path string, opts ...Option) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read scenario %s: %w", path, err)
	}
	return Parse(path, data, opts...)
}

// Parse parses a scenario file held in data; path names it in errors and
// anchors relative CSV paths. Every problem is reported at once, as Errors.
func Parse(path string, data []byte, opts ...Option) (*File, error) {
	p := &parser{file: path, dir: filepath.Dir(path), budget: aliasBudget, declared: map[string]bool{}, scenarioNames: map[string]bool{}}
	for _, o := range opts {
		o(p)
	}
	var f *File
	if root := p.decode(data); root != nil {
		f = p.parseFile(root)
	}
	if err := p.failed(data); err != nil {
		return nil, err
	}
	return f, nil
}

// failed returns the problems found, sorted, or nil. yaml.v3 may name the
// line after the last one for an error at the end of input; every position
// is kept inside the file.
func (p *parser) failed(data []byte) error {
	if len(p.errs) == 0 {
		return nil
	}
	last := lineCount(data)
	for _, e := range p.errs {
		if e.Line > last {
			e.Line, e.Col = last, 0
		}
	}
	p.errs.sort()
	return p.errs
}

// lineCount counts lines the way YAML does (LF, CR, CRLF, NEL, LS, PS).
func lineCount(data []byte) int {
	s := string(data)
	n := 1
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\n':
			n++
		case s[i] == '\r':
			if i+1 < len(s) && s[i+1] == '\n' {
				i++
			}
			n++
		case strings.HasPrefix(s[i:], "\u0085"), strings.HasPrefix(s[i:], "\u2028"), strings.HasPrefix(s[i:], "\u2029"):
			n++
		}
	}
	return n
}

// document reads a file's top-level mapping, reporting an empty file
// (with what it needs) and unknown keys; x- keys are extensions, a place
// for anchors, and are skipped.
func (p *parser) document(root *yaml.Node, needs string, keys []string) ([]kv, bool) {
	pairs, ok := p.mapping(root, "")
	if !ok {
		return nil, false
	}
	if len(pairs) == 0 {
		p.errorf(root, "", "the file is empty: %s", needs)
		return nil, false
	}
	var own []kv
	for _, e := range pairs {
		if !strings.HasPrefix(e.key, "x-") {
			own = append(own, e)
		}
	}
	p.known(own, "", keys...)
	return pairs, true
}

var rootKeys = []string{"target", "http", "data", "seed", "scenarios", "requests", "thresholds", "drill_id", "replay", "k6"}

func (p *parser) parseFile(root *yaml.Node) *File {
	f := &File{Path: p.file, Timeout: DefaultTimeout, Seed: DefaultSeed}
	pairs, ok := p.document(root, "it needs at least scenarios and requests", rootKeys)
	if !ok {
		return nil
	}

	var base *baseURL
	if p.target != "" {
		f.Target = p.target
		b, msg := parseBase(p.target)
		if msg != "" {
			p.errAt(Pos{}, "target (--target)", "%s", msg)
		} else {
			base = b
		}
	} else if e, ok := find(pairs, "target"); ok {
		if s, ok := p.str(e.v, "target"); ok {
			f.Target = s
			b, msg := parseBase(s)
			if msg != "" {
				p.errorf(e.v, "target", "%s", msg)
			} else {
				base = b
			}
		}
	}
	if e, ok := find(pairs, "seed"); ok {
		if v, ok := p.integer(e.v, "seed"); ok {
			if v < 0 {
				p.errorf(e.v, "seed", "must be 0 or more")
			} else {
				f.Seed = uint64(v)
			}
		}
	}
	env := &dataEnv{failed: map[string]bool{}}
	if e, ok := find(pairs, "data"); ok {
		env = p.data(e.v)
	}
	f.Data = env.sources
	if e, ok := find(pairs, "http"); ok {
		p.httpSection(e.v, f, env)
	}

	if e, ok := find(pairs, "drill_id"); ok {
		f.DrillID = p.drillID(e.v)
	}
	shadowHeaders(f)
	if e, ok := find(pairs, "replay"); ok {
		if k, ok := find(pairs, "k6"); ok {
			p.errorf(k.k, "k6", "a file takes its requests from either replay: or k6:, not both")
		}
		// The recording supplies the requests (SetReplayRequests).
		if f.Replay = p.replay(e.v); f.Replay != nil {
			p.replayChecks(root, pairs, f.Replay)
			if e, ok := find(pairs, "scenarios"); ok && f.Replay.Mode == ReplayRate {
				f.Scenarios = p.scenarios(e, nil, true)
			}
			if f.Target == "" {
				p.errorf(root, "target", "is required with replay: the base URL the recorded requests are sent to")
			}
		}
		if e, ok := find(pairs, "thresholds"); ok {
			f.Thresholds = p.thresholds(e.v, f)
		}
		return f
	}
	if e, ok := find(pairs, "k6"); ok {
		// The script supplies the requests; scenarios give the load.
		f.K6Script, f.K6Pos = p.k6Section(e), posOf(e.k)
		if r, ok := find(pairs, "requests"); ok {
			p.errorf(r.k, "requests", "a file with k6: takes its requests from the script; remove requests:")
		}
		if e, ok := find(pairs, "scenarios"); ok {
			f.Scenarios = p.scenarios(e, nil, true)
		} else {
			p.errorf(root, "scenarios", "is required with k6: the k6 scenarios that run the script")
		}
		if e, ok := find(pairs, "thresholds"); ok {
			f.Thresholds = p.thresholds(e.v, f)
		}
		return f
	}
	reqs, hasReqs := find(pairs, "requests")
	if !hasReqs {
		p.errorf(root, "requests", "is required: the mix of requests to send")
	} else {
		f.Requests = p.requests(reqs, base, f.Target != "", env)
	}
	if e, ok := find(pairs, "scenarios"); ok {
		f.Scenarios = p.scenarios(e, f.Requests, hasReqs)
	} else {
		p.errorf(root, "scenarios", "is required: at least one k6 scenario, e.g. an executor: constant-arrival-rate")
	}
	if e, ok := find(pairs, "thresholds"); ok {
		f.Thresholds = p.thresholds(e.v, f)
	}
	return f
}

// k6Section parses k6: {script: PATH} and returns the script's path,
// resolved against the scenario file's directory.
func (p *parser) k6Section(e kv) string {
	pairs, ok := p.mapping(e.v, "k6")
	if !ok {
		return ""
	}
	p.known(pairs, "k6", "script")
	se, ok := find(pairs, "script")
	if !ok {
		p.errorf(e.k, "k6.script", "is required: the k6 script (.js) whose requests this file's scenarios run")
		return ""
	}
	s, ok := p.str(se.v, "k6.script")
	if !ok {
		return ""
	}
	if strings.TrimSpace(s) == "" {
		p.errorf(se.v, "k6.script", "must name a script file")
		return ""
	}
	written := s
	if !filepath.IsAbs(s) {
		s = filepath.Join(p.dir, s)
	}
	if p.outside(s) {
		p.errorf(se.v, "k6.script", "%s", outsideMsg(written))
		return ""
	}
	if st, err := os.Stat(s); err != nil {
		p.errorf(se.v, "k6.script", "%s: no such file", s)
		return ""
	} else if st.IsDir() {
		p.errorf(se.v, "k6.script", "%s is a directory, not a script", s)
		return ""
	}
	return s
}

func (p *parser) httpSection(n *yaml.Node, f *File, env *dataEnv) {
	pairs, ok := p.mapping(n, "http")
	if !ok {
		return
	}
	p.known(pairs, "http", "timeout", "http2", "insecureSkipTLSVerify", "headers")
	for _, e := range pairs {
		path := join("http", e.key)
		switch e.key {
		case "timeout":
			if d, ok := p.duration(e.v, path); ok {
				if d <= 0 {
					p.errorf(e.v, path, "must be more than 0")
				} else {
					f.Timeout = d
				}
			}
		case "http2":
			f.HTTP2, _ = p.boolean(e.v, path)
		case "insecureSkipTLSVerify":
			f.Insecure, _ = p.boolean(e.v, path)
		case "headers":
			f.Headers = p.headers(e.v, path, env)
		}
	}
}

// tchar is RFC 9110's token alphabet (header names, methods).
var tchar = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

func (p *parser) headers(n *yaml.Node, path string, env *dataEnv) []Header {
	pairs, ok := p.mapping(n, path)
	if !ok {
		return nil
	}
	var out []Header
	seen := map[string]string{}
	for _, e := range pairs {
		hp := join(path, e.key)
		if !tchar.MatchString(e.key) {
			p.errorf(e.k, hp, "%q is not a valid header name", e.key)
			continue
		}
		if prev, dup := seen[strings.ToLower(e.key)]; dup {
			p.errorf(e.k, hp, "duplicate header (header names ignore case; %q is already set)", prev)
			continue
		}
		seen[strings.ToLower(e.key)] = e.key
		v, ok := p.str(e.v, hp)
		if !ok {
			continue
		}
		if t := p.template(e.v, hp, v, headerMode, env); t != nil {
			out = append(out, Header{Name: e.key, Value: t})
		}
	}
	return out
}

// template compiles src, reporting its problems at n.
func (p *parser) template(n *yaml.Node, path, src string, mode escapeMode, env *dataEnv) *Template {
	t, errs := compileTemplate(src, mode, env)
	for _, msg := range errs {
		p.errorf(n, path, "%s", msg)
	}
	if len(errs) > 0 {
		return nil
	}
	return t
}

// baseURL is a parsed target.
type baseURL struct {
	scheme, host, path string // path without a trailing slash
}

// parseBase parses an absolute http(s) URL with no generators, query or
// fragment. It returns a message for the user on failure.
func parseBase(s string) (*baseURL, string) {
	if strings.Contains(s, "{{") {
		return nil, "the scheme and host can't hold generators ({{ }}); put them in the path"
	}
	if !strings.Contains(s, "://") {
		// "mailto:x" names a scheme; "localhost:8080" is a host without one.
		if u, err := url.Parse(s); err == nil && u.Scheme != "" && strings.Trim(u.Opaque, "0123456789") != "" {
			return nil, fmt.Sprintf("scheme %q is not supported: use http or https", u.Scheme)
		}
		return nil, fmt.Sprintf("%q is not an absolute URL: write it as http://HOST[:PORT][/PATH]", s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Sprintf("invalid URL %q: %v", s, unwrapURLError(err))
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		if u.Scheme == "" {
			return nil, fmt.Sprintf("%q is not an absolute URL: write it as http://HOST[:PORT][/PATH]", s)
		}
		return nil, fmt.Sprintf("scheme %q is not supported: use http or https", u.Scheme)
	}
	if u.Opaque != "" || u.Hostname() == "" {
		return nil, fmt.Sprintf("%q has no host: write it as %s://HOST[:PORT][/PATH]", s, scheme)
	}
	if u.User != nil {
		return nil, "credentials in the URL are not supported: send an Authorization header instead"
	}
	if u.RawQuery != "" || u.ForceQuery {
		return nil, "a target can't have a query: put it in each request's path"
	}
	if u.Fragment != "" || strings.Contains(s, "#") {
		return nil, "a URL fragment (#...) is never sent to the server; remove it"
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if scheme == "https" {
			port = "443"
		}
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return nil, fmt.Sprintf("port %s is out of range 1-65535", port)
	}
	return &baseURL{
		scheme: scheme,
		host:   net.JoinHostPort(u.Hostname(), port),
		path:   strings.TrimRight(u.EscapedPath(), "/"),
	}, ""
}

func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

var requestName = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

var requestKeys = []string{"name", "method", "path", "url", "headers", "body", "weight", "protocol"}

var knownMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"}

func (p *parser) requests(e kv, base *baseURL, hasTarget bool, env *dataEnv) []Request {
	n := resolve(e.v)
	if isNull(n) || (n.Kind == yaml.SequenceNode && len(n.Content) == 0) {
		p.errorf(e.k, "requests", "needs at least one request")
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "requests", "must be a list of requests, got %s", describe(n))
		return nil
	}
	var out []Request
	names := map[string]int{}
	for i, item := range n.Content {
		path := index("requests", i)
		r, ok := p.request(resolve(item), path, base, hasTarget, env)
		if r.Name != "" {
			if line, dup := names[r.Name]; dup {
				p.errAt(r.Pos, join(path, "name"), "duplicate request name %q (first at line %d)", r.Name, line)
				continue
			}
			names[r.Name] = r.Pos.Line
			p.declared[r.Name] = true
			p.declaredList = append(p.declaredList, r.Name)
		}
		if ok {
			out = append(out, r)
		}
	}
	return out
}

func (p *parser) request(n *yaml.Node, path string, base *baseURL, hasTarget bool, env *dataEnv) (Request, bool) {
	r := Request{Method: "GET", Weight: 1, Pos: posOf(n)}
	pairs, ok := p.mapping(n, path)
	if !ok {
		return r, false
	}
	good := true
	bad := func() { good = false }
	grpc := false
	if e, ok := find(pairs, "protocol"); ok {
		switch s, _ := p.str(e.v, join(path, "protocol")); s {
		case "grpc":
			grpc = true
		case "http", "":
		default:
			p.errorf(e.v, join(path, "protocol"), "unknown protocol %q: http (the default) or grpc", s)
			bad()
		}
	}
	if grpc {
		if !p.requestCommon(&r, n, pairs, path) {
			bad()
		}
		if !p.grpcRequest(&r, n, pairs, path, base, env) {
			bad()
		}
		return r, good
	}
	var own []kv
	for _, e := range pairs {
		if slices.Contains(grpcOnlyKeys, e.key) || e.key == "target" || e.key == "timeout" {
			p.errorf(e.k, join(path, e.key), "only a gRPC request takes %s: (set protocol: grpc)", e.key)
			bad()
			continue
		}
		own = append(own, e)
	}
	p.known(own, path, requestKeys...)
	if !p.requestCommon(&r, n, pairs, path) {
		bad()
	}

	if e, ok := find(pairs, "method"); ok {
		if s, ok := p.str(e.v, join(path, "method")); !ok {
			bad()
		} else if !tchar.MatchString(s) {
			p.errorf(e.v, join(path, "method"), "%q is not a valid HTTP method", s)
			bad()
		} else {
			r.Method = s
			for _, m := range knownMethods {
				if strings.EqualFold(s, m) {
					r.Method = m
				}
			}
			if strings.EqualFold(s, "CONNECT") {
				p.errorf(e.v, join(path, "method"), "CONNECT is not supported")
				bad()
			}
		}
	}
	pe, hasPath := find(pairs, "path")
	ue, hasURL := find(pairs, "url")
	switch {
	case hasPath && hasURL:
		p.errorf(ue.k, join(path, "url"), "give either path or url, not both")
		bad()
	case !hasPath && !hasURL:
		p.errorf(n, join(path, "path"), "is required (or url: for an absolute URL)")
		bad()
	case hasPath:
		s, ok := p.str(pe.v, join(path, "path"))
		switch {
		case !ok:
			bad()
		case !hasTarget:
			p.errorf(pe.k, join(path, "path"), "needs a top-level target: to join it to (or use url: with an absolute URL)")
			bad()
		case !strings.HasPrefix(s, "/") && !strings.HasPrefix(s, "{{") && !strings.HasPrefix(s, "?"):
			p.errorf(pe.v, join(path, "path"), "must start with /, got %q", s)
			bad()
		default:
			if base == nil {
				// The target's own error is reported; still check the path.
				base = &baseURL{}
				bad()
			}
			r.Scheme, r.Host = base.scheme, base.host
			src := base.path + s
			if base.path == "" && strings.HasPrefix(s, "?") {
				src = "/" + s
			}
			if r.Path = p.template(pe.v, join(path, "path"), src, urlMode, env); r.Path == nil {
				bad()
			}
		}
	case hasURL:
		s, ok := p.str(ue.v, join(path, "url"))
		if !ok {
			bad()
			break
		}
		origin, rest := splitURL(s)
		b, msg := parseBase(origin)
		if msg != "" {
			p.errorf(ue.v, join(path, "url"), "%s", msg)
			bad()
			break
		}
		if rest == "" || rest[0] == '?' {
			rest = "/" + rest
		}
		r.Scheme, r.Host = b.scheme, b.host
		if r.Path = p.template(ue.v, join(path, "url"), rest, urlMode, env); r.Path == nil {
			bad()
		}
	}
	if e, ok := find(pairs, "headers"); ok {
		before := len(p.errs)
		r.Headers = p.headers(e.v, join(path, "headers"), env)
		if len(p.errs) > before {
			bad()
		}
	}
	if e, ok := find(pairs, "body"); ok && !isNull(e.v) {
		v := resolve(e.v)
		if v.Kind != yaml.ScalarNode {
			p.errorf(v, join(path, "body"), "must be a string, got %s (write JSON as a quoted or block string: body: |)", describe(v))
			bad()
		} else if v.Value != "" {
			if r.Body = p.template(v, join(path, "body"), v.Value, rawMode, env); r.Body == nil {
				bad()
			}
		}
	}
	return r, good
}

// requestCommon parses the keys every request has: name and weight.
func (p *parser) requestCommon(r *Request, n *yaml.Node, pairs []kv, path string) bool {
	good := true
	bad := func() { good = false }
	if e, ok := find(pairs, "name"); ok {
		r.Pos = posOf(e.k)
		if s, ok := p.str(e.v, join(path, "name")); !ok {
			bad()
		} else if !requestName.MatchString(s) {
			p.errorf(e.v, join(path, "name"), "%q: a request name may only hold letters, digits, _, . and -", s)
			bad()
		} else {
			r.Name = s
		}
	} else {
		p.errorf(n, join(path, "name"), "is required")
		bad()
	}
	if e, ok := find(pairs, "weight"); ok {
		if w, ok := p.number(e.v, join(path, "weight")); !ok {
			bad()
		} else if w <= 0 || w > math.MaxFloat64/1e6 {
			p.errorf(e.v, join(path, "weight"), "must be more than 0, got %v", w)
			bad()
		} else {
			r.Weight = w
		}
	}
	return good
}

// splitURL splits an absolute URL into its origin (scheme://authority) and
// the rest (path, query), without parsing the rest, which may hold
// generators.
func splitURL(s string) (origin, rest string) {
	i := strings.Index(s, "://")
	if i < 0 {
		return s, ""
	}
	j := strings.IndexAny(s[i+3:], "/?#")
	if j < 0 {
		return s, ""
	}
	j += i + 3
	if s[j] == '#' {
		return s, "" // parseBase reports the fragment
	}
	// Generators are only allowed after the authority.
	if k := strings.Index(s[:j], "{{"); k >= 0 {
		return s, ""
	}
	return s[:j], s[j:]
}
