package shadow_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/loadcap/loadcap/shadow"
)

// nopWriter is a ResponseWriter that costs nothing, so that the benchmarks
// measure the middleware.
type nopWriter struct{ h http.Header }

func (w nopWriter) Header() http.Header         { return w.h }
func (w nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w nopWriter) WriteHeader(int)             {}

// BenchmarkMiddleware is the overhead of Middleware per request, the
// handler doing nothing. README quotes it; budget: untagged ≤ 200 ns and
// 0 allocs, tagged ≤ 1 µs.
func BenchmarkMiddleware(b *testing.B) {
	cases := []struct {
		name    string
		headers map[string]string
	}{
		{"untagged", nil},
		{"untagged-otel-baggage", map[string]string{"Baggage": "tenant=acme,user=alice", "Traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}},
		{"tagged-header", map[string]string{shadow.Header: "drill-2024-11-21"}},
		{"tagged-baggage", map[string]string{"Baggage": "tenant=acme,loadcap.shadow=drill-2024-11-21"}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			p := newPolicy(b, shadow.Tables("orders"))
			h := p.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
			r := httptest.NewRequest("GET", "/api/orders/42", nil)
			r.Header.Set("User-Agent", "loadcap")
			r.Header.Set("Accept", "application/json")
			for k, v := range c.headers {
				r.Header.Set(k, v)
			}
			w := nopWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, r)
			}
		})
	}
}

