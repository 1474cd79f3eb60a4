package shadow

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.opentelemetry.io/otel/baggage"
)

// Wire names of the tag protocol (loadcap's docs/ARCHITECTURE.md, "The shadow tag").
const (
	// Header is the HTTP request header that carries the drill id.
	Header = "X-Loadcap-Shadow"
	// RejectHeader is the HTTP response header that says why a tagged
	// request was refused (with status 503).
	RejectHeader = "X-Loadcap-Shadow-Reject"
	// MetadataKey is the gRPC metadata key, and the message-queue header,
	// that carries the drill id.
	MetadataKey = "x-loadcap-shadow"
	// RejectMetadataKey is the gRPC trailer that says why a tagged call was
	// refused (with codes.Unavailable).
	RejectMetadataKey = "x-loadcap-shadow-reject"
	// BaggageMember is the W3C Baggage member that carries the drill id.
	BaggageMember = "loadcap.shadow"
	// TagColumn is the SQL column that holds the drill id of a row written
	// by tagged work (NULL for production rows); see SQLTag.
	TagColumn = "shadow_tag"
	// MaxTagLen is the longest drill id accepted, in bytes.
	MaxTagLen = 64
)

// ErrInvalidTag is the error (wrapped) for a drill id that is empty, longer
// than MaxTagLen or not made of token characters.
var ErrInvalidTag = errors.New("invalid shadow tag")

// tokenChar marks the bytes allowed in a drill id: RFC 9110 tchar.
var tokenChar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// ValidateTag reports whether drillID may be used as a tag: 1 to MaxTagLen
// bytes, each an HTTP token character (letters, digits, !#$%&'*+-.^_`|~).
// The error wraps ErrInvalidTag.
func ValidateTag(drillID string) error {
	if drillID == "" {
		return fmt.Errorf("%w: empty", ErrInvalidTag)
	}
	if len(drillID) > MaxTagLen {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrInvalidTag, len(drillID), MaxTagLen)
	}
	for i := 0; i < len(drillID); i++ {
		if !tokenChar[drillID[i]] {
			return fmt.Errorf("%w: byte %d (%q) is not a token character", ErrInvalidTag, i, drillID[i])
		}
	}
	return nil
}

// ctxKey is the context key of the *tagState.
type ctxKey struct{}

// tagState is what a tagged context carries: the drill id and the policy
// that isolates its work (nil when none was attached).
type tagState struct {
	drill  string
	policy *Policy
}

func stateOf(ctx context.Context) *tagState {
	s, _ := ctx.Value(ctxKey{}).(*tagState)
	return s
}

// WithTag returns a copy of ctx tagged with drillID, keeping the policy ctx
// already carries, if any. It is for callers (load generators, tests, jobs
// inside a service whose context already has the policy); a service that
// starts tagged work itself uses Policy.WithTag. The error wraps
// ErrInvalidTag.
func WithTag(ctx context.Context, drillID string) (context.Context, error) {
	if err := ValidateTag(drillID); err != nil {
		return ctx, err
	}
	var p *Policy
	if s := stateOf(ctx); s != nil {
		p = s.policy
	}
	return withState(ctx, drillID, p), nil
}

// tagCtx is a context carrying a tagState: one allocation where
// context.WithValue and the state would take two (Middleware's budget).
type tagCtx struct {
	context.Context
	s tagState
}

func (c *tagCtx) Value(key any) any {
	if key == (ctxKey{}) {
		return &c.s
	}
	return c.Context.Value(key)
}

func withState(ctx context.Context, drill string, p *Policy) context.Context {
	return &tagCtx{Context: ctx, s: tagState{drill: drill, policy: p}}
}

// FromContext returns the drill id ctx is tagged with, and whether it is
// tagged.
func FromContext(ctx context.Context) (drillID string, ok bool) {
	if s := stateOf(ctx); s != nil {
		return s.drill, true
	}
	return "", false
}

// tagFrom finds the tag in the values of the tag header (or metadata key)
// and of the baggage header. found reports whether the request claims to
// be tagged at all; then err says why the claim is unusable: an invalid
// drill id, values that disagree (two tag headers, two baggage members, or
// the header and the baggage member), unreadable baggage that mentions the
// member, or a baggage key that is a near-miss of BaggageMember.
// Allocation-free unless the request is refused or a baggage value is
// percent-encoded.
func tagFrom(tagVals, baggageVals []string) (drill string, found bool, err error) {
	bDrill, bFound, bErr := baggageTag(baggageVals)
	if len(tagVals) == 0 {
		return bDrill, bFound, bErr
	}
	drill = strings.TrimSpace(tagVals[0])
	for _, v := range tagVals[1:] {
		if strings.TrimSpace(v) != drill {
			return "", true, fmt.Errorf("%w: %d different values", ErrInvalidTag, len(tagVals))
		}
	}
	if err := ValidateTag(drill); err != nil {
		return "", true, err
	}
	switch {
	case bErr != nil:
		return "", true, bErr
	case bFound && bDrill != drill:
		return "", true, fmt.Errorf("%w: conflicting values: %s %q, baggage %s=%q", ErrInvalidTag, Header, drill, BaggageMember, bDrill)
	}
	return drill, true, nil
}

