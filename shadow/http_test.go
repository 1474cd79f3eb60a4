package shadow_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"

	"github.com/loadcap/loadcap/shadow"
)

// seen is what a test handler observed about its request.
type seen struct {
	drill   string
	tagged  bool
	table   string
	err     error
	header  string
	baggage string
}

// observer is a handler that records what it sees and answers with the
// table name for the query parameter "table" (default "orders"), or the
// refusal.
func observer(got *seen) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.drill, got.tagged = shadow.FromContext(r.Context())
		got.header, got.baggage = r.Header.Get(shadow.Header), r.Header.Get("Baggage")
		name := r.URL.Query().Get("table")
		if name == "" {
			name = "orders"
		}
		got.table, got.err = shadow.Table(r.Context(), name)
		if shadow.Reject(w, got.err) {
			return
		}
		io.WriteString(w, got.table)
	})
}

func TestMiddleware(t *testing.T) {
	tests := []struct {
		name       string
		header     []string
		baggage    string
		other      [][2]string // other headers, name and value
		wantStatus int
		wantDrill  string // "" = untagged
		wantTable  string
		wantReason string // RejectHeader
	}{
		{name: "untagged", wantStatus: 200, wantTable: "orders"},
		{name: "untagged with other baggage", baggage: "user=alice", wantStatus: 200, wantTable: "orders"},
		{name: "header", header: []string{"d1"}, wantStatus: 200, wantDrill: "d1", wantTable: "shadow_orders"},
		{name: "baggage only", baggage: "user=alice,loadcap.shadow=d2", wantStatus: 200, wantDrill: "d2", wantTable: "shadow_orders"},
		{name: "header and baggage", header: []string{"d1"}, baggage: "loadcap.shadow=d1", wantStatus: 200, wantDrill: "d1", wantTable: "shadow_orders"},
		{name: "invalid tag refused", header: []string{"no spaces allowed"}, wantStatus: 503, wantReason: "tag: invalid shadow tag: byte 2 (' ') is not a token character"},
		{name: "conflicting tags refused", header: []string{"d1", "d2"}, wantStatus: 503, wantReason: "tag: invalid shadow tag: 2 different values"},
		{name: "unreadable baggage refused", baggage: "loadcap.shadow", wantStatus: 503, wantReason: "tag: invalid shadow tag: unreadable baggage"},
		{name: "header and baggage disagree", header: []string{"d1"}, baggage: "loadcap.shadow=d2", wantStatus: 503,
			wantReason: `tag: invalid shadow tag: conflicting values: X-Loadcap-Shadow "d1", baggage loadcap.shadow="d2"`},
		{name: "two baggage members disagree", baggage: "loadcap.shadow=d1,user=alice,loadcap.shadow=d2", wantStatus: 503,
			wantReason: `tag: invalid shadow tag: conflicting values: baggage loadcap.shadow="d1" and loadcap.shadow="d2"`},
		{name: "two baggage members agree", baggage: "loadcap.shadow=d1,loadcap.shadow=d1", wantStatus: 200, wantDrill: "d1", wantTable: "shadow_orders"},
		{name: "header in another case", other: [][2]string{{"x-loadcap-shadow", "d1"}}, wantStatus: 200, wantDrill: "d1", wantTable: "shadow_orders"},
		{name: "near-miss header underscores", other: [][2]string{{"X_Loadcap_Shadow", "d1"}}, wantStatus: 503,
			wantReason: `tag: invalid shadow tag: near-miss header "X_loadcap_shadow" (the tag is X-Loadcap-Shadow)`},
		{name: "near-miss header dots", other: [][2]string{{"x.loadcap.shadow", "d1"}}, wantStatus: 503, wantReason: "tag: invalid shadow tag: near-miss header"},
		{name: "near-miss header baggage spelling", other: [][2]string{{"Loadcap-Shadow", "d1"}}, wantStatus: 503, wantReason: "tag: invalid shadow tag: near-miss header"},
		{name: "near-miss header beside the tag", header: []string{"d1"}, other: [][2]string{{"X_Loadcap_Shadow", "d2"}}, wantStatus: 503, wantReason: "tag: invalid shadow tag: near-miss header"},
		{name: "near-miss baggage key upper case", baggage: "LOADCAP.SHADOW=d1", wantStatus: 503,
			wantReason: `tag: invalid shadow tag: near-miss baggage key "LOADCAP.SHADOW" (the tag is loadcap.shadow)`},
		{name: "near-miss baggage key underscore", baggage: "user=alice,loadcap_shadow=d1", wantStatus: 503, wantReason: "tag: invalid shadow tag: near-miss baggage key"},
		{name: "similar header is not the tag", other: [][2]string{{"X-Loadcap-Shadow-Id", "d1"}}, wantStatus: 200, wantTable: "orders"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := shopPolicy(t)
			var got seen
			called := false
			h := p.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				called = true
				observer(&got).ServeHTTP(w, r)
			}))
			r := httptest.NewRequest("GET", "/", nil)
			for _, v := range tt.header {
				r.Header.Add(shadow.Header, v)
			}
			if tt.baggage != "" {
				r.Header.Set("Baggage", tt.baggage)
			}
			for _, kv := range tt.other {
				r.Header.Add(kv[0], kv[1])
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)

			if w.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %q", w.Code, tt.wantStatus, w.Body)
			}
			st := p.Stats()
			if tt.wantStatus == 503 {
				if called {
					t.Fatal("handler ran for a refused request")
				}
				if reason := w.Header().Get(shadow.RejectHeader); !strings.HasPrefix(reason, tt.wantReason) {
					t.Fatalf("reject reason %q, want prefix %q", reason, tt.wantReason)
				}
				if st.Rejected[shadow.Resource{Kind: shadow.KindTag}] != 1 || st.Tagged+st.Untagged != 0 {
					t.Fatalf("stats %+v, want one tag refusal only", st)
				}
				return
			}
			if got.drill != tt.wantDrill || got.tagged != (tt.wantDrill != "") || got.table != tt.wantTable {
				t.Fatalf("handler saw drill %q (tagged %v), table %q; want %q, %q", got.drill, got.tagged, got.table, tt.wantDrill, tt.wantTable)
			}
			if tagged := tt.wantDrill != ""; (tagged && st.Tagged != 1) || (!tagged && st.Untagged != 1) {
				t.Fatalf("stats %+v, want one %s request", st, map[bool]string{true: "tagged", false: "untagged"}[tagged])
			}
		})
	}
}

