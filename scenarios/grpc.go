package scenarios

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bufbuild/protocompile"
	"github.com/bufbuild/protocompile/linker"
	"github.com/bufbuild/protocompile/reporter"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
	"gopkg.in/yaml.v3"
)

// Protocol is what a request speaks.
type Protocol uint8

// Protocols of Request.Protocol.
const (
	HTTP Protocol = iota // HTTP/1.1 or HTTP/2 (the default)
	GRPC                 // a gRPC call (protocol: grpc); Request.GRPC holds it
)

// String returns "http" or "grpc".
func (p Protocol) String() string {
	if p == GRPC {
		return "grpc"
	}
	return "http"
}

// MaxGRPCConnections bounds a gRPC request's connections:.
const MaxGRPCConnections = 1024

// GRPCCall is a gRPC request (protocol: grpc): what to call, where, and the
// message to send. It is immutable once the file is parsed and resolved, and
// shared by every VU.
type GRPCCall struct {
	Target    string // dial address host:port
	Authority string // the :authority sent; "" = Target
	TLS       bool   // TLS (the file's insecureSkipTLSVerify applies)
	// FullMethod is the method as gRPC names it on the wire:
	// "/pkg.Service/Method".
	FullMethod string
	// Method describes the call once the schema is known: right after
	// parsing with proto:, after Resolve with reflection: true.
	Method      protoreflect.MethodDescriptor
	Message     *Template // the input message as JSON (protojson); "{}" when not given
	Proto       string    // the .proto file, resolved against the scenario file; "" with reflection
	ImportPaths []string  // resolved like Proto
	// ProtoSources are the .proto files the compilation read from disk:
	// Proto and every file it imports (not the built-in google/protobuf
	// ones). A distributed run ships them to the agents.
	ProtoSources []string
	Reflection   bool     // the schema comes from the server (reflection v1, else v1alpha)
	Metadata     []Header // names in lower case; values may hold generators
	Timeout      time.Duration
	Connections  int // HTTP/2 connections to the target; 0 = the engine's default
	// GRPCGo sends unary calls through grpc-go instead of loadcap's own
	// HTTP/2 transport (transport: grpc-go): a fallback. Server-streaming
	// calls always use grpc-go.
	GRPCGo bool

	// Where the request's keys are, for problems found after parsing
	// (Resolve).
	file                string
	path                string
	methodPos, msgPos   Pos
	service, methodName string
	data                []*DataSource
	protoFiles          linker.Files
}

// Streaming reports whether the method streams its responses: the call is
// then one request whose latency runs to the last message.
func (g *GRPCCall) Streaming() bool { return g.Method != nil && g.Method.IsStreamingServer() }

var grpcKeys = []string{"name", "protocol", "target", "method", "message", "proto", "import_paths", "reflection",
	"metadata", "timeout", "tls", "authority", "connections", "transport", "weight"}

// httpOnlyKeys are request keys that mean nothing to a gRPC call.
var httpOnlyKeys = map[string]string{
	"path":    "a gRPC request has no path: name the call with method: pkg.Service/Method",
	"url":     "a gRPC request has no url: give target: HOST:PORT",
	"headers": "a gRPC request sends metadata:, not headers:",
	"body":    "a gRPC request sends message: (JSON of the input message), not body:",
}

// grpcOnlyKeys are gRPC request keys an HTTP request may not use.
var grpcOnlyKeys = []string{"message", "proto", "import_paths", "reflection", "metadata", "tls", "authority", "connections", "transport"}

// metadataKey is gRPC's rule for metadata keys (after lower-casing).
var metadataKey = regexp.MustCompile(`^[0-9a-z_.-]+$`)

// methodName: pkg.Service/Method, pkg.Service.Method or /pkg.Service/Method.
var methodName = regexp.MustCompile(`^/?([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)[/.]([A-Za-z_][A-Za-z0-9_]*)$`)

// protoCache holds the .proto files compiled while parsing one scenario
// file, so requests sharing a schema compile it once.
type protoCache map[string]protoResult

