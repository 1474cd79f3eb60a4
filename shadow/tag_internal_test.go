package shadow

import (
	"errors"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/baggage"
)

func TestValidateTag(t *testing.T) {
	tests := []struct {
		name  string
		id    string
		valid bool
	}{
		{name: "plain", id: "drill-2024.11_a", valid: true},
		{name: "all token punctuation", id: "!#$%&'*+-.^_`|~", valid: true},
		{name: "64 bytes", id: strings.Repeat("a", 64), valid: true},
		{name: "65 bytes", id: strings.Repeat("a", 65)},
		{name: "empty", id: ""},
		{name: "space", id: "drill 1"},
		{name: "comma", id: "a,b"},
		{name: "semicolon", id: "a;b"},
		{name: "CR LF", id: "a\r\nX-Evil: 1"},
		{name: "non-ASCII", id: "drill-é"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateTag(tt.id)
			if tt.valid != (err == nil) {
				t.Fatalf("ValidateTag(%q) = %v, want valid=%v", tt.id, err, tt.valid)
			}
			if err != nil && !errors.Is(err, ErrInvalidTag) {
				t.Fatalf("error %v does not wrap ErrInvalidTag", err)
			}
		})
	}
}

func TestTagFrom(t *testing.T) {
	tests := []struct {
		name    string
		tag     []string
		bag     []string
		drill   string
		found   bool
		invalid bool
	}{
		{name: "nothing"},
		{name: "header", tag: []string{"d1"}, drill: "d1", found: true},
		{name: "header trimmed", tag: []string{" d1 "}, drill: "d1", found: true},
		{name: "header repeated with one value", tag: []string{"d1", "d1"}, drill: "d1", found: true},
		{name: "header conflicting values", tag: []string{"d1", "d2"}, found: true, invalid: true},
		{name: "header invalid", tag: []string{"d 1"}, found: true, invalid: true},
		{name: "header empty", tag: []string{""}, found: true, invalid: true},
		{name: "baggage alone", bag: []string{"user=7,loadcap.shadow=d2;p=1,z=9"}, drill: "d2", found: true},
		{name: "baggage over two header lines", bag: []string{"user=7", "loadcap.shadow=d2"}, drill: "d2", found: true},
		{name: "baggage percent-encoded", bag: []string{"loadcap.shadow=d%25x"}, drill: "d%x", found: true},
		{name: "header and baggage agree", tag: []string{"d1"}, bag: []string{"x=1,loadcap.shadow=d1"}, drill: "d1", found: true},
		{name: "header and baggage disagree", tag: []string{"d1"}, bag: []string{"loadcap.shadow=d2"}, found: true, invalid: true},
		{name: "header beside unreadable baggage", tag: []string{"d1"}, bag: []string{"loadcap.shadow"}, found: true, invalid: true},
		{name: "header beside near-miss baggage key", tag: []string{"d1"}, bag: []string{"LOADCAP.SHADOW=d1"}, found: true, invalid: true},
		{name: "baggage without our member", bag: []string{"user=7,tenant=acme"}},
		{name: "our name only inside another value", bag: []string{"note=loadcap.shadow"}},
		{name: "baggage member invalid tag", bag: []string{"loadcap.shadow=d%201"}, found: true, invalid: true},
		{name: "unreadable baggage mentioning us", bag: []string{"loadcap.shadow"}, found: true, invalid: true},
		{name: "our member fine beside a broken one", bag: []string{"=broken,loadcap.shadow=d3"}, drill: "d3", found: true},
		{name: "duplicate members disagree", bag: []string{"loadcap.shadow=a,x=1", "loadcap.shadow=b"}, found: true, invalid: true},
		{name: "duplicate members agree", bag: []string{"loadcap.shadow=a,x=1", "loadcap.shadow=a;p=1"}, drill: "a", found: true},
		{name: "duplicate members agree once decoded", bag: []string{"loadcap.shadow=d%41", "loadcap.shadow=dA"}, drill: "dA", found: true},
		{name: "broken percent-encoding", bag: []string{"loadcap.shadow=a%"}, found: true, invalid: true},
		{name: "near-miss key upper case", bag: []string{"LOADCAP.SHADOW=d1"}, found: true, invalid: true},
		{name: "near-miss key underscore", bag: []string{"user=7,loadcap_shadow=d1"}, found: true, invalid: true},
		{name: "near-miss key header spelling", bag: []string{"X-Loadcap-Shadow=d1"}, found: true, invalid: true},
		{name: "near-miss key no separator", bag: []string{"loadcapshadow=d1"}, found: true, invalid: true},
		{name: "near-miss key without value", bag: []string{"Loadcap-Shadow"}, found: true, invalid: true},
		{name: "near-miss key beside our member", bag: []string{"loadcap.shadow=d1,loadcap-shadow=d1"}, found: true, invalid: true},
		{name: "spaces and properties", bag: []string{" x=1 , loadcap.shadow = d5 ;prop=1;flag "}, drill: "d5", found: true},
		{name: "similar key is not ours", bag: []string{"loadcap.shadowy=d6"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			drill, found, err := tagFrom(tt.tag, tt.bag)
			if found != tt.found || (err != nil) != tt.invalid {
				t.Fatalf("tagFrom = %q, found %v, err %v; want found %v, invalid %v", drill, found, err, tt.found, tt.invalid)
			}
			if !tt.invalid && drill != tt.drill {
				t.Fatalf("drill = %q, want %q", drill, tt.drill)
			}
		})
	}
}