// BenchmarkTable is the cost of asking for a table name.
func BenchmarkTable(b *testing.B) {
	p := newPolicy(b, shadow.Tables("orders", "events_*"))
	for _, c := range []struct {
		name string
		ctx  context.Context
	}{{"untagged", context.Background()}, {"tagged", tagged(b, p, "d1")}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := shadow.Table(c.ctx, "orders"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// okTransport answers every request at once with the same response, and
// allocates nothing, so that BenchmarkTransport measures Transport alone.
type okTransport struct{ resp *http.Response }

func (t okTransport) RoundTrip(*http.Request) (*http.Response, error) { return t.resp, nil }

// BenchmarkTransport is the overhead of Transport per outbound request,
// over a RoundTripper that answers at once.
func BenchmarkTransport(b *testing.B) {
	p := newPolicy(b, shadow.AllowHosts("127.0.0.1"))
	rt := p.Transport(okTransport{&http.Response{StatusCode: 200, Body: http.NoBody}})
	for _, c := range []struct {
		name string
		ctx  context.Context
	}{{"untagged", context.Background()}, {"tagged", tagged(b, p, "d1")}} {
		b.Run(c.name, func(b *testing.B) {
			r, _ := http.NewRequestWithContext(c.ctx, "GET", "http://127.0.0.1:8080/api", nil)
			r.Header.Set("Baggage", "tenant=acme")
			b.ReportAllocs()
			for b.Loop() {
				if _, err := rt.RoundTrip(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkUnaryServerInterceptor is the overhead of the gRPC server
// interceptor per call.
func BenchmarkUnaryServerInterceptor(b *testing.B) {
	p := newPolicy(b, shadow.Tables("orders"))
	icpt := p.UnaryServerInterceptor()
	handler := func(context.Context, any) (any, error) { return nil, nil }
	info := &grpc.UnaryServerInfo{FullMethod: "/x.Y/Z"}
	for _, c := range []struct {
		name string
		md   metadata.MD
	}{
		{"untagged", metadata.Pairs("user-agent", "grpc-go")},
		{"tagged", metadata.Pairs("user-agent", "grpc-go", shadow.MetadataKey, "drill-2024-11-21")},
	} {
		b.Run(c.name, func(b *testing.B) {
			ctx := metadata.NewIncomingContext(context.Background(), c.md)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := icpt(ctx, nil, info, handler); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// grpcMD is the incoming metadata of a call as grpc-go's server transport
// builds it (lower-case keys), from a client instrumented with
// OpenTelemetry.
func grpcMD(kv ...string) metadata.MD {
	return metadata.Pairs(append([]string{
		":authority", "127.0.0.1:50051", "content-type", "application/grpc",
		"user-agent", "grpc-go/1.64.0", "te", "trailers",
		"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"baggage", "tenant=acme,user=alice",
	}, kv...)...)
}

// fakeServerStream is a grpc.ServerStream with a context and nothing else.
type fakeServerStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s fakeServerStream) Context() context.Context { return s.ctx }
func (fakeServerStream) SetTrailer(metadata.MD)     {}

// BenchmarkStreamServerInterceptor is the overhead of the gRPC stream
// server interceptor per stream.
func BenchmarkStreamServerInterceptor(b *testing.B) {
	p := newPolicy(b, shadow.Tables("orders"))
	icpt := p.StreamServerInterceptor()
	handler := func(any, grpc.ServerStream) error { return nil }
	info := &grpc.StreamServerInfo{FullMethod: "/x.Y/Z"}
	for _, c := range []struct {
		name string
		md   metadata.MD
	}{
		{"untagged", metadata.Pairs("user-agent", "grpc-go")},
		{"untagged-otel", grpcMD()},
		{"tagged", grpcMD(shadow.MetadataKey, "drill-2024-11-21")},
	} {
		b.Run(c.name, func(b *testing.B) {
			var ss grpc.ServerStream = fakeServerStream{ctx: metadata.NewIncomingContext(context.Background(), c.md)}
			b.ReportAllocs()
			for b.Loop() {
				if err := icpt(nil, ss, info, handler); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// clientCases are the contexts of outgoing gRPC calls: untagged, untagged
// with outgoing metadata of the service's own, and tagged.
func clientCases(b *testing.B, p *shadow.Policy) []struct {
	name string
	ctx  context.Context
} {
	md := metadata.NewOutgoingContext(context.Background(), metadata.Pairs("authorization", "Bearer x", "x-request-id", "42"))
	return []struct {
		name string
		ctx  context.Context
	}{
		{"untagged", context.Background()},
		{"untagged-outgoing-md", metadata.AppendToOutgoingContext(md, "x-tenant", "acme")},
		{"tagged", tagged(b, p, "d1")},
	}
}

// benchConn is a client connection to loopback that is never used: the
// interceptors only read its target.
func benchConn(b *testing.B) *grpc.ClientConn {
	cc, err := grpc.NewClient("127.0.0.1:50051", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cc.Close() })
	return cc
}

// BenchmarkUnaryClientInterceptor is the overhead of the gRPC unary client
// interceptor per call, over an invoker that returns at once.
func BenchmarkUnaryClientInterceptor(b *testing.B) {
	p := newPolicy(b, shadow.AllowHosts("127.0.0.1"))
	icpt := p.UnaryClientInterceptor()
	cc := benchConn(b)
	invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
	for _, c := range clientCases(b, p) {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := icpt(c.ctx, "/x.Y/Z", nil, nil, cc, invoker); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkStreamClientInterceptor is the overhead of the gRPC stream
// client interceptor per stream, over a streamer that returns at once.
func BenchmarkStreamClientInterceptor(b *testing.B) {
	p := newPolicy(b, shadow.AllowHosts("127.0.0.1"))
	icpt := p.StreamClientInterceptor()
	cc := benchConn(b)
	desc := &grpc.StreamDesc{StreamName: "Z", ServerStreams: true}
	var cs grpc.ClientStream
	streamer := func(context.Context, *grpc.StreamDesc, *grpc.ClientConn, string, ...grpc.CallOption) (grpc.ClientStream, error) {
		return cs, nil
	}
	for _, c := range clientCases(b, p) {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := icpt(c.ctx, desc, cc, "/x.Y/Z", streamer); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// carriers are the message-header carriers Extract and Inject support
// without a copy: the package's own and OpenTelemetry's two.
func carriers(headers map[string]string) []struct {
	name string
	c    shadow.Carrier
} {
	m, om, hc := shadow.MapCarrier{}, propagation.MapCarrier{}, propagation.HeaderCarrier{}
	for k, v := range headers {
		m.Set(k, v)
		om.Set(k, v)
		hc.Set(k, v)
	}
	return []struct {
		name string
		c    shadow.Carrier
	}{{"MapCarrier", m}, {"otel-MapCarrier", om}, {"otel-HeaderCarrier", hc}}
}

// queueHeaders are a message's headers from an OpenTelemetry producer.
var queueHeaders = map[string]string{
	"traceparent":  "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	"baggage":      "tenant=acme",
	"content-type": "application/json",
}

// BenchmarkExtract is the cost of reading a consumed message's tag.
func BenchmarkExtract(b *testing.B) {
	p := newPolicy(b, shadow.Topics("events"))
	tag := map[string]string{shadow.MetadataKey: "d1"}
	for k, v := range queueHeaders {
		tag[k] = v
	}
	for _, c := range append(carriers(queueHeaders), carriers(tag)...) {
		name := "untagged-" + c.name
		if c.c.Get(shadow.MetadataKey) != "" {
			name = "tagged-" + c.name
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.Extract(context.Background(), c.c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkInject is the cost of writing the tag into a produced
// message's headers.
func BenchmarkInject(b *testing.B) {
	p := newPolicy(b, shadow.Topics("events"))
	for _, ctx := range []struct {
		name string
		ctx  context.Context
	}{{"untagged", context.Background()}, {"tagged", tagged(b, p, "d1")}} {
		for _, c := range carriers(queueHeaders) {
			b.Run(ctx.name+"-"+c.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					shadow.Inject(ctx.ctx, c.c)
				}
			})
		}
	}
}

// benchHelper runs f with an untagged and a tagged context.
func benchHelper(b *testing.B, f func(ctx context.Context) error) {
	p := shopPolicy(b)
	for _, c := range []struct {
		name string
		ctx  context.Context
	}{{"untagged", context.Background()}, {"tagged", tagged(b, p, "d1")}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := f(c.ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkKey, BenchmarkTopic, BenchmarkID and BenchmarkEffect are the
// cost of the other resource helpers, as BenchmarkTable.
func BenchmarkKey(b *testing.B) {
	benchHelper(b, func(ctx context.Context) error { _, err := shadow.Key(ctx, "session"); return err })
}

func BenchmarkTopic(b *testing.B) {
	benchHelper(b, func(ctx context.Context) error { _, err := shadow.Topic(ctx, "events"); return err })
}

func BenchmarkID(b *testing.B) {
	benchHelper(b, func(ctx context.Context) error { _, err := shadow.ID(ctx, 42); return err })
}

func nop(context.Context) error { return nil }

func BenchmarkEffect(b *testing.B) {
	benchHelper(b, func(ctx context.Context) error { return shadow.Effect(ctx, "payment", nop, nop) })
}

// BenchmarkNameScanFloor is what the near-miss check cannot go below: Go's
// iteration over the names of a request's headers (the untagged
// middleware's two, as net/http keeps them), doing nothing with them. The
// check must see every name, and a map has no cheaper way to list them.
func BenchmarkNameScanFloor(b *testing.B) {
	h := http.Header{"User-Agent": {"loadcap"}, "Accept": {"application/json"}}
	md := metadata.Pairs("user-agent", "grpc-go")
	b.Run("http.Header", func(b *testing.B) { rangeNames(b, h) })
	b.Run("metadata.MD", func(b *testing.B) { rangeNames(b, md) })
}

// rangeNames ranges over m's keys b.N times, doing nothing with them.
func rangeNames[M ~map[string][]string](b *testing.B, m M) {
	n := 0
	for b.Loop() {
		for k := range m {
			n += len(k)
		}
	}
	sink = n
}

var sink int