type protoResult struct {
	files   linker.Files
	sources []string // the .proto files read from disk, the compiled one first
	errs    []string
}

// grpcRequest parses a request with protocol: grpc. r holds what request
// already parsed (name, weight, position).
func (p *parser) grpcRequest(r *Request, n *yaml.Node, pairs []kv, path string, base *baseURL, env *dataEnv) bool {
	good := true
	bad := func() { good = false }
	r.Protocol = GRPC
	r.Method = "POST"
	g := &GRPCCall{file: p.file, path: path, data: env.sources}
	r.GRPC = g
	for _, e := range pairs {
		if why, ok := httpOnlyKeys[e.key]; ok {
			p.errorf(e.k, join(path, e.key), "%s", why)
			bad()
		} else if !slices.Contains(grpcKeys, e.key) {
			p.errorf(e.k, join(path, e.key), "unknown key%s; a gRPC request takes: %s", suggest(e.key, grpcKeys), strings.Join(grpcKeys, ", "))
			bad()
		}
	}
	if e, ok := find(pairs, "target"); ok {
		if s, ok := p.str(e.v, join(path, "target")); !ok {
			bad()
		} else if msg := checkHostPort(s); msg != "" {
			p.errorf(e.v, join(path, "target"), "%s", msg)
			bad()
		} else {
			g.Target = s
		}
	} else if base != nil && base.host != "" {
		g.Target, g.TLS = base.host, base.scheme == "https"
	} else {
		p.errorf(n, join(path, "target"), "is required (HOST:PORT), or a top-level target: whose host and port it takes")
		bad()
	}
	if e, ok := find(pairs, "tls"); ok {
		if b, ok := p.boolean(e.v, join(path, "tls")); ok {
			g.TLS = b
		} else {
			bad()
		}
	}
	if e, ok := find(pairs, "authority"); ok {
		if s, ok := p.str(e.v, join(path, "authority")); !ok {
			bad()
		} else if s == "" || strings.ContainsAny(s, " \t\r\n/@") {
			p.errorf(e.v, join(path, "authority"), "%q is not a valid authority: HOST or HOST:PORT", s)
			bad()
		} else {
			g.Authority = s
		}
	}
	if e, ok := find(pairs, "method"); ok {
		g.methodPos = posOf(e.v)
		if s, ok := p.str(e.v, join(path, "method")); !ok {
			bad()
		} else if m := methodName.FindStringSubmatch(s); m == nil {
			p.errorf(e.v, join(path, "method"), "%q is not a gRPC method: write it as pkg.Service/Method", s)
			bad()
		} else {
			g.service, g.methodName = m[1], m[2]
			g.FullMethod = "/" + m[1] + "/" + m[2]
		}
	} else {
		p.errorf(n, join(path, "method"), "is required: the call, as pkg.Service/Method")
		bad()
	}
	g.msgPos = posOf(n)
	if e, ok := find(pairs, "message"); ok && !isNull(e.v) {
		v := resolve(e.v)
		g.msgPos = posOf(v)
		if v.Kind != yaml.ScalarNode {
			p.errorf(v, join(path, "message"), "must be a string of JSON, got %s (write it as a quoted or block string: message: |)", describe(v))
			bad()
		} else if g.Message = p.template(v, join(path, "message"), v.Value, jsonMode, env); g.Message == nil {
			bad()
		}
	} else {
		g.Message = literal("{}")
	}
	if e, ok := find(pairs, "metadata"); ok {
		before := len(p.errs)
		g.Metadata = p.metadata(e.v, join(path, "metadata"), env)
		if len(p.errs) > before {
			bad()
		}
	}
	if e, ok := find(pairs, "timeout"); ok {
		if d, ok := p.duration(e.v, join(path, "timeout")); !ok {
			bad()
		} else if d <= 0 {
			p.errorf(e.v, join(path, "timeout"), "must be more than 0")
			bad()
		} else {
			g.Timeout = d
		}
	}
	if e, ok := find(pairs, "connections"); ok {
		if v, ok := p.integer(e.v, join(path, "connections")); !ok {
			bad()
		} else if v < 1 || v > MaxGRPCConnections {
			p.errorf(e.v, join(path, "connections"), "must be between 1 and %d, got %d", MaxGRPCConnections, v)
			bad()
		} else {
			g.Connections = int(v)
		}
	}
	if e, ok := find(pairs, "transport"); ok {
		switch s, ok := p.str(e.v, join(path, "transport")); {
		case !ok:
			bad()
		case s == "loadcap":
		case s == "grpc-go":
			g.GRPCGo = true
		default:
			p.errorf(e.v, join(path, "transport"), "must be loadcap (the default) or grpc-go, got %q", s)
			bad()
		}
	}
	if e, ok := find(pairs, "import_paths"); ok {
		g.ImportPaths = p.importPaths(e.v, join(path, "import_paths"))
	}
	pe, hasProto := find(pairs, "proto")
	re, hasRefl := find(pairs, "reflection")
	if hasRefl {
		if b, ok := p.boolean(re.v, join(path, "reflection")); !ok {
			bad()
		} else {
			g.Reflection = b
		}
	}
	switch {
	case hasProto && g.Reflection:
		p.errorf(re.k, join(path, "reflection"), "give either proto: or reflection: true, not both")
		bad()
	case hasProto:
		s, ok := p.str(pe.v, join(path, "proto"))
		if !ok || strings.TrimSpace(s) == "" {
			if ok {
				p.errorf(pe.v, join(path, "proto"), "must name a .proto file")
			}
			bad()
			break
		}
		written := s
		if !filepath.IsAbs(s) {
			s = filepath.Join(p.dir, s)
		}
		if p.outside(s) {
			p.errorf(pe.v, join(path, "proto"), "%s", outsideMsg(written))
			bad()
			break
		}
		g.Proto = s
		if !p.compileProto(g, pe.v, join(path, "proto")) {
			bad()
			break
		}
		if g.FullMethod != "" && good {
			// The schema is known: check the method and the message now.
			if errs := g.resolve(g.findMethod); len(errs) > 0 {
				p.errs = append(p.errs, errs...)
				bad()
			}
		}
	case !g.Reflection:
		p.errorf(n, join(path, "proto"), "is required: the .proto file that declares the method (or reflection: true to ask the server)")
		bad()
	}
	if len(g.ImportPaths) > 0 && g.Reflection {
		e, _ := find(pairs, "import_paths")
		p.errorf(e.k, join(path, "import_paths"), "only applies with proto:")
		bad()
	}
	return good
}