// The tag's names with case and separators removed (see nearMiss).
const (
	normHeader  = "xloadcapshadow" // Header, MetadataKey
	normBaggage = "loadcapshadow"  // BaggageMember
)

// nearMiss reports whether name spells one of the tag's names, Header
// (MetadataKey) or BaggageMember, with another case or other separators:
// ASCII letters lowered and every '-', '_' and '.' removed, it equals
// "xloadcapshadow" or "loadcapshadow". Whether the name is the exact one
// for its place (a header name compares without case, a baggage key with
// it) is the caller's test, done first.
func nearMiss(name string) bool {
	return normEqual(name, normHeader) || normEqual(name, normBaggage)
}

// normEqual reports whether name, its ASCII letters lowered and its '-',
// '_' and '.' removed, equals norm.
func normEqual(name, norm string) bool {
	j := 0
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '-' || c == '_' || c == '.':
			continue
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if j == len(norm) || norm[j] != c {
			return false
		}
		j++
	}
	return j == len(norm)
}

// scanNames finds in headers with lists of values (http.Header, gRPC
// metadata, OpenTelemetry's HeaderCarrier) what the tag check needs, in one
// pass and without a copy: the values of the tag's header (Header,
// MetadataKey: the same name without case) and of the baggage header, and a
// name that is a near-miss of the tag's names, if any. A name in another
// case counts as the same name (net/http and grpc-go's server make names
// canonical or lower case; a map built by hand may not): its values are
// added after those of the lower-case name, so that spellings that
// disagree are refused as a conflict. The returned slices may be m's own:
// read only.
func scanNames(m map[string][]string) (tagVals, bagVals []string, near string) {
	for k, v := range m {
		switch {
		case len(k) == len(baggageKey):
			if isBaggage(k) {
				bagVals = joinVals(bagVals, v, k == baggageKey)
			}
		case len(k) < len(normBaggage) || !nearMiss(k):
		case len(k) == len(MetadataKey) && strings.EqualFold(k, MetadataKey):
			tagVals = joinVals(tagVals, v, k == MetadataKey)
		case near == "":
			near = k
		}
	}
	return tagVals, bagVals, near
}

// joinVals returns the values of a key, vals, with those of another
// spelling of it, v: v alone when vals is empty (no copy), else a new
// slice with v first when first.
func joinVals(vals, v []string, first bool) []string {
	switch {
	case len(vals) == 0:
		return v
	case first:
		return append(v[:len(v):len(v)], vals...)
	}
	return append(vals[:len(vals):len(vals)], v...)
}

// quietNames reports whether headers (http.Header, gRPC metadata,
// OpenTelemetry's HeaderCarrier) surely carry no tag: no name is the tag
// or a near-miss of its names (nearMiss holds for both), and no baggage
// header, in any case, has a 'w' (see spellsShadow). Most requests are
// quiet, and this one light pass spares them the full scan (scanNames,
// mapTag), whose larger frame costs more per name.
func quietNames(m map[string][]string) bool {
	for k, v := range m {
		switch {
		case len(k) == len(baggageKey):
			if isBaggage(k) && spellsShadow(v) {
				return false
			}
		case len(k) >= len(normBaggage) && nearMiss(k):
			return false
		}
	}
	return true
}

// isBaggage reports whether k is "baggage" in any case, the usual
// spellings first.
func isBaggage(k string) bool {
	return k == baggageKey || k == baggageHeader || strings.EqualFold(k, baggageKey)
}

// quietMap is quietNames for headers with one value each (MapCarrier,
// OpenTelemetry's MapCarrier).
func quietMap(m map[string]string) bool {
	for k, v := range m {
		switch {
		case len(k) == len(baggageKey):
			if isBaggage(k) && hasW(v) {
				return false
			}
		case len(k) >= len(normBaggage) && nearMiss(k):
			return false
		}
	}
	return true
}

// nearMissError is the refusal of a request that carries a near-miss of
// the tag's name where want is expected.
func nearMissError(where, name, want string) error {
	return fmt.Errorf("%w: near-miss %s %q (the tag is %s)", ErrInvalidTag, where, name, want)
}

