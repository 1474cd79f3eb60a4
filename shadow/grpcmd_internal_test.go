package shadow

import (
	"context"
	"slices"
	"testing"

	"google.golang.org/grpc/metadata"
)

// TestMetadataFastPath: with the grpc-go this module is built with, calls
// read metadata without a copy. When an upgrade changes how grpc-go keeps
// metadata, the library stays correct (the public accessors) but every
// untagged call allocates again: this test says so first.
func TestMetadataFastPath(t *testing.T) {
	if !mdKeys.incomingOK || !mdKeys.outgoingOK {
		t.Fatalf("reading gRPC metadata without a copy is off (incoming %v, outgoing %v): grpc-go keeps it otherwise now; see grpcmd.go",
			mdKeys.incomingOK, mdKeys.outgoingOK)
	}
}

// withPublicAccessors runs f as a grpc-go without the fast path would.
func withPublicAccessors(t *testing.T, f func(t *testing.T)) {
	saved := mdKeys
	mdKeys = mdAccess{}
	defer func() { mdKeys = saved }()
	f(t)
}

// TestScanMD: one pass over the raw metadata finds what the public
// accessors find (metadata.ValueFromIncomingContext for the tag and the
// baggage, a near-miss among the keys of metadata.FromIncomingContext).
func TestScanMD(t *testing.T) {
	tests := []struct {
		name          string
		md            metadata.MD
		tag, bag      []string
		near          string
		nearAnyOfKeys bool
		fastOnly      bool // the public accessors keep one spelling's values, at random
	}{
		{name: "untagged", md: metadata.MD{"user-agent": {"grpc-go"}, ":authority": {"a"}}},
		{name: "tag", md: metadata.MD{"x-loadcap-shadow": {"d1"}, "baggage": {"k=v"}}, tag: []string{"d1"}, bag: []string{"k=v"}},
		{name: "tag in upper case", md: metadata.MD{"X-Loadcap-Shadow": {"d1"}, "Baggage": {"k=v"}}, tag: []string{"d1"}, bag: []string{"k=v"}},
		{name: "two spellings, lower case first", md: metadata.MD{"X-LOADCAP-SHADOW": {"d2"}, "x-loadcap-shadow": {"d1"}},
			tag: []string{"d1", "d2"}, fastOnly: true},
		{name: "two spellings of baggage", md: metadata.MD{"Baggage": {"a=1"}, "baggage": {"b=2"}}, bag: []string{"b=2", "a=1"}, fastOnly: true},
		{name: "near-miss", md: metadata.MD{"x_loadcap_shadow": {"d1"}, "user-agent": {"u"}}, near: "x_loadcap_shadow"},
		{name: "near-miss baggage name as a key", md: metadata.MD{"loadcap.shadow": {"d1"}}, near: "loadcap.shadow"},
		{name: "longer names are no near-miss", md: metadata.MD{"x-loadcap-shadow-reject": {"r"}, "x-loadcap-shadow-trace": {"t"}}},
		{name: "two near-misses", md: metadata.MD{"x_loadcap_shadow": {"d1"}, "xloadcapshadow": {"d1"}}, nearAnyOfKeys: true},
	}
	for _, fast := range []bool{true, false} {
		for _, tt := range tests {
			name := tt.name
			if !fast {
				name += " (public accessors)"
			}
			t.Run(name, func(t *testing.T) {
				if tt.fastOnly && !fast {
					t.Skip("the public accessors keep one spelling's values, at random")
				}
				run := func(t *testing.T) {
					ctx := metadata.NewIncomingContext(context.Background(), tt.md)
					tag, bag, near := scanNames(incomingMD(ctx))
					if !slices.Equal(tag, tt.tag) || !slices.Equal(bag, tt.bag) {
						t.Fatalf("scanNames = tag %q, baggage %q; want %q, %q", tag, bag, tt.tag, tt.bag)
					}
					if tt.nearAnyOfKeys {
						if _, ok := tt.md[near]; !ok {
							t.Fatalf("near-miss %q, want one of the keys", near)
						}
					} else if near != tt.near {
						t.Fatalf("near-miss %q, want %q", near, tt.near)
					}
					// The public accessors agree.
					if got := metadata.ValueFromIncomingContext(ctx, MetadataKey); !tt.fastOnly && !slices.Equal(got, tt.tag) {
						t.Fatalf("ValueFromIncomingContext(tag) = %q, scanNames %q", got, tt.tag)
					}
				}
				if fast {
					run(t)
				} else {
					withPublicAccessors(t, run)
				}
			})
		}
	}
}

// TestOutgoingTagged: a call whose outgoing metadata carries the tag by
// hand, in any case, by NewOutgoingContext or AppendToOutgoingContext, is
// found as metadata.FromOutgoingContext would find it.
func TestOutgoingTagged(t *testing.T) {
	bg := context.Background()
	tests := []struct {
		name string
		ctx  context.Context
		want bool
	}{
		{name: "no metadata", ctx: bg},
		{name: "other metadata", ctx: metadata.AppendToOutgoingContext(metadata.NewOutgoingContext(bg, metadata.Pairs("a", "1")), "b", "2")},
		{name: "by NewOutgoingContext", ctx: metadata.NewOutgoingContext(bg, metadata.Pairs(MetadataKey, "d1")), want: true},
		{name: "upper case map key", ctx: metadata.NewOutgoingContext(bg, metadata.MD{"X-Loadcap-Shadow": {"d1"}}), want: true},
		{name: "key without values", ctx: metadata.NewOutgoingContext(bg, metadata.MD{MetadataKey: {}})},
		{name: "by AppendToOutgoingContext", ctx: metadata.AppendToOutgoingContext(bg, "X-LOADCAP-SHADOW", "d1"), want: true},
		{name: "appended after other metadata", ctx: metadata.AppendToOutgoingContext(metadata.NewOutgoingContext(bg, metadata.Pairs("a", "1")), "a", "2", MetadataKey, ""), want: true},
		{name: "a longer key", ctx: metadata.AppendToOutgoingContext(bg, "x-loadcap-shadow-trace", "t")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			md, _ := metadata.FromOutgoingContext(tt.ctx)
			if public := len(md[MetadataKey]) > 0; public != tt.want {
				t.Fatalf("test case is wrong: FromOutgoingContext finds the tag: %v", public)
			}
			if got := outgoingTagged(tt.ctx); got != tt.want {
				t.Fatalf("outgoingTagged = %v, want %v", got, tt.want)
			}
			withPublicAccessors(t, func(t *testing.T) {
				if got := outgoingTagged(tt.ctx); got != tt.want {
					t.Fatalf("outgoingTagged by the public accessors = %v, want %v", got, tt.want)
				}
			})
		})
	}
}
