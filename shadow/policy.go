package shadow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Naming maps a production name to its shadow twin: Prefix + name + Suffix.
// A schema works as a prefix ("shadow." puts PostgreSQL twins in schema
// shadow).
type Naming struct {
	Prefix, Suffix string
}

// Default namings (docs/ARCHITECTURE.md): table shadow_<table>, key shadow:<key>,
// topic <topic>_shadow.
var (
	DefaultTableNaming = Naming{Prefix: "shadow_"}
	DefaultKeyNaming   = Naming{Prefix: "shadow:"}
	DefaultTopicNaming = Naming{Suffix: "_shadow"}
)

// Shadow returns the shadow twin of name.
func (n Naming) Shadow(name string) string { return n.Prefix + name + n.Suffix }

// Real returns the production name whose twin is shadowName, and false when
// shadowName is not a twin under n.
func (n Naming) Real(shadowName string) (string, bool) {
	if n.Prefix == "" && n.Suffix == "" {
		return "", false
	}
	if len(shadowName) <= len(n.Prefix)+len(n.Suffix) ||
		!strings.HasPrefix(shadowName, n.Prefix) || !strings.HasSuffix(shadowName, n.Suffix) {
		return "", false
	}
	return shadowName[len(n.Prefix) : len(shadowName)-len(n.Suffix)], true
}

// Kind is the kind of resource tagged work touches.
type Kind string

// Resource kinds, as they appear in Stats.Rejected and in reject reasons.
const (
	KindTable    Kind = "table"
	KindKey      Kind = "key"
	KindTopic    Kind = "topic"
	KindEffect   Kind = "effect"
	KindID       Kind = "id"
	KindHost     Kind = "host"     // an outbound call's host
	KindTag      Kind = "tag"      // an incoming tag that could not be read
	KindDatabase Kind = "database" // DB: no shadow database to route to
	KindRemote   Kind = "remote"   // a downstream service refused; Name is the gRPC method or URL host
)

// Resource names one resource. For keys Name is the key space (the key up
// to its first ':' followed by '*'), so that counters stay few.
type Resource struct {
	Kind Kind
	Name string
}

func (r Resource) String() string {
	if r.Name == "" {
		return string(r.Kind)
	}
	return string(r.Kind) + " " + r.Name
}

// ErrNotIsolated is wrapped by every *IsolationError: tagged work was
// refused because it would have touched a resource without isolation.
var ErrNotIsolated = errors.New("shadow: not isolated")

// IsolationError says that tagged work was refused, and why. It is
// errors.Is ErrNotIsolated, and a gRPC status error with code Unavailable.
type IsolationError struct {
	Drill    string   // the drill id; "" when the tag itself was unreadable
	Resource Resource // what the work would have touched
	Reason   string   // why it was refused, e.g. "not declared"
}

func (e *IsolationError) Error() string {
	if e.Drill == "" {
		return fmt.Sprintf("shadow: %s: %s", e.Resource, e.Reason)
	}
	return fmt.Sprintf("shadow: drill %s: %s: %s", e.Drill, e.Resource, e.Reason)
}

// Unwrap returns ErrNotIsolated.
func (e *IsolationError) Unwrap() error { return ErrNotIsolated }

// GRPCStatus makes the error a gRPC status Unavailable.
func (e *IsolationError) GRPCStatus() *status.Status {
	return status.New(codes.Unavailable, e.Error())
}