// checkHostPort returns a message when s is not HOST:PORT.
func checkHostPort(s string) string {
	if strings.Contains(s, "://") {
		return fmt.Sprintf("%q: a gRPC target is HOST:PORT, without a scheme (set tls: true for TLS)", s)
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return fmt.Sprintf("%q is not HOST:PORT", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Sprintf("port %s is out of range 1-65535", port)
	}
	return ""
}

func (p *parser) metadata(n *yaml.Node, path string, env *dataEnv) []Header {
	pairs, ok := p.mapping(n, path)
	if !ok {
		return nil
	}
	var out []Header
	seen := map[string]bool{}
	for _, e := range pairs {
		mp := join(path, e.key)
		k := strings.ToLower(e.key)
		switch {
		case !metadataKey.MatchString(k):
			p.errorf(e.k, mp, "%q is not a valid metadata key: letters, digits, - _ and . only", e.key)
			continue
		case strings.HasPrefix(k, "grpc-"):
			p.errorf(e.k, mp, "keys starting with grpc- are reserved for gRPC itself")
			continue
		case strings.HasSuffix(k, "-bin"):
			p.errorf(e.k, mp, "binary (-bin) metadata is not supported")
			continue
		case seen[k]:
			p.errorf(e.k, mp, "duplicate metadata key (keys ignore case)")
			continue
		}
		seen[k] = true
		v, ok := p.str(e.v, mp)
		if !ok {
			continue
		}
		if t := p.template(e.v, mp, v, headerMode, env); t != nil {
			out = append(out, Header{Name: k, Value: t})
		}
	}
	return out
}

func (p *parser) importPaths(n *yaml.Node, path string) []string {
	n = resolve(n)
	if n == nil || n.Kind != yaml.SequenceNode {
		p.errorf(n, path, "must be a list of directories, got %s", describe(n))
		return nil
	}
	var out []string
	for i, e := range n.Content {
		s, ok := p.str(e, index(path, i))
		if !ok {
			continue
		}
		written := s
		if !filepath.IsAbs(s) {
			s = filepath.Join(p.dir, s)
		}
		if p.outside(s) {
			p.errorf(e, index(path, i), "%s", outsideMsg(written))
			continue
		}
		if st, err := os.Stat(s); err != nil || !st.IsDir() {
			p.errorf(e, index(path, i), "%s is not a directory", s)
			continue
		}
		out = append(out, s)
	}
	return out
}

// compileProto compiles g.Proto (once per file and import paths), reporting
// its problems at the proto: key.
func (p *parser) compileProto(g *GRPCCall, n *yaml.Node, path string) bool {
	key := g.Proto + "\x00" + strings.Join(g.ImportPaths, "\x00")
	if p.protos == nil {
		p.protos = protoCache{}
	}
	res, ok := p.protos[key]
	if !ok {
		root := ""
		if p.confined {
			root = p.dir
		}
		res = compileProtoFile(g.Proto, g.ImportPaths, root)
		p.protos[key] = res
	}
	for _, msg := range res.errs {
		p.errorf(n, path, "%s", msg)
	}
	if len(res.errs) > 0 {
		return false
	}
	g.protoFiles, g.ProtoSources = res.files, res.sources
	return true
}

// compileProtoFile compiles the .proto file at path with protocompile. The
// file is named relative to the first import path that holds it, else to
// its own directory (which is then searched for its imports too); the
// standard google/protobuf imports are built in. With root set (a
// confined parse), an import that resolves outside root is not found,
// whether it exists or not.
func compileProtoFile(path string, importPaths []string, root string) protoResult {
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return protoResult{errs: []string{fmt.Sprintf("%s: no such file", path)}}
		}
		return protoResult{errs: []string{err.Error()}}
	}
	name := ""
	for _, ip := range importPaths {
		if rel, err := filepath.Rel(ip, path); err == nil && !strings.HasPrefix(rel, "..") {
			name = filepath.ToSlash(rel)
			break
		}
	}
	paths := importPaths
	if name == "" {
		name = filepath.Base(path)
		paths = append([]string{filepath.Dir(path)}, importPaths...)
	}
	var errs, sources []string
	c := protocompile.Compiler{
		Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{ImportPaths: paths,
			Accessor: func(path string) (io.ReadCloser, error) {
				if root != "" && !insideDir(root, path) {
					return nil, fs.ErrNotExist
				}
				f, err := os.Open(path)
				if err == nil {
					sources = append(sources, path)
				}
				return f, err
			}}),
		Reporter: reporter.NewReporter(func(err reporter.ErrorWithPos) error {
			errs = append(errs, err.Error())
			return nil // keep going: report every problem
		}, nil),
	}
	files, err := c.Compile(context.Background(), name)
	if err != nil && len(errs) == 0 {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		for i := range errs {
			errs[i] = "compile " + errs[i]
		}
		return protoResult{errs: errs}
	}
	return protoResult{files: files, sources: sources}
}

