package shadow

import (
	"context"
	"reflect"
	"strings"
	"unsafe"

	"google.golang.org/grpc/metadata"
)

// Every gRPC call, tagged or not, has to be searched for the tag, for
// conflicting values and for near-misses, and grpc-go's public accessors
// (metadata.FromIncomingContext, FromOutgoingContext) copy the whole
// metadata to do it: 3 to 9 allocations on every untagged call. grpc-go
// itself reads the metadata without a copy; so do we, read-only, through
// the context keys grpc-go stores it under, learnt once here from a
// context that metadata.NewIncomingContext and NewOutgoingContext built,
// and checked on a probe. When the check fails (a grpc-go version that
// stores metadata otherwise), mdKeys stays unusable and every call takes
// the public accessors: slower, never wrong. TestMetadataFastPath fails
// then, so that an upgrade that loses the fast path does not go unseen.
var mdKeys = learnMDKeys()

// mdAccess is what learnMDKeys found: the keys, and whether each may be
// used.
type mdAccess struct {
	incoming, outgoing     any
	incomingOK, outgoingOK bool
	outgoingType           reflect.Type // grpc-go's rawMD
}

// rawMD mirrors the value grpc-go keeps outgoing metadata in: the MD of
// NewOutgoingContext and the pairs AppendToOutgoingContext added (keys
// lower-cased). learnMDKeys checks that grpc-go's type has this layout.
type rawMD struct {
	md    metadata.MD
	added [][]string
}

func learnMDKeys() (a mdAccess) {
	probe := metadata.MD{"probe": {"in"}}
	in := metadata.NewIncomingContext(context.Background(), probe)
	if k := valueKey(in); k != nil {
		if md, ok := in.Value(k).(metadata.MD); ok && len(md) == 1 && len(md["probe"]) == 1 && &md["probe"][0] == &probe["probe"][0] {
			a.incoming, a.incomingOK = k, true
		}
	}
	out := metadata.AppendToOutgoingContext(metadata.NewOutgoingContext(context.Background(), probe), "Added", "out")
	k := valueKey(out)
	if k == nil {
		return a
	}
	v := out.Value(k)
	t := reflect.TypeOf(v)
	if t == nil || t.Kind() != reflect.Struct || t.Size() != unsafe.Sizeof(rawMD{}) || t.NumField() != 2 ||
		t.Field(0).Type != reflect.TypeOf(metadata.MD(nil)) || t.Field(0).Offset != unsafe.Offsetof(rawMD{}.md) ||
		t.Field(1).Type != reflect.TypeOf([][]string(nil)) || t.Field(1).Offset != unsafe.Offsetof(rawMD{}.added) {
		return a
	}
	a.outgoing, a.outgoingType = k, t
	r := a.rawOutgoing(v)
	if len(r.md) == 1 && len(r.md["probe"]) == 1 && &r.md["probe"][0] == &probe["probe"][0] &&
		len(r.added) == 1 && len(r.added[0]) == 2 && r.added[0][0] == "added" && r.added[0][1] == "out" {
		a.outgoingOK = true
	}
	return a
}

// valueKey returns the key of the outermost value of ctx, a
// context.WithValue, when that key is of a zero-size type of grpc-go's
// metadata package, so that its zero value is the key; else nil.
func valueKey(ctx context.Context) (key any) {
	defer func() {
		if recover() != nil {
			key = nil
		}
	}()
	v := reflect.ValueOf(ctx)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil
	}
	f := v.Elem().FieldByName("key")
	if !f.IsValid() || f.Kind() != reflect.Interface || f.IsNil() {
		return nil
	}
	t := f.Elem().Type()
	if t.Size() != 0 || t.Kind() != reflect.Struct || t.PkgPath() != "google.golang.org/grpc/metadata" {
		return nil
	}
	return reflect.Zero(t).Interface()
}

// rawOutgoing returns the rawMD v holds; v must be of a.outgoingType.
func (a *mdAccess) rawOutgoing(v any) *rawMD {
	// An interface holding a value that is not pointer-shaped (rawMD is
	// four words) points to it in its second word.
	return (*rawMD)((*[2]unsafe.Pointer)(unsafe.Pointer(&v))[1])
}

// incomingMD returns the incoming metadata of ctx, not a copy: the caller
// must not modify it. Keys are lower case when grpc-go's server built it,
// any case when a test or an interceptor did.
func incomingMD(ctx context.Context) metadata.MD {
	if !mdKeys.incomingOK {
		md, _ := metadata.FromIncomingContext(ctx)
		return md
	}
	md, _ := ctx.Value(mdKeys.incoming).(metadata.MD)
	return md
}

// outgoingTagged reports whether the outgoing metadata of ctx carries
// MetadataKey (in any case) with a value: a call tagged by hand.
func outgoingTagged(ctx context.Context) bool {
	if !mdKeys.outgoingOK {
		md, _ := metadata.FromOutgoingContext(ctx)
		return len(md[MetadataKey]) > 0
	}
	v := ctx.Value(mdKeys.outgoing)
	if v == nil {
		return false
	}
	if reflect.TypeOf(v) != mdKeys.outgoingType {
		md, _ := metadata.FromOutgoingContext(ctx)
		return len(md[MetadataKey]) > 0
	}
	r := mdKeys.rawOutgoing(v)
	for k, vals := range r.md {
		if len(vals) > 0 && len(k) == len(MetadataKey) && strings.EqualFold(k, MetadataKey) {
			return true
		}
	}
	for _, kv := range r.added {
		for i := 0; i+1 < len(kv); i += 2 {
			if len(kv[i]) == len(MetadataKey) && strings.EqualFold(kv[i], MetadataKey) {
				return true
			}
		}
	}
	return false
}
