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
// be tagged at all; then err says why the claim is unusable (conflicting or
// invalid values). The tag header wins over baggage. Allocation-free unless
// baggage mentions BaggageMember.
func tagFrom(tagVals, baggageVals []string) (drill string, found bool, err error) {
	if len(tagVals) > 0 {
		drill = strings.TrimSpace(tagVals[0])
		for _, v := range tagVals[1:] {
			if strings.TrimSpace(v) != drill {
				return "", true, fmt.Errorf("%w: %d different values", ErrInvalidTag, len(tagVals))
			}
		}
		return drill, true, ValidateTag(drill)
	}
	mentioned := false
	for _, v := range baggageVals {
		if strings.Contains(v, BaggageMember) {
			mentioned = true
			break
		}
	}
	if !mentioned {
		return "", false, nil
	}
	if drill, ok := scanBaggage(baggageVals); ok && ValidateTag(drill) == nil {
		return drill, true, nil
	}
	b, perr := baggage.Parse(strings.Join(baggageVals, ","))
	m := b.Member(BaggageMember)
	if m.Key() == "" {
		if perr != nil {
			// It may have been our member that did not parse: fail closed.
			return "", true, fmt.Errorf("%w: unreadable baggage: %v", ErrInvalidTag, perr)
		}
		return "", false, nil // the name occurs only inside another member
	}
	drill = m.Value()
	return drill, true, ValidateTag(drill)
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

// scanBaggage is the fast path of reading our member from baggage header
// values, without building the whole baggage: it returns the value of the
// last BaggageMember (OpenTelemetry's rule for duplicates), its properties
// cut off. ok is false when the member is missing or its value is
// percent-encoded; then the caller falls back to baggage.Parse.
func scanBaggage(vals []string) (value string, ok bool) {
	for _, v := range vals {
		for len(v) > 0 {
			member := v
			if i := strings.IndexByte(v, ','); i >= 0 {
				member, v = v[:i], v[i+1:]
			} else {
				v = ""
			}
			key, val, hasEq := strings.Cut(member, "=")
			if !hasEq || strings.TrimSpace(key) != BaggageMember {
				continue
			}
			if i := strings.IndexByte(val, ';'); i >= 0 {
				val = val[:i]
			}
			value, ok = strings.TrimSpace(val), true
		}
	}
	if ok && strings.IndexByte(value, '%') >= 0 {
		return "", false
	}
	return value, ok
}