// hostOf returns host:port of a test server.
func hostOf(t testing.TB, s *httptest.Server) string {
	t.Helper()
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// TestHTTPToHTTP sends a tagged request through client → A → B, both
// services behind the middleware, A calling B through the Transport.
func TestHTTPToHTTP(t *testing.T) {
	var atB seen
	var hitsB atomic.Int64
	pB := shopPolicy(t)
	b := httptest.NewServer(pB.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hitsB.Add(1)
		observer(&atB).ServeHTTP(w, r)
	})))
	defer b.Close()

	// A forwards to B (or to the URL in ?to=) and passes refusals back.
	gateway := func(p *shadow.Policy) http.Handler {
		client := &http.Client{Transport: p.Transport(nil)}
		return p.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			req, _ := http.NewRequestWithContext(r.Context(), "GET", b.URL+"/?"+r.URL.RawQuery, nil)
			req.Header.Set("Baggage", "user=alice")
			resp, err := client.Do(req)
			if shadow.Reject(w, err) {
				return
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			if shadow.Reject(w, shadow.ResponseError(resp)) {
				return
			}
			io.Copy(w, resp.Body)
		}))
	}
	allowB := httptest.NewServer(gateway(shopPolicy(t, shadow.AllowHosts(hostOf(t, b)))))
	defer allowB.Close()
	allowNone := httptest.NewServer(gateway(shopPolicy(t)))
	defer allowNone.Close()

	tests := []struct {
		name       string
		gateway    *httptest.Server
		drill      string
		query      string
		wantStatus int
		wantBody   string
		wantReason string
		wantAtB    bool
	}{
		{name: "tagged", gateway: allowB, drill: "d1", wantStatus: 200, wantBody: "shadow_orders", wantAtB: true},
		{name: "untagged", gateway: allowB, wantStatus: 200, wantBody: "orders", wantAtB: true},
		{name: "refused downstream", gateway: allowB, drill: "d1", query: "table=payments", wantStatus: 503,
			wantReason: "remote " + hostOf(t, b) + ": table payments: not declared", wantAtB: true},
		{name: "untagged to an undeclared table", gateway: allowB, query: "table=payments", wantStatus: 200, wantBody: "payments", wantAtB: true},
		{name: "tagged to a host not allowed", gateway: allowNone, drill: "d1", wantStatus: 503,
			wantReason: "host " + hostOf(t, b) + ": host not in the allow list"},
		{name: "untagged to a host not allowed", gateway: allowNone, wantStatus: 200, wantBody: "orders", wantAtB: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			atB = seen{}
			hitsB.Store(0)
			client := &http.Client{Transport: newPolicy(t, shadow.AllowHosts("127.0.0.1")).Transport(nil)}
			ctx := context.Background()
			if tt.drill != "" {
				ctx, _ = shadow.WithTag(ctx, tt.drill)
			}
			req, _ := http.NewRequestWithContext(ctx, "GET", tt.gateway.URL+"/?"+tt.query, nil)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %q", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantStatus == 200 && string(body) != tt.wantBody {
				t.Fatalf("body %q, want %q", body, tt.wantBody)
			}
			if got := resp.Header.Get(shadow.RejectHeader); got != tt.wantReason {
				t.Fatalf("reject reason %q, want %q", got, tt.wantReason)
			}
			if n := hitsB.Load(); (n == 1) != tt.wantAtB || n > 1 {
				t.Fatalf("B got %d requests, want reached=%v", n, tt.wantAtB)
			}
			if !tt.wantAtB {
				return
			}
			if atB.drill != tt.drill {
				t.Fatalf("B saw drill %q, want %q", atB.drill, tt.drill)
			}
			// The tag travels as header and baggage, A's own baggage intact.
			bag, err := baggage.Parse(atB.baggage)
			if err != nil {
				t.Fatalf("B got baggage %q: %v", atB.baggage, err)
			}
			if bag.Member("user").Value() != "alice" {
				t.Fatalf("B got baggage %q, lost user=alice", atB.baggage)
			}
			if atB.header != tt.drill || bag.Member(shadow.BaggageMember).Value() != tt.drill {
				t.Fatalf("B got header %q, baggage %q; want the tag %q in both", atB.header, atB.baggage, tt.drill)
			}
		})
	}
}

