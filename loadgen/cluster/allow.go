package cluster

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// AllowList is where an agent may send traffic: host names and address
// ranges. An agent is a traffic weapon; it refuses any plan aimed outside
// its list. Its methods are safe for concurrent use.
type AllowList struct {
	names    []string // lower case, no trailing dot; "*.x" allows every subdomain of x
	prefixes []netip.Prefix
	entries  []string // as given, for messages
	lookup   func(ctx context.Context, host string) ([]netip.Addr, error)
}

// DefaultAllowList allows loopback only: localhost, 127.0.0.0/8 and ::1.
func DefaultAllowList() *AllowList {
	a, _ := ParseAllowList("localhost", "127.0.0.0/8", "::1/128")
	return a
}

// ParseAllowList parses allow-list entries; each may hold several separated
// by commas. An entry is a CIDR range ("10.20.0.0/16"), an address
// ("10.0.0.5", "::1"), a host name ("shop.internal") or a wildcard for
// its subdomains ("*.shop.internal").
func ParseAllowList(entries ...string) (*AllowList, error) {
	a := &AllowList{lookup: lookupIP}
	for _, e := range entries {
		for _, s := range strings.Split(e, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			a.entries = append(a.entries, s)
			if p, err := netip.ParsePrefix(s); err == nil {
				a.prefixes = append(a.prefixes, p.Masked())
				continue
			}
			if ip, err := netip.ParseAddr(s); err == nil {
				ip = ip.WithZone("").Unmap()
				a.prefixes = append(a.prefixes, netip.PrefixFrom(ip, ip.BitLen()))
				continue
			}
			name := strings.TrimSuffix(strings.ToLower(s), ".")
			base := strings.TrimPrefix(name, "*.")
			if strings.ContainsAny(s, "/:") || !validHostname(base) {
				return nil, fmt.Errorf("allow-target %q: not a host name, an address or a CIDR range", s)
			}
			a.names = append(a.names, name)
		}
	}
	if len(a.entries) == 0 {
		return nil, fmt.Errorf("allow-target: no entries")
	}
	return a, nil
}

func lookupIP(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

func validHostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// String lists the entries as given, comma-separated.
func (a *AllowList) String() string { return strings.Join(a.entries, ",") }

// Check returns nil when host (with or without a port) is allowed: an
// address inside one of the ranges, a name on the list (or under a
// wildcard), or a name every address of which lies inside the ranges. The
// error names the host and the list.
func (a *AllowList) Check(ctx context.Context, host string) error {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), ".")
	if ip, err := netip.ParseAddr(h); err == nil {
		if a.inRanges(ip) {
			return nil
		}
		return fmt.Errorf("target host %q is outside the agent's allow list (%s)", host, a)
	}
	for _, n := range a.names {
		if n == h || (strings.HasPrefix(n, "*.") && strings.HasSuffix(h, n[1:])) {
			return nil
		}
	}
	if len(a.prefixes) > 0 {
		addrs, err := a.lookup(ctx, h)
		if err == nil && len(addrs) > 0 {
			for _, ip := range addrs {
				if !a.inRanges(ip) {
					return fmt.Errorf("target host %q resolves to %s, outside the agent's allow list (%s)", host, ip, a)
				}
			}
			return nil
		}
	}
	return fmt.Errorf("target host %q is outside the agent's allow list (%s)", host, a)
}

func (a *AllowList) inRanges(ip netip.Addr) bool {
	ip = ip.WithZone("").Unmap()
	for _, p := range a.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