func TestNearMiss(t *testing.T) {
	for name, want := range map[string]bool{
		"X-Loadcap-Shadow":        true, // exact names are the caller's test, done first
		"loadcap.shadow":          true,
		"X_Loadcap_Shadow":        true,
		"x.loadcap.shadow":        true,
		"XLOADCAPSHADOW":          true,
		"Loadcap--Shadow_":        true,
		"-x-l.o_a-dcapshadow.":    true,
		"X-Loadcap-Shadow-Reject": false,
		"X-Loadcap-Shadows":       false,
		"loadcap.shadowy":         false,
		"X Loadcap Shadow":        false, // a space is not one of the separators
		"loadcap":                 false,
		"":                        false,
	} {
		if got := nearMiss(name); got != want {
			t.Errorf("nearMiss(%q) = %v, want %v", name, got, want)
		}
		// baggageTag reads no further baggage without a 'w': sound only
		// if every near-miss has one.
		if want && !spellsShadow([]string{"k=v," + name + "=d1"}) {
			t.Errorf("spellsShadow misses near-miss %q", name)
		}
	}
}

// TestBaggageWithoutShadow: baggage that cannot hold the tag or a
// near-miss is untagged without being parsed, however broken it is; with
// a 'w' in it, it is parsed as before.
func TestBaggageWithoutShadow(t *testing.T) {
	for _, tt := range []struct {
		vals  []string
		found bool
	}{
		{vals: []string{"tenant=acme,user=alice"}},
		{vals: []string{"tenant=acme", ";;;==,"}},
		{vals: []string{"tenant=acme", "LOADCAP-SHADO=d1"}},
		{vals: []string{"tenant=acme", "LOADCAP-SHADOW=d1"}, found: true},
		{vals: []string{"tenant=acme", "loadcap.shadow=d1"}, found: true},
	} {
		if _, found, _ := baggageTag(tt.vals); found != tt.found {
			t.Errorf("baggageTag(%q) found = %v, want %v", tt.vals, found, tt.found)
		}
	}
}

