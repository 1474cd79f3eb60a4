package h2

import (
	"strings"
	"testing"

	"golang.org/x/net/http2/hpack"
)

func TestHeaderBlock(t *testing.T) {
	long := strings.Repeat("v", 300) // a length past the 7-bit prefix
	tests := []struct {
		name  string
		block func([]byte) []byte
		want  []hpack.HeaderField
	}{
		{name: "static", block: func(b []byte) []byte {
			b = AppendIndexed(b, StaticMethodGET)
			b = AppendIndexed(b, StaticSchemeHTTPS)
			return AppendIndexed(b, StaticPath)
		}, want: []hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "https"}, {Name: ":path", Value: "/"}}},
		{name: "indexed names", block: func(b []byte) []byte {
			b = AppendIndexedName(b, StaticMethodGET, "PATCH")
			b = AppendIndexedName(b, StaticAuthority, []byte("shop.test:8443"))
			b = AppendIndexedName(b, StaticUserAgent, "loadcap")
			return AppendIndexedName(b, StaticContentLength, "12")
		}, want: []hpack.HeaderField{{Name: ":method", Value: "PATCH"}, {Name: ":authority", Value: "shop.test:8443"},
			{Name: "user-agent", Value: "loadcap"}, {Name: "content-length", Value: "12"}}},
		{name: "literal names", block: func(b []byte) []byte {
			b = AppendField(b, "x-trace", "t-1")
			return AppendField(b, []byte("x-long"), long)
		}, want: []hpack.HeaderField{{Name: "x-trace", Value: "t-1"}, {Name: "x-long", Value: long}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []hpack.HeaderField
			d := hpack.NewDecoder(4096, func(f hpack.HeaderField) {
				f.Sensitive = false
				got = append(got, f)
			})
			if _, err := d.Write(tt.block(nil)); err != nil {
				t.Fatal(err)
			}
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("decoded %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("field %d: %v, want %v", i, got[i], tt.want[i])
				}
			}
		})
	}
}