// baggageTag reads BaggageMember from baggage header values: its value
// (percent-decoded, properties cut off), whether the baggage claims a tag,
// and why the claim is unusable: members with different values, a member
// without a value, a key that is a near-miss of BaggageMember, or baggage
// that mentions the member and does not parse. Allocation-free unless the
// value is percent-encoded or the claim is refused.
func baggageTag(vals []string) (drill string, found bool, err error) {
	if !spellsShadow(vals) {
		return "", false, nil
	}
	mentioned := false
	for _, v := range vals {
		if !mentioned && strings.Contains(v, BaggageMember) {
			mentioned = true
		}
		for len(v) > 0 {
			member := v
			if i := strings.IndexByte(v, ','); i >= 0 {
				member, v = v[:i], v[i+1:]
			} else {
				v = ""
			}
			key, rest := member, ""
			if i := strings.IndexAny(member, "=;"); i >= 0 {
				key, rest = member[:i], member[i:]
			}
			key = strings.TrimSpace(key)
			if key != BaggageMember {
				if nearMiss(key) {
					return "", true, nearMissError("baggage key", key, BaggageMember)
				}
				continue
			}
			if !strings.HasPrefix(rest, "=") {
				return "", true, fmt.Errorf("%w: unreadable baggage: member %s without a value", ErrInvalidTag, BaggageMember)
			}
			val := rest[1:]
			if i := strings.IndexByte(val, ';'); i >= 0 {
				val = val[:i]
			}
			val = strings.TrimSpace(val)
			if strings.IndexByte(val, '%') >= 0 {
				b, perr := baggage.Parse(BaggageMember + "=" + val)
				if perr != nil {
					return "", true, fmt.Errorf("%w: unreadable baggage: %v", ErrInvalidTag, perr)
				}
				val = b.Member(BaggageMember).Value()
			}
			if found && val != drill {
				return "", true, fmt.Errorf("%w: conflicting values: baggage %s=%q and %s=%q", ErrInvalidTag, BaggageMember, drill, BaggageMember, val)
			}
			drill, found = val, true
		}
	}
	if found {
		return drill, true, ValidateTag(drill)
	}
	if mentioned {
		// The name occurs, but not as a member's key: only inside another
		// member's value is fine; inside baggage that does not parse it
		// may be our member, broken: fail closed.
		if _, perr := baggage.Parse(strings.Join(vals, ",")); perr != nil {
			return "", true, fmt.Errorf("%w: unreadable baggage: %v", ErrInvalidTag, perr)
		}
	}
	return "", false, nil
}

// spellsShadow reports whether a value of vals has a 'w' in either case,
// as BaggageMember and every near-miss of the tag's names do ("shadow"):
// without one, baggage holds neither, and the common baggage of untagged
// requests (tenant, user and session ids) is read no further.
func spellsShadow(vals []string) bool {
	for _, v := range vals {
		if hasW(v) {
			return true
		}
	}
	return false
}

// hasW reports whether v has a 'w' in either case (see spellsShadow).
func hasW(v string) bool {
	return strings.IndexByte(v, 'w') >= 0 || strings.IndexByte(v, 'W') >= 0
}

// mergeBaggage returns the baggage header values vals with the member
// BaggageMember=drill set, every other member kept. Unparseable baggage is
// kept as it is and our member goes in a value of its own after it (W3C
// receivers combine the values; the last duplicate wins in OpenTelemetry).
func mergeBaggage(vals []string, drill string) []string {
	if strings.IndexByte(drill, '%') < 0 {
		// Fast path, the common case: no member of ours to replace, and a
		// value that needs no percent-encoding (token characters but '%'
		// are baggage-octets). Others' members stay byte for byte.
		mentioned := false
		for _, v := range vals {
			if strings.Contains(v, BaggageMember) {
				mentioned = true
				break
			}
		}
		if !mentioned {
			member := BaggageMember + "=" + drill
			if len(vals) == 0 {
				return []string{member}
			}
			return []string{strings.Join(vals, ",") + "," + member}
		}
	}
	m, err := baggage.NewMemberRaw(BaggageMember, drill)
	if err != nil { // unreachable for a validated tag
		return vals
	}
	if len(vals) == 0 {
		return []string{m.String()}
	}
	b, err := baggage.Parse(strings.Join(vals, ","))
	if err != nil {
		return append(vals[:len(vals):len(vals)], m.String())
	}
	if b, err = b.SetMember(m); err != nil {
		return append(vals[:len(vals):len(vals)], m.String())
	}
	return []string{b.String()}
}
