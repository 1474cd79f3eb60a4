package shadow

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// baggageKey is the gRPC metadata key of W3C baggage (OpenTelemetry's).
const baggageKey = "baggage"

// ServerOptions returns the options that put p's server interceptors in
// front of a gRPC server's handlers:
//
//	srv := grpc.NewServer(p.ServerOptions()...)
func (p *Policy) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(p.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(p.StreamServerInterceptor()),
	}
}

// DialOptions returns the options that put p's client interceptors on a
// gRPC client connection:
//
//	cc, err := grpc.NewClient(addr, append(p.DialOptions(), creds)...)
func (p *Policy) DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(p.UnaryClientInterceptor()),
		grpc.WithChainStreamInterceptor(p.StreamClientInterceptor()),
	}
}

// UnaryServerInterceptor is the gRPC counterpart of Middleware: a call
// tagged by MetadataKey (or baggage) runs with a context carrying the tag
// and p; a call whose tag cannot be read (as for Middleware: invalid,
// conflicting, or a near-miss metadata key) is refused. An *IsolationError
// returned by the handler becomes codes.Unavailable with the reason in the
// trailer RejectMetadataKey. An untagged call costs no allocation.
func (p *Policy) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := p.incoming(ctx)
		if err != nil {
			return nil, rejectStatus(err, func(md metadata.MD) { _ = grpc.SetTrailer(ctx, md) })
		}
		resp, err := handler(ctx, req)
		if err != nil {
			err = rejectStatus(err, func(md metadata.MD) { _ = grpc.SetTrailer(ctx, md) })
		}
		return resp, err
	}
}

// StreamServerInterceptor is UnaryServerInterceptor for streams: the
// handler's stream has the tagged context.
func (p *Policy) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		orig := ss.Context()
		ctx, err := p.incoming(orig)
		if err != nil {
			return rejectStatus(err, ss.SetTrailer)
		}
		if ctx != orig {
			ss = &serverStream{ServerStream: ss, ctx: ctx}
		}
		if err := handler(srv, ss); err != nil {
			return rejectStatus(err, ss.SetTrailer)
		}
		return nil
	}
}

type serverStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *serverStream) Context() context.Context { return s.ctx }

// incoming reads the tag of an incoming call and counts the call.
func (p *Policy) incoming(ctx context.Context) (context.Context, error) {
	md := incomingMD(ctx)
	if quietNames(md) {
		p.untagged.Add(1)
		return ctx, nil
	}
	tagVals, bagVals, near := scanNames(md)
	drill, found, err := tagFrom(tagVals, bagVals)
	if near != "" && err == nil {
		found, err = true, nearMissError("metadata key", near, MetadataKey)
	}
	switch {
	case !found:
		p.untagged.Add(1)
		return ctx, nil
	case err != nil:
		return ctx, p.reject("", Resource{Kind: KindTag}, err.Error())
	}
	p.tagged.Add(1)
	return p.attach(ctx, drill), nil
}

// rejectStatus turns an *IsolationError into codes.Unavailable, setting
// the reason trailer with setTrailer; other errors pass unchanged.
func rejectStatus(err error, setTrailer func(metadata.MD)) error {
	var e *IsolationError
	if !errors.As(err, &e) {
		return err
	}
	setTrailer(metadata.Pairs(RejectMetadataKey, e.reason()))
	return status.Error(codes.Unavailable, e.Error())
}

// UnaryClientInterceptor propagates the tag of the call's context in
// MetadataKey and baggage, sends tagged calls only to allowed hosts (others
// fail with an *IsolationError before anything is sent), and turns a
// downstream refusal (Unavailable with the reason trailer) into an
// *IsolationError of kind KindRemote. An untagged call costs no
// allocation, outgoing metadata or not.
func (p *Policy) UnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		ctx, drill, tagged, err := p.outgoing(ctx, cc)
		if err != nil || !tagged {
			if err != nil {
				return err
			}
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		var trailer metadata.MD
		err = invoker(ctx, method, req, reply, cc, append(opts[:len(opts):len(opts)], grpc.Trailer(&trailer))...)
		return remoteReject(err, trailer, drill, method)
	}
}

// StreamClientInterceptor is UnaryClientInterceptor for streams; a
// refusal surfaces from RecvMsg.
func (p *Policy) StreamClientInterceptor() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		ctx, drill, tagged, err := p.outgoing(ctx, cc)
		if err != nil {
			return nil, err
		}
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil || !tagged {
			return cs, err
		}
		return &clientStream{ClientStream: cs, drill: drill, method: method}, nil
	}
}

type clientStream struct {
	grpc.ClientStream
	drill, method string
}

func (s *clientStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err == nil || err == io.EOF {
		return err
	}
	return remoteReject(err, s.Trailer(), s.drill, s.method)
}

// outgoing prepares an outgoing call: for a tagged context (or outgoing
// metadata already carrying MetadataKey) it checks the allow list and puts
// the tag in the metadata.
func (p *Policy) outgoing(ctx context.Context, cc *grpc.ClientConn) (_ context.Context, drill string, tagged bool, _ error) {
	drill, tagged = FromContext(ctx)
	if !tagged && !outgoingTagged(ctx) {
		return ctx, "", false, nil
	}
	if host, port := targetHostPort(cc.CanonicalTarget()); !p.allows(host, port) {
		return ctx, drill, true, p.reject(drill, Resource{KindHost, cc.Target()}, reasonHost)
	}
	if !tagged {
		return ctx, "", false, nil // tagged by hand: sent as it is
	}
	md, _ := metadata.FromOutgoingContext(ctx) // a copy: ours to change
	if md == nil {
		md = metadata.MD{}
	}
	md.Set(MetadataKey, drill)
	md[baggageKey] = mergeBaggage(md[baggageKey], drill)
	return metadata.NewOutgoingContext(ctx, md), drill, true, nil
}

// targetHostPort returns the host and port of a canonical gRPC target
// ("dns:///host:port", "passthrough:///host:port"); the port is "443" when
// the target names none, as gRPC assumes. A unix socket is host "unix" and
// its path is the port, so that the allow list takes "unix" (every socket)
// or "unix:/path".
func targetHostPort(target string) (host, port string) {
	endpoint := target
	if u, err := url.Parse(target); err == nil && u.Scheme != "" {
		if u.Scheme == "unix" || u.Scheme == "unix-abstract" {
			return "unix", u.Path
		}
		endpoint = strings.TrimPrefix(u.Path, "/")
		if endpoint == "" {
			endpoint = u.Opaque
		}
	}
	host, port, err := net.SplitHostPort(endpoint)
	if err != nil {
		return strings.TrimSuffix(strings.TrimPrefix(endpoint, "["), "]"), "443"
	}
	return host, port
}

// remoteReject turns a downstream refusal into an *IsolationError.
func remoteReject(err error, trailer metadata.MD, drill, method string) error {
	if err == nil || status.Code(err) != codes.Unavailable {
		return err
	}
	reasons := trailer.Get(RejectMetadataKey)
	if len(reasons) == 0 {
		return err
	}
	return &IsolationError{Drill: drill, Resource: Resource{KindRemote, method}, Reason: reasons[0]}
}
