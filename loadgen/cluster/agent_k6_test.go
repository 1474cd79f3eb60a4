package cluster

import (
	"net/netip"
	"testing"
)

func TestComplement(t *testing.T) {
	tests := []struct {
		name    string
		allowed []string
		in, out []string // addresses that must be allowed, and blocked
		count   int      // prefixes in the complement
	}{
		{name: "one address", allowed: []string{"127.0.0.1/32"},
			in: []string{"127.0.0.1"}, out: []string{"127.0.0.2", "10.0.0.1", "::1", "255.255.255.255", "0.0.0.0"}, count: 32 + 1},
		{name: "default loopback", allowed: []string{"127.0.0.0/8", "::1/128"},
			in: []string{"127.0.0.1", "127.255.0.9", "::1"}, out: []string{"128.0.0.1", "126.0.0.1", "::2", "fe80::1"}, count: 8 + 128},
		{name: "nested and disjoint", allowed: []string{"10.0.0.0/8", "10.1.0.0/16", "192.168.1.0/24"},
			in: []string{"10.200.0.1", "192.168.1.77"}, out: []string{"192.168.2.1", "11.0.0.0"}},
		{name: "everything v4", allowed: []string{"0.0.0.0/0"}, in: []string{"8.8.8.8"}, out: []string{"::1"}, count: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var allowed []netip.Prefix
			for _, s := range tt.allowed {
				allowed = append(allowed, netip.MustParsePrefix(s))
			}
			blocked := Complement(allowed)
			if tt.count > 0 && len(blocked) != tt.count {
				t.Errorf("%d prefixes, want %d: %v", len(blocked), tt.count, blocked)
			}
			isBlocked := func(a string) bool {
				ip := netip.MustParseAddr(a)
				for _, p := range blocked {
					if p.Contains(ip) {
						return true
					}
				}
				return false
			}
			for _, a := range tt.in {
				if isBlocked(a) {
					t.Errorf("%s is allowed but blocked", a)
				}
			}
			for _, a := range tt.out {
				if !isBlocked(a) {
					t.Errorf("%s is outside the allow list but not blocked", a)
				}
			}
		})
	}
}

func TestCheckK6Args(t *testing.T) {
	tests := []struct {
		name string
		args []string
		ok   bool
	}{
		{name: "load shape", args: []string{"--vus", "10", "--duration=5s", "-e", "HOST=x", "--summary-mode=disabled", "--no-thresholds"}, ok: true},
		{name: "an output elsewhere", args: []string{"--out", "influxdb=http://far:8086"}},
		{name: "a file on the agent", args: []string{"--summary-export=/etc/x"}},
		{name: "the agent's environment", args: []string{"--include-system-env-vars"}},
		{name: "another segment", args: []string{"--execution-segment", "0:1"}},
		{name: "a script path", args: []string{"other.js"}},
		{name: "a value missing", args: []string{"--vus"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := CheckK6Args(tt.args); (err == nil) != tt.ok {
				t.Errorf("err %v, want ok %v", err, tt.ok)
			}
		})
	}
}
