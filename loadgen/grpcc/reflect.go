package grpcc

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	rv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// ErrNoService is returned by Reflect when the server's reflection does
// not know the service.
var ErrNoService = errors.New("service not found by the server's reflection")

// Reflect asks the server at o.Target for the schema of service
// ("pkg.Service") through server reflection v1, falling back to v1alpha
// when the server has only that. It dials its own connection (the pool's
// connections carry raw bytes only) and closes it before returning.
func Reflect(ctx context.Context, o Options, service string) (protoreflect.ServiceDescriptor, error) {
	creds := insecure.NewCredentials()
	if o.TLS != nil {
		creds = credentials.NewTLS(o.TLS)
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds), grpc.WithUserAgent("loadcap")}
	if o.Authority != "" {
		opts = append(opts, grpc.WithAuthority(o.Authority))
	}
	conn, err := grpc.NewClient("passthrough:///"+o.Target, opts...)
	if err != nil {
		return nil, fmt.Errorf("reflection client for %s: %w", o.Target, err)
	}
	defer conn.Close()
	files, err := fetch(ctx, reflection(conn, reflectionV1), service)
	if status.Code(err) == codes.Unimplemented {
		files, err = fetch(ctx, reflection(conn, reflectionV1alpha), service)
	}
	if err != nil {
		return nil, err
	}
	reg, err := protodesc.NewFiles(&descriptorpb.FileDescriptorSet{File: files})
	if err != nil {
		return nil, fmt.Errorf("reflection of %s: the server's descriptors do not link: %w", service, err)
	}
	d, err := reg.FindDescriptorByName(protoreflect.FullName(service))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", service, ErrNoService)
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, fmt.Errorf("%s is a %T, not a service", service, d)
	}
	return sd, nil
}

// reflectStream is one reflection conversation: ask for the file that
// holds a symbol, or for a file by name; get back serialized
// FileDescriptorProtos.
type reflectStream func(ctx context.Context) (ask func(symbol, file string) ([][]byte, error), done func(), err error)

// fetch collects the file declaring service and every file it imports.
func fetch(ctx context.Context, open reflectStream, service string) ([]*descriptorpb.FileDescriptorProto, error) {
	ask, done, err := open(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	have := map[string]*descriptorpb.FileDescriptorProto{}
	var order []string
	add := func(raw [][]byte) error {
		for _, b := range raw {
			fd := &descriptorpb.FileDescriptorProto{}
			if err := proto.Unmarshal(b, fd); err != nil {
				return fmt.Errorf("reflection: bad file descriptor: %w", err)
			}
			if _, ok := have[fd.GetName()]; !ok {
				have[fd.GetName()] = fd
				order = append(order, fd.GetName())
			}
		}
		return nil
	}
	raw, err := ask(service, "")
	if err != nil {
		return nil, err
	}
	if err := add(raw); err != nil {
		return nil, err
	}
	// Servers may send only the file itself: ask for missing imports.
	for i := 0; i < len(order); i++ {
		for _, dep := range have[order[i]].GetDependency() {
			if _, ok := have[dep]; ok {
				continue
			}
			raw, err := ask("", dep)
			if err != nil {
				return nil, err
			}
			if err := add(raw); err != nil {
				return nil, err
			}
		}
	}
	out := make([]*descriptorpb.FileDescriptorProto, 0, len(order))
	for _, n := range order {
		out = append(out, have[n])
	}
	return out, nil
}

// Reflection's two versions, v1 and the deprecated v1alpha, have the
// same messages on the wire; only the method's name differs, so one
// conversation in v1's types serves both.
const (
	reflectionV1      = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
	reflectionV1alpha = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
)

var reflectionDesc = grpc.StreamDesc{StreamName: "ServerReflectionInfo", ServerStreams: true, ClientStreams: true}

// reflection is a conversation with the reflection service at method.
func reflection(conn *grpc.ClientConn, method string) reflectStream {
	return func(ctx context.Context) (func(string, string) ([][]byte, error), func(), error) {
		ctx, cancel := context.WithCancel(ctx)
		s, err := conn.NewStream(ctx, &reflectionDesc, method)
		if err != nil {
			cancel()
			return nil, nil, err
		}
		ask := func(symbol, file string) ([][]byte, error) {
			req := &rv1.ServerReflectionRequest{}
			if symbol != "" {
				req.MessageRequest = &rv1.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: symbol}
			} else {
				req.MessageRequest = &rv1.ServerReflectionRequest_FileByFilename{FileByFilename: file}
			}
			if err := s.SendMsg(req); err != nil && !errors.Is(err, io.EOF) {
				return nil, err
			} // io.EOF: the stream has ended; RecvMsg says why (Unimplemented)
			resp := &rv1.ServerReflectionResponse{}
			if err := s.RecvMsg(resp); err != nil {
				return nil, err
			}
			if e := resp.GetErrorResponse(); e != nil {
				return nil, reflectErr(symbol, file, codes.Code(e.GetErrorCode()), e.GetErrorMessage())
			}
			return resp.GetFileDescriptorResponse().GetFileDescriptorProto(), nil
		}
		return ask, func() { _ = s.CloseSend(); cancel() }, nil
	}
}

func reflectErr(symbol, file string, code codes.Code, msg string) error {
	if symbol != "" {
		if code == codes.NotFound {
			return fmt.Errorf("%s: %w", symbol, ErrNoService)
		}
		return fmt.Errorf("reflection of %s: %s: %s", symbol, code, msg)
	}
	return fmt.Errorf("reflection: file %s: %s: %s", file, code, msg)
}