// findMethod looks the call's service up in the compiled file and its
// imports.
func (g *GRPCCall) findMethod(service protoreflect.FullName) protoreflect.ServiceDescriptor {
	var found protoreflect.ServiceDescriptor
	for _, f := range g.protoFiles {
		walkFiles(f, map[string]bool{}, func(fd protoreflect.FileDescriptor) {
			if sd := fd.Services().ByName(service.Name()); sd != nil && sd.FullName() == service && found == nil {
				found = sd
			}
		})
	}
	return found
}

func (g *GRPCCall) services() []string {
	var out []string
	for _, f := range g.protoFiles {
		walkFiles(f, map[string]bool{}, func(fd protoreflect.FileDescriptor) {
			for i := 0; i < fd.Services().Len(); i++ {
				out = append(out, string(fd.Services().Get(i).FullName()))
			}
		})
	}
	return out
}

func walkFiles(fd protoreflect.FileDescriptor, seen map[string]bool, fn func(protoreflect.FileDescriptor)) {
	if seen[fd.Path()] {
		return
	}
	seen[fd.Path()] = true
	fn(fd)
	for i := 0; i < fd.Imports().Len(); i++ {
		walkFiles(fd.Imports().Get(i).FileDescriptor, seen, fn)
	}
}

// ServiceName is the call's service, "pkg.Service": what reflection asks
// the server for.
func (g *GRPCCall) ServiceName() string { return g.service }

