package grpcc

import (
	"testing"
	"time"

	"golang.org/x/net/http2/hpack"
)

func TestDecodeMessage(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "not found: order 7", "not found: order 7"},
		{"escaped", "caf%C3%A9 100%25", "café 100%"},
		{"malformed kept", "50%zz done%", "50%zz done%"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := decodeMessage(tc.in); got != tc.want {
				t.Errorf("decodeMessage(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestTimeoutHeader(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    time.Duration
		want string
	}{
		{"nanoseconds", 20 * time.Millisecond, "20000000n"},
		{"microseconds", 5 * time.Second, "5000000u"},
		{"rounded up", 5*time.Second + 1, "5000001u"},
		{"milliseconds", time.Hour, "3600000m"},
		{"minutes", 1e6 * time.Hour, "60000000M"},
		{"hours", 2e6 * time.Hour, "2000000H"},
		{"past", -time.Second, "1n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []hpack.HeaderField
			d := hpack.NewDecoder(4096, func(f hpack.HeaderField) { got = append(got, f) })
			if _, err := d.Write(appendTimeout(nil, tc.d)); err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].Name != "grpc-timeout" || got[0].Value != tc.want {
				t.Errorf("fields %v, want grpc-timeout: %s", got, tc.want)
			}
		})
	}
}