// reason is the value of the reject header or trailer: printable ASCII,
// at most 256 bytes.
func (e *IsolationError) reason() string {
	s := e.Resource.String() + ": " + e.Reason
	if len(s) > 256 {
		s = s[:256]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}

// Reasons of refusal.
const (
	reasonUndeclared = "not declared"
	reasonNoPolicy   = "tagged, but no shadow policy in the context (middleware missing?)"
	reasonNoMock     = "declared without a mock"
	reasonHost       = "host not in the allow list"
	reasonNoOffset   = "no ID offset declared"
	reasonIDRange    = "ID out of range"
	reasonNoShadowDB = "no shadow database"
)

// Policy is what a service declares about its isolation: the resources it
// isolates, their shadow names, the ID offset, the hosts tagged requests may
// call and the logger for refusals. It also counts requests and refusals.
// Build it once with NewPolicy; it is safe for concurrent use.
type Policy struct {
	tables, keys, topics, effects patterns
	tableNaming, keyNaming        Naming
	topicNaming                   Naming
	idOffset                      int64
	allow                         []hostRule
	log                           *slog.Logger

	tagged, untagged atomic.Uint64
	rejects          rejectCounter
}

// Option configures a Policy in NewPolicy.
type Option func(*settings)

type settings struct {
	p    *Policy
	errs []error
}

// Tables declares the tables the service isolates: exact names, or a
// prefix followed by '*' ("events_*" for daily tables; "*" for all).
func Tables(names ...string) Option {
	return func(s *settings) { s.add(&s.p.tables, "table", names) }
}

// Keys declares the key spaces the service isolates: exact keys, or a
// prefix followed by '*' ("cart:*").
func Keys(patterns ...string) Option {
	return func(s *settings) { s.add(&s.p.keys, "key", patterns) }
}

// Topics declares the queues or topics the service isolates: exact names,
// or a prefix followed by '*'.
func Topics(names ...string) Option {
	return func(s *settings) { s.add(&s.p.topics, "topic", names) }
}

// Effects declares the side effects (payment, sms, …) whose mock tagged
// work runs; see Effect.
func Effects(names ...string) Option {
	return func(s *settings) { s.add(&s.p.effects, "effect", names) }
}

// TableNaming sets the naming of shadow tables (DefaultTableNaming).
func TableNaming(n Naming) Option { return func(s *settings) { s.p.tableNaming = n } }

// KeyNaming sets the naming of shadow keys (DefaultKeyNaming).
func KeyNaming(n Naming) Option { return func(s *settings) { s.p.keyNaming = n } }

// TopicNaming sets the naming of shadow topics (DefaultTopicNaming).
func TopicNaming(n Naming) Option { return func(s *settings) { s.p.topicNaming = n } }

// IDOffset sets the offset added to IDs of tagged work (ID). It must be
// above every production ID. Without it ID refuses tagged work.
func IDOffset(offset int64) Option {
	return func(s *settings) {
		if offset <= 0 {
			s.errs = append(s.errs, fmt.Errorf("ID offset %d: must be positive", offset))
		}
		s.p.idOffset = offset
	}
}

// AllowHosts sets the hosts that tagged outbound calls (Transport, client
// interceptors) may reach: "host" (any port) or "host:port"; IPv6 as
// "::1" or "[::1]:8080"; "unix" for gRPC over unix sockets. Names are
// compared as written, not resolved: "localhost" does not allow
// "127.0.0.1". Without it tagged work calls nothing.
func AllowHosts(hosts ...string) Option {
	return func(s *settings) {
		for _, h := range hosts {
			r, err := parseHostRule(h)
			if err != nil {
				s.errs = append(s.errs, err)
				continue
			}
			s.p.allow = append(s.p.allow, r)
		}
	}
}

// Logger sets where refusals are logged (slog.Default()). A refusal is
// logged the 1st, 2nd, 4th, 8th, … time it happens for the same resource,
// so a drill cannot flood the log.
func Logger(l *slog.Logger) Option { return func(s *settings) { s.p.log = l } }

// NewPolicy builds a Policy. The error lists every bad option.
func NewPolicy(opts ...Option) (*Policy, error) {
	s := &settings{p: &Policy{
		tableNaming: DefaultTableNaming,
		keyNaming:   DefaultKeyNaming,
		topicNaming: DefaultTopicNaming,
	}}
	for _, o := range opts {
		o(s)
	}
	for _, n := range []struct {
		what string
		n    Naming
	}{{"table", s.p.tableNaming}, {"key", s.p.keyNaming}, {"topic", s.p.topicNaming}} {
		if n.n.Prefix == "" && n.n.Suffix == "" {
			s.errs = append(s.errs, fmt.Errorf("%s naming: a shadow name must differ from the production name (set a prefix or a suffix)", n.what))
		}
	}
	if s.p.log == nil {
		s.p.log = slog.Default()
	}
	if err := errors.Join(s.errs...); err != nil {
		return nil, fmt.Errorf("shadow policy: %w", err)
	}
	return s.p, nil
}

func (s *settings) add(p *patterns, what string, names []string) {
	for _, n := range names {
		if err := p.add(n); err != nil {
			s.errs = append(s.errs, fmt.Errorf("%s %q: %w", what, n, err))
		}
	}
}

// WithTag returns a copy of ctx tagged with drillID and carrying p, as the
// middleware does for a tagged request. The error wraps ErrInvalidTag.
func (p *Policy) WithTag(ctx context.Context, drillID string) (context.Context, error) {
	if err := ValidateTag(drillID); err != nil {
		return ctx, err
	}
	return p.attach(ctx, drillID), nil
}

func (p *Policy) attach(ctx context.Context, drill string) context.Context {
	return withState(ctx, drill, p)
}

// Stats is a snapshot of a Policy's counters.
type Stats struct {
	// Tagged and Untagged count the requests, calls and messages that came
	// in through the policy's Middleware, server interceptors and Extract;
	// those refused for an unreadable tag count in Rejected only.
	Tagged, Untagged uint64
	// Rejected counts refusals by resource: undeclared resources, hosts
	// outside the allow list, unreadable tags.
	Rejected map[Resource]uint64
}

// Stats returns the counters so far; for export as metrics.
func (p *Policy) Stats() Stats {
	return Stats{Tagged: p.tagged.Load(), Untagged: p.untagged.Load(), Rejected: p.rejects.snapshot()}
}

// reject counts, logs and returns the refusal. p may be nil (a tagged
// context without a policy): then it logs to slog.Default.
func (p *Policy) reject(drill string, r Resource, reason string) *IsolationError {
	e := &IsolationError{Drill: drill, Resource: r, Reason: reason}
	c, log := &orphanRejects, slog.Default()
	if p != nil {
		c, log = &p.rejects, p.log
	}
	if n := c.add(r); n&(n-1) == 0 {
		log.Warn("shadow: refused tagged work", "drill", drill, "kind", string(r.Kind),
			"resource", r.Name, "reason", reason, "count", n)
	}
	return e
}

// orphanRejects counts refusals of tagged contexts without a policy, only
// to thin out their log lines.
var orphanRejects rejectCounter

type rejectCounter struct {
	mu sync.Mutex
	m  map[Resource]uint64
}

func (c *rejectCounter) add(r Resource) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[Resource]uint64)
	}
	c.m[r]++
	return c.m[r]
}

