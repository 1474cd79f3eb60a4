// Package grpcctest is an in-process gRPC server for tests of the gRPC
// client and the engine: the loadtest.Shop service of
// testdata/loadtest.proto, compiled at start with protocompile (no protoc,
// no generated code) and served with dynamic messages. It listens on
// 127.0.0.1 only.
package grpcctest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"math/big"
	"net"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/bufbuild/protocompile"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/reflection"
	rv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	rv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
)

// Reflection modes of Options.Reflection.
const (
	NoReflection = iota
	ReflectionV1 // v1 and v1alpha, as grpc-go's reflection.Register
	ReflectionV1AlphaOnly
)

// Options configures a Server.
type Options struct {
	TLS        bool // serve TLS with a fresh self-signed certificate
	Reflection int
	// Record keeps every Place call (message, metadata, peer) for Calls.
	Record bool
	// StallEvery and StallFor make the whole server stop answering for
	// StallFor at the start of every StallEvery, counted from its start
	// (a coordinated-omission target).
	StallEvery, StallFor time.Duration
	// ServerOptions are added to the server's (MaxConcurrentStreams,
	// keepalive parameters, ...).
	ServerOptions []grpc.ServerOption
}

// Call is one Place call as the server received it.
type Call struct {
	Message   map[string]any // the order as protojson reads it back
	Metadata  metadata.MD
	Authority string
	Peer      string // the client's address: one per connection
}

// Server is a running loadtest.Shop server.
type Server struct {
	Addr  string // 127.0.0.1:PORT
	Proto string // path of loadtest.proto
	Dir   string // its directory (an import path)
	Files *protoregistry.Files
	srv   *grpc.Server
	opts  Options
	start time.Time

	mu    sync.Mutex
	calls []Call
	peers map[string]bool
	count int64
}

// ProtoDir is the directory of loadtest.proto and item.proto.
func ProtoDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testdata")
}

// Start compiles the service and serves it until the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	s := &Server{Dir: ProtoDir(), opts: o, peers: map[string]bool{}, start: time.Now()}
	s.Proto = filepath.Join(s.Dir, "loadtest.proto")
	c := protocompile.Compiler{Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{ImportPaths: []string{s.Dir}})}
	files, err := c.Compile(context.Background(), "loadtest.proto")
	if err != nil {
		t.Fatalf("compile loadtest.proto: %v", err)
	}
	s.Files = new(protoregistry.Files)
	var reg func(fd protoreflect.FileDescriptor)
	reg = func(fd protoreflect.FileDescriptor) {
		if _, err := s.Files.FindFileByPath(fd.Path()); err == nil {
			return
		}
		for i := 0; i < fd.Imports().Len(); i++ {
			reg(fd.Imports().Get(i).FileDescriptor)
		}
		if err := s.Files.RegisterFile(fd); err != nil {
			t.Fatalf("register %s: %v", fd.Path(), err)
		}
	}
	reg(files[0])
	sd := files[0].Services().ByName("Shop")

	var sopts []grpc.ServerOption
	if o.TLS {
		sopts = append(sopts, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{selfSigned(t)}})))
	}
	if o.StallEvery > 0 {
		sopts = append(sopts, grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			s.stall()
			return h(ctx, req)
		}))
	}
	sopts = append(sopts, o.ServerOptions...)
	s.srv = grpc.NewServer(sopts...)
	s.srv.RegisterService(s.serviceDesc(sd), struct{}{})
	ropts := reflection.ServerOptions{Services: s.srv, DescriptorResolver: s.Files}
	switch o.Reflection {
	case ReflectionV1:
		rv1.RegisterServerReflectionServer(s.srv, reflection.NewServerV1(ropts))
		rv1alpha.RegisterServerReflectionServer(s.srv, reflection.NewServer(ropts))
	case ReflectionV1AlphaOnly:
		rv1alpha.RegisterServerReflectionServer(s.srv, reflection.NewServer(ropts))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = ln.Addr().String()
	go func() { _ = s.srv.Serve(ln) }()
	t.Cleanup(s.srv.Stop)
	return s
}

// Stop closes the listener and every connection at once: calls in flight
// see their connection break.
func (s *Server) Stop() { s.srv.Stop() }

// GracefulStop stops taking connections and streams (GOAWAY) and returns
// when the calls in flight have ended.
func (s *Server) GracefulStop() { s.srv.GracefulStop() }

// RestartStalls makes the stall windows count from now: a test calls it
// just before its run, so that the windows fall at known offsets of the
// run however long the setup took.
func (s *Server) RestartStalls() {
	s.mu.Lock()
	s.start = time.Now()
	s.mu.Unlock()
}

