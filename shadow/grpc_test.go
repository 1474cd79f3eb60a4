package shadow_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/loadcap/loadcap/shadow"
)

// A tiny hand-written gRPC service: Say answers "<drill>|<table>" for the
// table named in the request; Watch streams that answer twice.
const (
	sayMethod   = "/loadcap.shadowtest.Echo/Say"
	watchMethod = "/loadcap.shadowtest.Echo/Watch"
)

type echo struct {
	calls atomic.Int64
	md    atomic.Value // the last call's x-loadcap-shadow and baggage metadata, "tag|baggage"
}

func (e *echo) answer(ctx context.Context, table string) (*wrapperspb.StringValue, error) {
	e.calls.Add(1)
	e.md.Store(strings.Join(metadata.ValueFromIncomingContext(ctx, shadow.MetadataKey), ",") + "|" +
		strings.Join(metadata.ValueFromIncomingContext(ctx, "baggage"), ","))
	drill, _ := shadow.FromContext(ctx)
	name, err := shadow.Table(ctx, table)
	if err != nil {
		return nil, err // the interceptor turns a refusal into Unavailable
	}
	return wrapperspb.String(drill + "|" + name), nil
}

var echoDesc = grpc.ServiceDesc{
	ServiceName: "loadcap.shadowtest.Echo",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Say",
		Handler: func(srv any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.StringValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			h := func(ctx context.Context, req any) (any, error) {
				return srv.(*echo).answer(ctx, req.(*wrapperspb.StringValue).Value)
			}
			if icpt == nil {
				return h(ctx, in)
			}
			return icpt(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: sayMethod}, h)
		},
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "Watch",
		ServerStreams: true,
		Handler: func(srv any, ss grpc.ServerStream) error {
			in := new(wrapperspb.StringValue)
			if err := ss.RecvMsg(in); err != nil {
				return err
			}
			for range 2 {
				out, err := srv.(*echo).answer(ss.Context(), in.Value)
				if err != nil {
					return err
				}
				if err := ss.SendMsg(out); err != nil {
					return err
				}
			}
			return nil
		},
	}},
}

// startEcho serves echo behind p's interceptors on loopback.
func startEcho(t *testing.T, p *shadow.Policy) (*echo, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echo{}
	srv := grpc.NewServer(p.ServerOptions()...)
	srv.RegisterService(&echoDesc, e)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return e, lis.Addr().String()
}

// dial connects to addr, through p's client interceptors when p is set.
func dial(t *testing.T, addr string, p *shadow.Policy) *grpc.ClientConn {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if p != nil {
		opts = append(opts, p.DialOptions()...)
	}
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func say(ctx context.Context, cc *grpc.ClientConn, table string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out := new(wrapperspb.StringValue)
	err := cc.Invoke(ctx, sayMethod, wrapperspb.String(table), out)
	return out.Value, err
}

// TestHTTPToGRPC: an HTTP gateway behind the middleware calls a gRPC
// service behind the interceptors; the tag crosses, refusals come back as
// 503 with the reason.
func TestHTTPToGRPC(t *testing.T) {
	pS := shopPolicy(t)
	svc, addr := startEcho(t, pS)

	gateway := func(p *shadow.Policy) *httptest.Server {
		cc := dial(t, addr, p)
		s := httptest.NewServer(p.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			out, err := say(r.Context(), cc, r.URL.Query().Get("table"))
			if shadow.Reject(w, err) {
				return
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			io.WriteString(w, out)
		})))
		t.Cleanup(s.Close)
		return s
	}
	allowed := gateway(shopPolicy(t, shadow.AllowHosts(addr)))
	notAllowed := gateway(shopPolicy(t, shadow.AllowHosts("127.0.0.1:1")))

	tests := []struct {
		name       string
		gw         *httptest.Server
		drill      string
		table      string
		wantStatus int
		wantBody   string
		wantReason string
		wantCalls  int64
	}{
		{name: "tagged", gw: allowed, drill: "d1", table: "orders", wantStatus: 200, wantBody: "d1|shadow_orders", wantCalls: 1},
		{name: "untagged", gw: allowed, table: "orders", wantStatus: 200, wantBody: "|orders", wantCalls: 1},
		{name: "tagged, refused by the service", gw: allowed, drill: "d1", table: "payments", wantStatus: 503,
			wantReason: "remote " + sayMethod + ": table payments: not declared", wantCalls: 1},
		{name: "tagged, service not allowed", gw: notAllowed, drill: "d1", table: "orders", wantStatus: 503,
			wantReason: "host " + addr + ": host not in the allow list"},
		{name: "untagged, service not allowed", gw: notAllowed, table: "orders", wantStatus: 200, wantBody: "|orders", wantCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc.calls.Store(0)
			req, _ := http.NewRequest("GET", tt.gw.URL+"/?table="+tt.table, nil)
			if tt.drill != "" {
				req.Header.Set(shadow.Header, tt.drill)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus || (tt.wantStatus == 200 && string(body) != tt.wantBody) {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, body, tt.wantStatus, tt.wantBody)
			}
			if got := resp.Header.Get(shadow.RejectHeader); got != tt.wantReason {
				t.Fatalf("reject reason %q, want %q", got, tt.wantReason)
			}
			if n := svc.calls.Load(); n != tt.wantCalls {
				t.Fatalf("service handled %d calls, want %d", n, tt.wantCalls)
			}
			if tt.wantCalls == 1 {
				want := "|"
				if tt.drill != "" {
					want = tt.drill + "|loadcap.shadow=" + tt.drill
				}
				if got := svc.md.Load(); got != want {
					t.Fatalf("service got metadata tag|baggage %q, want %q", got, want)
				}
			}
		})
	}
	st := pS.Stats()
	if st.Tagged != 2 || st.Untagged != 2 || st.Rejected[shadow.Resource{Kind: shadow.KindTable, Name: "payments"}] != 1 {
		t.Fatalf("service stats %+v, want 2 tagged, 2 untagged, 1 refusal of table payments", st)
	}
}

