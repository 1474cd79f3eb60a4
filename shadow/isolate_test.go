package shadow_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/loadcap/loadcap/shadow"
)

// newPolicy builds a policy for tests, logging nowhere unless opts say.
func newPolicy(t testing.TB, opts ...shadow.Option) *shadow.Policy {
	t.Helper()
	p, err := shadow.NewPolicy(append([]shadow.Option{shadow.Logger(slog.New(slog.DiscardHandler))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// shopPolicy declares what the isolation tests use.
func shopPolicy(t testing.TB, opts ...shadow.Option) *shadow.Policy {
	return newPolicy(t, append([]shadow.Option{
		shadow.Tables("orders", "events_*"),
		shadow.Keys("cart:*", "session"),
		shadow.Topics("events"),
		shadow.Effects("payment"),
		shadow.IDOffset(1_000_000_000),
	}, opts...)...)
}

func tagged(t testing.TB, p *shadow.Policy, drill string) context.Context {
	t.Helper()
	ctx, err := p.WithTag(context.Background(), drill)
	if err != nil {
		t.Fatal(err)
	}
	return ctx
}

func TestNames(t *testing.T) {
	p := shopPolicy(t)
	untagged := context.Background()
	tag := tagged(t, p, "d1")
	noPolicy, err := shadow.WithTag(context.Background(), "d1")
	if err != nil {
		t.Fatal(err)
	}
	type nameFunc func(context.Context, string) (string, error)
	tests := []struct {
		name string
		f    nameFunc
		ctx  context.Context
		in   string
		want string // "" = refused
	}{
		{name: "table untagged", f: shadow.Table, ctx: untagged, in: "orders", want: "orders"},
		{name: "table untagged undeclared", f: shadow.Table, ctx: untagged, in: "payments", want: "payments"},
		{name: "table tagged", f: shadow.Table, ctx: tag, in: "orders", want: "shadow_orders"},
		{name: "table tagged by prefix", f: shadow.Table, ctx: tag, in: "events_20240101", want: "shadow_events_20240101"},
		{name: "table tagged undeclared", f: shadow.Table, ctx: tag, in: "payments"},
		{name: "table tagged no policy", f: shadow.Table, ctx: noPolicy, in: "orders"},
		{name: "key untagged", f: shadow.Key, ctx: untagged, in: "cart:42", want: "cart:42"},
		{name: "key tagged", f: shadow.Key, ctx: tag, in: "cart:42", want: "shadow:cart:42"},
		{name: "key tagged exact", f: shadow.Key, ctx: tag, in: "session", want: "shadow:session"},
		{name: "key tagged exact is not a prefix", f: shadow.Key, ctx: tag, in: "session:9"},
		{name: "key tagged undeclared", f: shadow.Key, ctx: tag, in: "user:42"},
		{name: "key tagged no policy", f: shadow.Key, ctx: noPolicy, in: "cart:42"},
		{name: "topic untagged", f: shadow.Topic, ctx: untagged, in: "events", want: "events"},
		{name: "topic tagged", f: shadow.Topic, ctx: tag, in: "events", want: "events_shadow"},
		{name: "topic tagged undeclared", f: shadow.Topic, ctx: tag, in: "mail"},
		{name: "topic tagged no policy", f: shadow.Topic, ctx: noPolicy, in: "events"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.f(tt.ctx, tt.in)
			if tt.want == "" {
				if !errors.Is(err, shadow.ErrNotIsolated) || got != "" {
					t.Fatalf("got %q, %v; want refusal (ErrNotIsolated) and no name", got, err)
				}
				var ie *shadow.IsolationError
				if !errors.As(err, &ie) || ie.Drill != "d1" {
					t.Fatalf("error %v: want *IsolationError for drill d1", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestNamings(t *testing.T) {
	p := newPolicy(t, shadow.Tables("orders"), shadow.Keys("*"), shadow.Topics("*"),
		shadow.TableNaming(shadow.Naming{Prefix: "shadow."}),
		shadow.KeyNaming(shadow.Naming{Suffix: "#s"}),
		shadow.TopicNaming(shadow.Naming{Prefix: "s.", Suffix: ".s"}))
	ctx := tagged(t, p, "d1")
	for _, c := range []struct {
		f        func(context.Context, string) (string, error)
		in, want string
	}{
		{shadow.Table, "orders", "shadow.orders"},
		{shadow.Key, "anything", "anything#s"},
		{shadow.Topic, "t", "s.t.s"},
	} {
		if got, err := c.f(ctx, c.in); err != nil || got != c.want {
			t.Errorf("%q: got %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestID(t *testing.T) {
	p := shopPolicy(t)
	noOffset := newPolicy(t, shadow.Tables("orders"))
	noPolicy, _ := shadow.WithTag(context.Background(), "d1")
	tests := []struct {
		name string
		ctx  context.Context
		id   int64
		want int64 // -1 = refused
	}{
		{name: "untagged", ctx: context.Background(), id: 42, want: 42},
		{name: "tagged", ctx: tagged(t, p, "d1"), id: 42, want: 1_000_000_042},
		{name: "tagged zero", ctx: tagged(t, p, "d1"), id: 0, want: 1_000_000_000},
		{name: "tagged negative", ctx: tagged(t, p, "d1"), id: -1, want: -1},
		{name: "tagged overflow", ctx: tagged(t, p, "d1"), id: 1<<63 - 1, want: -1},
		{name: "tagged without offset", ctx: tagged(t, noOffset, "d1"), id: 42, want: -1},
		{name: "tagged no policy", ctx: noPolicy, id: 42, want: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := shadow.ID(tt.ctx, tt.id)
			if tt.want == -1 {
				if !errors.Is(err, shadow.ErrNotIsolated) {
					t.Fatalf("ID = %d, %v; want refusal", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ID = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func TestEffect(t *testing.T) {
	p := shopPolicy(t)
	noPolicy, _ := shadow.WithTag(context.Background(), "d1")
	tests := []struct {
		name    string
		ctx     context.Context
		effect  string
		noMock  bool
		want    string // which ran: "real", "mock" or "" (refused, none)
		wantErr error
	}{
		{name: "untagged runs real", ctx: context.Background(), effect: "payment", want: "real"},
		{name: "untagged undeclared runs real", ctx: context.Background(), effect: "sms", want: "real"},
		{name: "tagged runs mock", ctx: tagged(t, p, "d1"), effect: "payment", want: "mock"},
		{name: "tagged undeclared runs nothing", ctx: tagged(t, p, "d1"), effect: "sms", wantErr: shadow.ErrNotIsolated},
		{name: "tagged without mock runs nothing", ctx: tagged(t, p, "d1"), effect: "payment", noMock: true, wantErr: shadow.ErrNotIsolated},
		{name: "tagged no policy runs nothing", ctx: noPolicy, effect: "payment", wantErr: shadow.ErrNotIsolated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ran []string
			errMock := errors.New("mock result")
			real := func(context.Context) error { ran = append(ran, "real"); return nil }
			mock := func(ctx context.Context) error {
				if d, ok := shadow.FromContext(ctx); !ok || d != "d1" {
					t.Errorf("mock ran with tag %q, %v", d, ok)
				}
				ran = append(ran, "mock")
				return errMock
			}
			if tt.noMock {
				mock = nil
			}
			err := shadow.Effect(tt.ctx, tt.effect, real, mock)
			switch {
			case tt.want == "mock" && err != errMock:
				t.Fatalf("Effect = %v, want the mock's error", err)
			case tt.want == "real" && err != nil:
				t.Fatalf("Effect = %v", err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("Effect = %v, want %v", err, tt.wantErr)
			}
			if got := strings.Join(ran, ","); got != tt.want {
				t.Fatalf("ran %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSQLTag(t *testing.T) {
	if v := shadow.SQLTag(context.Background()); v.Valid {
		t.Fatalf("untagged SQLTag = %+v, want NULL", v)
	}
	if v := shadow.SQLTag(tagged(t, shopPolicy(t), "d1")); !v.Valid || v.String != "d1" {
		t.Fatalf("tagged SQLTag = %+v, want d1", v)
	}
}

func TestWithTag(t *testing.T) {
	p := shopPolicy(t)
	if _, err := shadow.WithTag(context.Background(), "bad tag"); !errors.Is(err, shadow.ErrInvalidTag) {
		t.Fatalf("WithTag(bad tag) = %v, want ErrInvalidTag", err)
	}
	if _, err := p.WithTag(context.Background(), strings.Repeat("x", 65)); !errors.Is(err, shadow.ErrInvalidTag) {
		t.Fatalf("Policy.WithTag(65 bytes) = %v, want ErrInvalidTag", err)
	}
	if _, ok := shadow.FromContext(context.Background()); ok {
		t.Fatal("background context is tagged")
	}
	// Retagging a context that has the policy keeps the policy.
	ctx, err := shadow.WithTag(tagged(t, p, "d1"), "d2")
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := shadow.FromContext(ctx); d != "d2" {
		t.Fatalf("drill = %q, want d2", d)
	}
	if got, err := shadow.Table(ctx, "orders"); err != nil || got != "shadow_orders" {
		t.Fatalf("Table after retag = %q, %v; want shadow_orders (policy kept)", got, err)
	}
}

func TestNewPolicyErrors(t *testing.T) {
	_, err := shadow.NewPolicy(
		shadow.Tables("ok", "", "a*b"),
		shadow.KeyNaming(shadow.Naming{}),
		shadow.IDOffset(-5),
		shadow.AllowHosts("127.0.0.1:", "http://x/", "fine:80"),
	)
	if err == nil {
		t.Fatal("NewPolicy accepted bad options")
	}
	for _, want := range []string{`table ""`, `table "a*b"`, "key naming", "offset -5", `"127.0.0.1:"`, `"http://x/"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "fine:80") || strings.Contains(err.Error(), `"ok"`) {
		t.Errorf("error %q blames a good option", err)
	}
}

func TestRefusalsCountedAndLogged(t *testing.T) {
	var logs bytes.Buffer
	p := shopPolicy(t, shadow.Logger(slog.New(slog.NewTextHandler(&logs, nil))))
	ctx := tagged(t, p, "d1")
	for range 5 {
		shadow.Table(ctx, "payments")
	}
	shadow.Key(ctx, "user:1")
	shadow.Key(ctx, "user:2")
	shadow.Effect(ctx, "sms", nil, nil)
	shadow.Table(ctx, "orders") // isolated: not a refusal
	shadow.Table(context.Background(), "payments")

	want := map[shadow.Resource]uint64{
		{Kind: shadow.KindTable, Name: "payments"}: 5,
		{Kind: shadow.KindKey, Name: "user:*"}:     2,
		{Kind: shadow.KindEffect, Name: "sms"}:     1,
	}
	got := p.Stats().Rejected
	if len(got) != len(want) {
		t.Fatalf("Rejected = %v, want %v", got, want)
	}
	for r, n := range want {
		if got[r] != n {
			t.Errorf("Rejected[%v] = %d, want %d", r, got[r], n)
		}
	}
	// Logged at the 1st, 2nd and 4th refusal of a resource, not every one.
	if n := strings.Count(logs.String(), "resource=payments"); n != 3 {
		t.Errorf("payments refusal logged %d times, want 3:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "drill=d1") || !strings.Contains(logs.String(), "reason=\"not declared\"") {
		t.Errorf("log lacks drill or reason:\n%s", logs.String())
	}
}