func TestMergeBaggage(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		members map[string]string // after parsing all values together
		values  int
	}{
		{name: "none", members: map[string]string{BaggageMember: "d1"}, values: 1},
		{name: "others kept", in: []string{"user=alice,tenant=acme;ttl=5"},
			members: map[string]string{"user": "alice", "tenant": "acme", BaggageMember: "d1"}, values: 1},
		{name: "ours replaced", in: []string{"loadcap.shadow=old,user=alice"},
			members: map[string]string{"user": "alice", BaggageMember: "d1"}, values: 1},
		{name: "unparseable kept as it is", in: []string{"user=alice,=broken"},
			members: map[string]string{"user": "alice", BaggageMember: "d1"}, values: 1},
		{name: "unparseable with ours kept as it is", in: []string{"loadcap.shadow=old,=broken"},
			members: map[string]string{BaggageMember: "d1"}, values: 2},
		{name: "two header lines", in: []string{"user=alice", "tenant=acme"},
			members: map[string]string{"user": "alice", "tenant": "acme", BaggageMember: "d1"}, values: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := mergeBaggage(tt.in, "d1")
			if len(out) != tt.values {
				t.Fatalf("mergeBaggage = %q, want %d values", out, tt.values)
			}
			if !strings.HasPrefix(strings.Join(out, ","), strings.Join(tt.in, ",")) && !strings.Contains(tt.name, "replaced") {
				t.Fatalf("others' baggage %q changed: %q", tt.in, out)
			}
			b, _ := baggage.Parse(strings.Join(out, ","))
			for k, v := range tt.members {
				if got := b.Member(k).Value(); got != v {
					t.Errorf("member %s = %q, want %q (baggage %q)", k, got, v, out)
				}
			}
			if b.Len() != len(tt.members) {
				t.Errorf("baggage %q has %d members, want %d", out, b.Len(), len(tt.members))
			}
		})
	}
}

func TestAllowList(t *testing.T) {
	p, err := NewPolicy(AllowHosts("127.0.0.1:8080", "LOCALHOST", "::1", "[::2]:9", "unix"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, host, port string
		want             bool
	}{
		{name: "host and port", host: "127.0.0.1", port: "8080", want: true},
		{name: "other port", host: "127.0.0.1", port: "8081"},
		{name: "any port of a host entry", host: "localhost", port: "1", want: true},
		{name: "case-insensitive", host: "LocalHost", port: "443", want: true},
		{name: "not resolved", host: "127.0.0.2", port: "8080"},
		{name: "IPv6 any port", host: "::1", port: "5", want: true},
		{name: "IPv6 with port", host: "::2", port: "9", want: true},
		{name: "IPv6 other port", host: "::2", port: "10"},
		{name: "unix socket", host: "unix", port: "/tmp/s.sock", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.allows(tt.host, tt.port); got != tt.want {
				t.Fatalf("allows(%q, %q) = %v, want %v", tt.host, tt.port, got, tt.want)
			}
		})
	}
}

func TestTargetHostPort(t *testing.T) {
	tests := []struct {
		target, host, port string
	}{
		{"dns:///127.0.0.1:50051", "127.0.0.1", "50051"},
		{"dns://8.8.8.8/example.com:42", "example.com", "42"},
		{"passthrough:///localhost:7", "localhost", "7"},
		{"dns:///example.com", "example.com", "443"},
		{"dns:///[::1]:9", "::1", "9"},
		{"unix:///tmp/x.sock", "unix", "/tmp/x.sock"},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			host, port := targetHostPort(tt.target)
			if host != tt.host || port != tt.port {
				t.Fatalf("targetHostPort(%q) = %q, %q; want %q, %q", tt.target, host, port, tt.host, tt.port)
			}
		})
	}
}

// FuzzBaggageTag: the baggage scan never lets through as untagged what
// OpenTelemetry's parser reads as our member or a near-miss of it, and the
// tag it accepts is the one OpenTelemetry reads.
func FuzzBaggageTag(f *testing.F) {
	for _, seed := range []string{
		"loadcap.shadow=d1",
		"user=alice,loadcap.shadow=d2;p=1,z=9",
		" loadcap.shadow = d3 ;prop",
		"loadcap.shadow=a,loadcap.shadow=b",
		"loadcap.shadow=a,loadcap.shadow=a",
		"loadcap.shadow=d%25x",
		"=broken,loadcap.shadow=d4",
		"loadcap.shadowy=x,note=loadcap.shadow",
		"loadcap.shadow=a=b",
		"LOADCAP.SHADOW=d5",
		"loadcap_shadow=d6,x=1",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, found, err := baggageTag([]string{s})
		b, perr := baggage.Parse(s)
		if perr != nil {
			return
		}
		for _, m := range b.Members() {
			if (m.Key() == BaggageMember || nearMiss(m.Key())) && !found {
				t.Fatalf("baggageTag(%q): untagged, but OpenTelemetry reads member %q", s, m.Key())
			}
		}
		if err == nil && found {
			if want := b.Member(BaggageMember).Value(); got != want {
				t.Fatalf("baggageTag(%q) = %q, baggage.Parse gives %q", s, got, want)
			}
		}
	})
}