// TestGRPCStream: the tag crosses a server stream; a refusal in the middle
// of the stream surfaces from RecvMsg as an *IsolationError.
func TestGRPCStream(t *testing.T) {
	_, addr := startEcho(t, shopPolicy(t))
	cc := dial(t, addr, newPolicy(t, shadow.AllowHosts("127.0.0.1")))
	tests := []struct {
		name    string
		drill   string
		table   string
		want    []string
		refusal string
	}{
		{name: "tagged", drill: "d1", table: "orders", want: []string{"d1|shadow_orders", "d1|shadow_orders"}},
		{name: "untagged", table: "orders", want: []string{"|orders", "|orders"}},
		{name: "tagged, refused", drill: "d1", table: "payments", refusal: "table payments: not declared"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if tt.drill != "" {
				ctx, _ = shadow.WithTag(ctx, tt.drill)
			}
			cs, err := cc.NewStream(ctx, &echoDesc.Streams[0], watchMethod)
			if err != nil {
				t.Fatal(err)
			}
			if err := cs.SendMsg(wrapperspb.String(tt.table)); err != nil {
				t.Fatal(err)
			}
			cs.CloseSend()
			var got []string
			for {
				m := new(wrapperspb.StringValue)
				err := cs.RecvMsg(m)
				if err == io.EOF {
					break
				}
				if tt.refusal != "" {
					var ie *shadow.IsolationError
					if !errors.As(err, &ie) || ie.Reason != tt.refusal || ie.Drill != tt.drill || ie.Resource.Kind != shadow.KindRemote {
						t.Fatalf("RecvMsg = %v, want a remote refusal %q", err, tt.refusal)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, m.Value)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("stream gave %q, want %q", got, tt.want)
			}
		})
	}
}

// TestGRPCIncomingTags: callers without our interceptors, tagging by hand
// (metadata or baggage) or badly.
func TestGRPCIncomingTags(t *testing.T) {
	p := shopPolicy(t)
	_, addr := startEcho(t, p)
	cc := dial(t, addr, nil)
	tests := []struct {
		name   string
		md     []string
		want   string
		reason string
	}{
		{name: "metadata", md: []string{shadow.MetadataKey, "d3"}, want: "d3|shadow_orders"},
		{name: "baggage only", md: []string{"baggage", "k=v,loadcap.shadow=d4"}, want: "d4|shadow_orders"},
		{name: "invalid tag refused", md: []string{shadow.MetadataKey, "d 3"}, reason: "tag: invalid shadow tag"},
		{name: "metadata and baggage agree", md: []string{shadow.MetadataKey, "d3", "baggage", "loadcap.shadow=d3"}, want: "d3|shadow_orders"},
		{name: "metadata and baggage disagree", md: []string{shadow.MetadataKey, "d3", "baggage", "loadcap.shadow=d4"},
			reason: `tag: invalid shadow tag: conflicting values: X-Loadcap-Shadow "d3", baggage loadcap.shadow="d4"`},
		{name: "two baggage members disagree", md: []string{"baggage", "loadcap.shadow=d3", "baggage", "loadcap.shadow=d4"},
			reason: "tag: invalid shadow tag: conflicting values: baggage"},
		{name: "metadata key in upper case is the tag", md: []string{"X-Loadcap-Shadow", "d3"}, want: "d3|shadow_orders"},
		{name: "near-miss metadata key", md: []string{"x_loadcap_shadow", "d3"},
			reason: `tag: invalid shadow tag: near-miss metadata key "x_loadcap_shadow" (the tag is x-loadcap-shadow)`},
		{name: "near-miss metadata key with dots", md: []string{"LOADCAP.SHADOW", "d3"}, reason: "tag: invalid shadow tag: near-miss metadata key"},
		{name: "near-miss baggage key", md: []string{"baggage", "Loadcap.Shadow=d3"}, reason: "tag: invalid shadow tag: near-miss baggage key"},
		{name: "similar key is not the tag", md: []string{"x-loadcap-shadow-trace", "d3"}, want: "|orders"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := metadata.AppendToOutgoingContext(context.Background(), tt.md...)
			var trailer metadata.MD
			out := new(wrapperspb.StringValue)
			tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			err := cc.Invoke(tctx, sayMethod, wrapperspb.String("orders"), out, grpc.Trailer(&trailer))
			if tt.reason != "" {
				if status.Code(err) != codes.Unavailable {
					t.Fatalf("Invoke = %v, want Unavailable", err)
				}
				if r := trailer.Get(shadow.RejectMetadataKey); len(r) != 1 || !strings.HasPrefix(r[0], tt.reason) {
					t.Fatalf("reject trailer %q, want prefix %q", r, tt.reason)
				}
				return
			}
			if err != nil || out.Value != tt.want {
				t.Fatalf("Invoke = %q, %v; want %q", out.Value, err, tt.want)
			}
		})
	}
}