// Resolve completes a reflection: true call with the service the server
// described (find returns nil when it has no such service): it checks the
// method and validates the message against its input type, reporting
// problems as Errors at the request's keys. It is called once, before the
// run starts.
func (g *GRPCCall) Resolve(find func(protoreflect.FullName) protoreflect.ServiceDescriptor) error {
	if errs := g.resolve(find); len(errs) > 0 {
		return errs
	}
	return nil
}

func (g *GRPCCall) resolve(find func(protoreflect.FullName) protoreflect.ServiceDescriptor) Errors {
	errAt := func(pos Pos, path, format string, args ...any) Errors {
		return Errors{{File: g.file, Pos: pos, Path: path, Msg: fmt.Sprintf(format, args...)}}
	}
	mpath := join(g.path, "method")
	sd := find(protoreflect.FullName(g.service))
	if sd == nil {
		where := "the server's reflection"
		if g.Proto != "" {
			where = filepath.Base(g.Proto)
			svcs := g.services()
			return errAt(g.methodPos, mpath, "unknown service %q in %s%s; services: %s", g.service, where,
				suggest(g.service, svcs), strings.Join(svcs, ", "))
		}
		return errAt(g.methodPos, mpath, "unknown service %q (not found by %s)", g.service, where)
	}
	md := sd.Methods().ByName(protoreflect.Name(g.methodName))
	if md == nil {
		var names []string
		for i := 0; i < sd.Methods().Len(); i++ {
			names = append(names, string(sd.Methods().Get(i).Name()))
		}
		return errAt(g.methodPos, mpath, "service %s has no method %q%s; methods: %s", g.service, g.methodName,
			suggest(g.methodName, names), strings.Join(names, ", "))
	}
	if md.IsStreamingClient() {
		return errAt(g.methodPos, mpath, "%s is a client-streaming method: loadcap sends unary and server-streaming calls only", g.FullMethod)
	}
	if msgs := g.checkMessage(md.Input()); len(msgs) > 0 {
		var errs Errors
		for _, m := range msgs {
			errs = append(errs, &Error{File: g.file, Pos: g.msgPos, Path: join(g.path, "message") + m.path, Msg: m.msg})
		}
		return errs
	}
	g.Method = md
	return nil
}

// checkMessage renders a sample of the message and checks it against in:
// first field by field (to name the field at fault), then with protojson.
func (g *GRPCCall) checkMessage(in protoreflect.MessageDescriptor) []jsonProblem {
	rng := rand.New(rand.NewPCG(1, 2))
	sample := g.Message.appendSample(nil, rng, g.data)
	v, err := decodeJSON(sample)
	if err != nil {
		what := "the message"
		if !g.Message.Static() {
			what = "the message rendered with sample values"
		}
		return []jsonProblem{{"", fmt.Sprintf("%s is not valid JSON: %v: %s", what, err, clip(string(sample)))}}
	}
	if probs := checkJSON(in, v, ""); len(probs) > 0 {
		return probs
	}
	if err := protojson.Unmarshal(sample, dynamicpb.NewMessage(in)); err != nil {
		return []jsonProblem{{"", fmt.Sprintf("does not fit %s: %v", in.FullName(), err)}}
	}
	return nil
}