// stall holds a call while the server is inside a stall window.
func (s *Server) stall() {
	s.mu.Lock()
	start := s.start
	s.mu.Unlock()
	phase := time.Since(start) % s.opts.StallEvery
	if phase < s.opts.StallFor {
		time.Sleep(s.opts.StallFor - phase)
	}
}

// Calls returns the Place calls received so far (Options.Record).
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// Count is the number of calls of any method answered.
func (s *Server) Count() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// Peers is the number of distinct client connections seen.
func (s *Server) Peers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.peers)
}

func (s *Server) seen(ctx context.Context, msg protoreflect.ProtoMessage, record bool) {
	addr := ""
	if p, ok := peer.FromContext(ctx); ok {
		addr = p.Addr.String()
	}
	s.mu.Lock()
	s.count++
	s.peers[addr] = true
	s.mu.Unlock()
	if !record || !s.opts.Record {
		return
	}
	c := Call{Peer: addr}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		c.Metadata = md.Copy()
		if a := md.Get(":authority"); len(a) > 0 {
			c.Authority = a[0]
		}
	}
	if b, err := protojson.Marshal(msg); err == nil {
		_ = json.Unmarshal(b, &c.Message)
	}
	s.mu.Lock()
	s.calls = append(s.calls, c)
	s.mu.Unlock()
}

func (s *Server) serviceDesc(sd protoreflect.ServiceDescriptor) *grpc.ServiceDesc {
	m := func(name string) protoreflect.MethodDescriptor { return sd.Methods().ByName(protoreflect.Name(name)) }
	receipt := func(id string, qty int32, pad int) *dynamicpb.Message {
		out := m("Place").Output()
		r := dynamicpb.NewMessage(out)
		r.Set(out.Fields().ByName("id"), protoreflect.ValueOfString(id))
		r.Set(out.Fields().ByName("qty"), protoreflect.ValueOfInt32(qty))
		if pad > 0 {
			r.Set(out.Fields().ByName("pad"), protoreflect.ValueOfBytes(make([]byte, pad)))
		}
		return r
	}
	unary := func(name string, fn func(ctx context.Context, in *dynamicpb.Message) (any, error)) grpc.MethodDesc {
		md := m(name)
		return grpc.MethodDesc{MethodName: name, Handler: func(_ any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
			in := dynamicpb.NewMessage(md.Input())
			if err := dec(in); err != nil {
				return nil, err
			}
			h := func(ctx context.Context, _ any) (any, error) { return fn(ctx, in) }
			if ic == nil {
				return h(ctx, in)
			}
			return ic(ctx, in, &grpc.UnaryServerInfo{FullMethod: "/" + string(sd.FullName()) + "/" + name}, h)
		}}
	}
	field := func(in *dynamicpb.Message, name string) protoreflect.Value {
		return in.Get(in.Descriptor().Fields().ByName(protoreflect.Name(name)))
	}
	return &grpc.ServiceDesc{
		ServiceName: string(sd.FullName()),
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{
			unary("Place", func(ctx context.Context, in *dynamicpb.Message) (any, error) {
				s.seen(ctx, in, true)
				return receipt(field(in, "sku").String(), int32(field(in, "qty").Int()), 16), nil
			}),
			unary("Fail", func(ctx context.Context, in *dynamicpb.Message) (any, error) {
				s.seen(ctx, in, false)
				if c := codes.Code(field(in, "code").Int()); c != codes.OK {
					return nil, status.Errorf(c, "failing as asked: %s", c)
				}
				return receipt("ok", 0, 0), nil
			}),
			unary("Slow", func(ctx context.Context, in *dynamicpb.Message) (any, error) {
				select {
				case <-time.After(time.Duration(field(in, "ms").Int()) * time.Millisecond):
				case <-ctx.Done():
					return nil, status.FromContextError(ctx.Err()).Err()
				}
				s.seen(ctx, in, false)
				return receipt("slow", 0, 0), nil
			}),
		},
		Streams: []grpc.StreamDesc{
			{StreamName: "List", ServerStreams: true, Handler: func(_ any, st grpc.ServerStream) error {
				in := dynamicpb.NewMessage(m("List").Input())
				if err := st.RecvMsg(in); err != nil {
					return err
				}
				s.seen(st.Context(), in, false)
				out := m("List").Output()
				for i := range field(in, "n").Int() {
					it := dynamicpb.NewMessage(out)
					it.Set(out.Fields().ByName("price"), protoreflect.ValueOfInt64(i+1))
					if err := st.SendMsg(it); err != nil {
						return err
					}
				}
				return nil
			}},
			{StreamName: "Upload", ClientStreams: true, Handler: func(_ any, st grpc.ServerStream) error {
				return status.Error(codes.Unimplemented, "not in tests")
			}},
		},
		Metadata: "loadtest.proto",
	}
}

// selfSigned makes a certificate for 127.0.0.1 and localhost.
func selfSigned(t testing.TB) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "loadcap test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