// TestOTelBaggageCaller: a caller instrumented with OpenTelemetry sends
// only baggage, no X-Loadcap-Shadow header; the request is tagged.
func TestOTelBaggageCaller(t *testing.T) {
	p := shopPolicy(t)
	var got seen
	srv := httptest.NewServer(p.Middleware(observer(&got)))
	defer srv.Close()

	m1, _ := baggage.NewMember(shadow.BaggageMember, "drill-7")
	m2, _ := baggage.NewMember("tenant", "acme")
	bag, _ := baggage.New(m1, m2)
	ctx := baggage.ContextWithBaggage(context.Background(), bag)
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	propagation.Baggage{}.Inject(ctx, propagation.HeaderCarrier(req.Header))
	if req.Header.Get(shadow.Header) != "" {
		t.Fatal("test setup: the OTel caller sent our header")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got.drill != "drill-7" || string(body) != "shadow_orders" {
		t.Fatalf("server saw drill %q, answered %q; want drill-7, shadow_orders", got.drill, body)
	}
}

type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

// TestTransportRefusal: tagged requests, and requests tagged by hand, are
// refused before anything is sent to a host outside the allow list; the
// request body is closed; untagged requests go anywhere.
func TestTransportRefusal(t *testing.T) {
	var hits atomic.Int64
	var gotHeader atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		gotHeader.Store(r.Header.Get(shadow.Header))
	}))
	defer srv.Close()
	host := hostOf(t, srv)
	tests := []struct {
		name    string
		allow   string
		drill   string // tag in the context
		byHand  string // tag set on the request header
		refused bool
	}{
		{name: "tagged, other port allowed", allow: "127.0.0.1:1", drill: "d1", refused: true},
		{name: "tagged by hand, other port allowed", allow: "127.0.0.1:1", byHand: "d1", refused: true},
		{name: "untagged", allow: "127.0.0.1:1"},
		{name: "tagged, allowed", allow: host, drill: "d1"},
		{name: "tagged by hand, allowed", allow: host, byHand: "d9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hits.Store(0)
			gotHeader.Store("")
			p := newPolicy(t, shadow.AllowHosts(tt.allow))
			ctx := context.Background()
			if tt.drill != "" {
				ctx, _ = shadow.WithTag(ctx, tt.drill)
			}
			body := &closeRecorder{Reader: strings.NewReader("order")}
			req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL, body)
			if tt.byHand != "" {
				req.Header.Set(shadow.Header, tt.byHand)
			}
			resp, err := (&http.Client{Transport: p.Transport(nil)}).Do(req)
			if tt.refused {
				if !errors.Is(err, shadow.ErrNotIsolated) {
					t.Fatalf("Do = %v, want a refusal", err)
				}
				if hits.Load() != 0 {
					t.Fatal("the server got the refused request")
				}
				if !body.closed {
					t.Fatal("request body not closed")
				}
				if n := p.Stats().Rejected[shadow.Resource{Kind: shadow.KindHost, Name: host}]; n != 1 {
					t.Fatalf("host refusals counted %d, want 1", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			want := tt.drill + tt.byHand
			if hits.Load() != 1 || gotHeader.Load() != want {
				t.Fatalf("server hits %d, header %q; want 1, %q", hits.Load(), gotHeader.Load(), want)
			}
			if tt.drill != "" && req.Header.Get(shadow.Header) != "" {
				t.Fatal("Transport modified the caller's request")
			}
		})
	}
}