// TestClientTaggedByHand: a call whose outgoing metadata already carries
// the tag (a proxy forwarding it), in any case, goes only to allowed hosts,
// as a tagged context's calls do; other metadata passes.
func TestClientTaggedByHand(t *testing.T) {
	p := newPolicy(t, shadow.AllowHosts("127.0.0.1:1"))
	cc, err := grpc.NewClient("127.0.0.1:2", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	bg := context.Background()
	tests := []struct {
		name    string
		ctx     context.Context
		refused bool
	}{
		{name: "untagged", ctx: bg},
		{name: "other metadata", ctx: metadata.AppendToOutgoingContext(bg, "x-request-id", "42", "x-loadcap-shadow-trace", "t")},
		{name: "metadata", ctx: metadata.NewOutgoingContext(bg, metadata.Pairs(shadow.MetadataKey, "d1")), refused: true},
		{name: "metadata map in upper case", ctx: metadata.NewOutgoingContext(bg, metadata.MD{"X-Loadcap-Shadow": {"d1"}}), refused: true},
		{name: "appended", ctx: metadata.AppendToOutgoingContext(metadata.NewOutgoingContext(bg, metadata.Pairs("a", "1")), "X-Loadcap-Shadow", "d1"), refused: true},
	}
	unary, stream := p.UnaryClientInterceptor(), p.StreamClientInterceptor()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sent := 0
			invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
				sent++
				return nil
			}
			streamer := func(context.Context, *grpc.StreamDesc, *grpc.ClientConn, string, ...grpc.CallOption) (grpc.ClientStream, error) {
				sent++
				return nil, nil
			}
			errU := unary(tt.ctx, sayMethod, nil, nil, cc, invoker)
			_, errS := stream(tt.ctx, &grpc.StreamDesc{ServerStreams: true}, cc, watchMethod, streamer)
			for _, err := range []error{errU, errS} {
				if tt.refused != errors.Is(err, shadow.ErrNotIsolated) {
					t.Fatalf("error %v, want refused=%v", err, tt.refused)
				}
			}
			if want := map[bool]int{true: 0, false: 2}[tt.refused]; sent != want {
				t.Fatalf("%d calls sent, want %d", sent, want)
			}
		})
	}
}

// TestServerInterceptorMetadataByHand: metadata that an interceptor or a
// test put in the context by hand may spell keys in any case; spellings of
// the tag that disagree are refused, as two tag values are, and agreeing
// ones are the tag.
func TestServerInterceptorMetadataByHand(t *testing.T) {
	p := shopPolicy(t)
	icpt := p.UnaryServerInterceptor()
	tests := []struct {
		name, want string
		md         metadata.MD
		refused    bool
	}{
		{name: "upper case", md: metadata.MD{"X-Loadcap-Shadow": {"d1"}}, want: "d1"},
		{name: "two spellings agree", md: metadata.MD{"X-Loadcap-Shadow": {"d1"}, shadow.MetadataKey: {"d1"}}, want: "d1"},
		{name: "two spellings disagree", md: metadata.MD{"X-Loadcap-Shadow": {"d2"}, shadow.MetadataKey: {"d1"}}, refused: true},
		{name: "baggage in upper case", md: metadata.MD{"BAGGAGE": {"loadcap.shadow=d3"}}, want: "d3"},
		{name: "untagged", md: metadata.MD{"User-Agent": {"x"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			handler := func(ctx context.Context, _ any) (any, error) {
				got, _ = shadow.FromContext(ctx)
				return nil, nil
			}
			_, err := icpt(metadata.NewIncomingContext(context.Background(), tt.md), nil, &grpc.UnaryServerInfo{FullMethod: sayMethod}, handler)
			if tt.refused {
				if status.Code(err) != codes.Unavailable {
					t.Fatalf("interceptor = %v, want Unavailable", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("handler saw tag %q, err %v; want %q", got, err, tt.want)
			}
		})
	}
}