func (c *rejectCounter) snapshot() map[Resource]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[Resource]uint64, len(c.m))
	for k, v := range c.m {
		m[k] = v
	}
	return m
}

// patterns is a set of exact names and prefixes (declared as "prefix*").
type patterns struct {
	exact    map[string]struct{}
	prefixes []string
}

func (p *patterns) add(s string) error {
	switch {
	case s == "":
		return errors.New("empty name")
	case strings.IndexByte(s, '*') >= 0 && strings.IndexByte(s, '*') != len(s)-1:
		return errors.New("'*' may only end a name")
	case strings.HasSuffix(s, "*"):
		p.prefixes = append(p.prefixes, s[:len(s)-1])
	default:
		if p.exact == nil {
			p.exact = make(map[string]struct{})
		}
		p.exact[s] = struct{}{}
	}
	return nil
}

func (p *patterns) match(s string) bool {
	if _, ok := p.exact[s]; ok {
		return true
	}
	for _, pre := range p.prefixes {
		if strings.HasPrefix(s, pre) {
			return true
		}
	}
	return false
}

// hostRule is one allow-list entry; port "" allows every port.
type hostRule struct{ host, port string }

func parseHostRule(s string) (hostRule, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if h, port, err := net.SplitHostPort(t); err == nil {
		if h == "" || strings.ContainsAny(h, "/ ") || !(h == "unix" || isPort(port)) {
			return hostRule{}, fmt.Errorf("allowed host %q: want host or host:port", s)
		}
		return hostRule{host: h, port: port}, nil
	}
	t = strings.TrimSuffix(strings.TrimPrefix(t, "["), "]")
	if t == "" || strings.ContainsAny(t, "/ ") || (strings.Contains(t, ":") && net.ParseIP(t) == nil) {
		return hostRule{}, fmt.Errorf("allowed host %q: want host or host:port", s)
	}
	return hostRule{host: t}, nil
}

func isPort(s string) bool {
	if s == "" || len(s) > 5 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// allows reports whether tagged work may call host:port (port "" when the
// caller does not know it).
func (p *Policy) allows(host, port string) bool {
	for _, r := range p.allow {
		if strings.EqualFold(r.host, host) && (r.port == "" || r.port == port) {
			return true
		}
	}
	return false
}