// A header map built by hand (another middleware, a test, a framework)
// may hold names that are not canonical: the tag and the baggage header in
// any case are the tag all the same.
func TestMiddlewareReadsHandBuiltHeaders(t *testing.T) {
	for _, tt := range []struct {
		name   string
		header http.Header
		want   string
	}{
		{"tag in lower case", http.Header{"x-loadcap-shadow": {"d1"}}, "d1"},
		{"baggage in lower case", http.Header{"baggage": {"tenant=acme,loadcap.shadow=d2"}}, "d2"},
		{"the member in a second baggage value", http.Header{"Baggage": {"tenant=acme", "loadcap.shadow=d3"}}, "d3"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			h := shopPolicy(t).Middleware(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
				got, _ = shadow.FromContext(r.Context())
			}))
			r := httptest.NewRequest("GET", "/", nil)
			r.Header = tt.header
			h.ServeHTTP(httptest.NewRecorder(), r)
			if got != tt.want {
				t.Fatalf("drill %q, want %q", got, tt.want)
			}
		})
	}
}

// TestMiddlewareUntaggedAllocatesNothing: looking for conflicts and
// near-misses costs an untagged request no allocation, OpenTelemetry
// baggage or not (the budget BenchmarkMiddleware states).
func TestMiddlewareUntaggedAllocatesNothing(t *testing.T) {
	p := shopPolicy(t)
	h := p.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	r := httptest.NewRequest("GET", "/api/orders/42", nil)
	r.Header.Set("User-Agent", "loadcap")
	r.Header.Set("Baggage", "tenant=acme,user=alice")
	r.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	w := nopWriter{h: http.Header{}}
	if n := testing.AllocsPerRun(100, func() { h.ServeHTTP(w, r) }); n != 0 {
		t.Fatalf("%v allocations per untagged request, want 0", n)
	}
}
