package shop

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/loadcap/loadcap/shadow"
)

// startShop starts an all-in-one shop for one test, stopped at its end.
func startShop(t *testing.T, cfg Config) *Shop {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	if cfg.Dir == "" && cfg.DSN == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.Products == 0 {
		cfg.Products = 50
	}
	if cfg.Users == 0 {
		cfg.Users = 50
	}
	s, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

type reply struct {
	code   int
	header http.Header
	body   map[string]any
	raw    string
}

// call sends one request to the shop, tagged with drill when not "".
func call(t *testing.T, method, url, drill string, body any) reply {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if drill != "" {
		req.Header.Set(shadow.Header, drill)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{code: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// rows reads (id, shadow_tag) of every row of table.
func rows(t *testing.T, db *sql.DB, table string) map[int64]sql.NullString {
	t.Helper()
	rs, err := db.Query(`SELECT id, shadow_tag FROM ` + table)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	out := map[int64]sql.NullString{}
	for rs.Next() {
		var id int64
		var tag sql.NullString
		if err := rs.Scan(&id, &tag); err != nil {
			t.Fatal(err)
		}
		out[id] = tag
	}
	return out
}

// backends returns the storage setups to test: SQLite with in-process
// stores, MySQL (or MariaDB) with in-process stores when LOADCAP_MYSQL_DSN
// is set (required with LOADCAP_REQUIRE_MYSQL=1), and PostgreSQL with
// Redis when LOADCAP_PG_DSN and LOADCAP_REDIS_ADDR are set. Each config is
// fresh (its own directory, or schema or database and key prefix, removed
// at the end of the test) and may be started more than once.
func backends(t *testing.T) map[string]Config {
	t.Helper()
	out := map[string]Config{"sqlite": {Dir: t.TempDir()}}
	if my := os.Getenv("LOADCAP_MYSQL_DSN"); my != "" {
		name := fmt.Sprintf("shop_unit_%d_%d", os.Getpid(), time.Now().UnixNano())
		out["mysql"] = Config{DSN: my, Schema: name}
		t.Cleanup(func() {
			if err := dropMySQLDatabase(my, name); err != nil {
				t.Error(err)
			}
		})
	} else if os.Getenv("LOADCAP_REQUIRE_MYSQL") == "1" {
		t.Fatal("LOADCAP_REQUIRE_MYSQL=1 but LOADCAP_MYSQL_DSN is unset")
	}
	dsn, addr := os.Getenv("LOADCAP_PG_DSN"), os.Getenv("LOADCAP_REDIS_ADDR")
	if dsn == "" || addr == "" {
		return out
	}
	unique := fmt.Sprintf("shop_unit_%d_%d", os.Getpid(), time.Now().UnixNano())
	out["postgres+redis"] = Config{DSN: dsn, Schema: unique, RedisAddr: addr, KeyPrefix: unique + ":"}
	t.Cleanup(func() {
		if err := dropSchema(dsn, unique); err != nil {
			t.Error(err)
		}
		r, err := openRedis(context.Background(), addr, unique+":")
		if err != nil {
			t.Fatal(err)
		}
		defer r.close()
		if keys, _ := r.c.Keys(context.Background(), unique+":*").Result(); len(keys) > 0 {
			r.c.Del(context.Background(), keys...)
		}
	})
	return out
}

func checkout(product, qty int) map[string]any {
	return map[string]any{"user": 3, "items": []map[string]int{{"product": product, "quantity": qty}}}
}

func TestCheckoutIsolated(t *testing.T) {
	for name, cfg := range backends(t) {
		t.Run(name, func(t *testing.T) {
			s := startShop(t, cfg)
			url := s.URL() + "/api/checkout"
			prod := call(t, "POST", url, "", checkout(7, 2))
			if prod.code != 200 || prod.body["status"] != "paid" || !strings.HasPrefix(fmt.Sprint(prod.body["provider_ref"]), "ch_") {
				t.Fatalf("untagged checkout: %d %s", prod.code, prod.raw)
			}
			drill := call(t, "POST", url, "drill-7", checkout(7, 2))
			if drill.code != 200 || drill.body["status"] != "paid" || !strings.HasPrefix(fmt.Sprint(drill.body["provider_ref"]), "mock_") {
				t.Fatalf("tagged checkout: %d %s", drill.code, drill.raw)
			}
			if prod.body["total_cents"] != drill.body["total_cents"] {
				t.Errorf("totals differ: %v and %v", prod.body["total_cents"], drill.body["total_cents"])
			}
			off := s.IDOffset()
			for _, tc := range []struct {
				name   string
				table  string
				shadow bool
			}{
				{"orders", "orders", false},
				{"shadow orders", "shadow_orders", true},
				{"payments", "payments", false},
				{"shadow payments", "shadow_payments", true},
			} {
				t.Run(tc.name, func(t *testing.T) {
					got := rows(t, s.DB(), tc.table)
					if len(got) != 1 {
						t.Fatalf("%d rows, want 1: %v", len(got), got)
					}
					for id, tag := range got {
						if tc.shadow && (id < off || tag.String != "drill-7") {
							t.Errorf("shadow row id %d tag %v: want id ≥ %d, tag drill-7", id, tag, off)
						}
						if !tc.shadow && (id >= off || tag.Valid) {
							t.Errorf("production row id %d tag %v: want id < %d, no tag", id, tag, off)
						}
					}
				})
			}
			calls := s.Provider().Calls()
			if len(calls) != 1 || calls[0].Header.Get(shadow.Header) != "" {
				t.Errorf("provider saw %d calls, want the untagged one: %+v", len(calls), calls)
			}
		})
	}
}

func TestCartAndSessionIsolated(t *testing.T) {
	s := startShop(t, Config{})
	u := s.URL()
	if r := call(t, "POST", u+"/api/cart/items", "d1", map[string]int{"user": 9, "product": 4, "quantity": 3}); r.code != 200 {
		t.Fatalf("tagged add: %d %s", r.code, r.raw)
	}
	if r := call(t, "GET", u+"/api/cart/9", "", nil); r.code != 200 || !strings.Contains(r.raw, `"items":[]`) {
		t.Errorf("untagged cart sees the tagged item: %d %s", r.code, r.raw)
	}
	if r := call(t, "GET", u+"/api/cart/9", "d1", nil); r.code != 200 || !strings.Contains(r.raw, `{"product":4,"quantity":3}`) {
		t.Errorf("tagged cart: %d %s", r.code, r.raw)
	}

	login := call(t, "POST", u+"/api/login", "d1", map[string]int{"user": 5})
	token, _ := login.body["token"].(string)
	if login.code != 200 || token == "" {
		t.Fatalf("login: %d %s", login.code, login.raw)
	}
	profile := func(drill string) reply {
		req, _ := http.NewRequest("GET", u+"/api/profile", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if drill != "" {
			req.Header.Set(shadow.Header, drill)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return reply{code: resp.StatusCode, raw: string(b)}
	}
	if r := profile("d1"); r.code != 200 || !strings.Contains(r.raw, "user5@shop.test") {
		t.Errorf("tagged profile: %d %s", r.code, r.raw)
	}
	if r := profile(""); r.code != 401 {
		t.Errorf("untagged profile with a drill's session: %d %s, want 401", r.code, r.raw)
	}
}

func TestCheckoutFromCart(t *testing.T) {
	s := startShop(t, Config{})
	u := s.URL()
	if r := call(t, "POST", u+"/api/checkout", "", map[string]int{"user": 2}); r.code != 409 {
		t.Errorf("empty cart: %d %s, want 409", r.code, r.raw)
	}
	call(t, "POST", u+"/api/cart/items", "", map[string]int{"user": 2, "product": 1, "quantity": 2})
	call(t, "POST", u+"/api/cart/items", "", map[string]int{"user": 2, "product": 3, "quantity": 1})
	want := call(t, "GET", u+"/api/products/1", "", nil).body["price_cents"].(float64)*2 +
		call(t, "GET", u+"/api/products/3", "", nil).body["price_cents"].(float64)
	r := call(t, "POST", u+"/api/checkout", "", map[string]int{"user": 2})
	if r.code != 200 || r.body["total_cents"] != want {
		t.Fatalf("checkout: %d %s, want total %v", r.code, r.raw, want)
	}
	if c := call(t, "GET", u+"/api/cart/2", "", nil); !strings.Contains(c.raw, `"items":[]`) {
		t.Errorf("cart not cleared: %s", c.raw)
	}
}

func TestBadRequests(t *testing.T) {
	s := startShop(t, Config{})
	u := s.URL()
	for _, tc := range []struct {
		name, method, path string
		body               any
		want               int
	}{
		{"unknown product", "GET", "/api/products/999", nil, 404},
		{"bad product id", "GET", "/api/products/x", nil, 400},
		{"unknown field", "POST", "/api/checkout", map[string]any{"usr": 1}, 400},
		{"no user", "POST", "/api/checkout", map[string]any{"items": []map[string]int{{"product": 1, "quantity": 1}}}, 400},
		{"unknown product in order", "POST", "/api/checkout", checkout(999, 1), 404},
		{"zero quantity", "POST", "/api/checkout", checkout(1, 0), 400},
		{"unknown user", "POST", "/api/login", map[string]int{"user": 999}, 404},
		{"no token", "GET", "/api/profile", nil, 401},
		{"no kind", "POST", "/api/track", map[string]int{"user": 1}, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := call(t, tc.method, u+tc.path, "", tc.body); r.code != tc.want {
				t.Errorf("%d %s, want %d", r.code, r.raw, tc.want)
			}
		})
	}
	if n := len(rows(t, s.DB(), "orders")); n != 0 {
		t.Errorf("%d orders written by failed checkouts", n)
	}
}

// waitRows polls until table has n rows.
func waitRows(t *testing.T, db *sql.DB, table string, n int) map[int64]sql.NullString {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var got map[int64]sql.NullString
		if rs, err := db.Query(`SELECT COUNT(*) FROM ` + table); err == nil {
			rs.Close()
			got = rows(t, db, table)
		}
		if len(got) == n || time.Now().After(deadline) {
			if len(got) != n {
				t.Fatalf("%s: %d rows, want %d", table, len(got), n)
			}
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTrackingDailyTables(t *testing.T) {
	for name, cfg := range backends(t) {
		t.Run(name, func(t *testing.T) { testTrackingDailyTables(t, cfg) })
	}
}

func testTrackingDailyTables(t *testing.T, cfg Config) {
	day := time.Date(2025, 3, 31, 23, 59, 0, 0, time.UTC)
	cfg.Now = func() time.Time { return day }
	s := startShop(t, cfg)
	u := s.URL()
	for i, drill := range []string{"", "", "d2"} {
		r := call(t, "POST", u+"/api/track", drill, map[string]any{"user": i + 1, "kind": "view", "product": 5})
		if r.code != 202 {
			t.Fatalf("track: %d %s", r.code, r.raw)
		}
	}
	prod := waitRows(t, s.DB(), "events_20250331", 2)
	sh := waitRows(t, s.DB(), "shadow_events_20250331", 1)
	for id, tag := range prod {
		if tag.Valid || id >= s.IDOffset() {
			t.Errorf("production event %d tag %v", id, tag)
		}
	}
	for id, tag := range sh {
		if tag.String != "d2" || id < s.IDOffset() {
			t.Errorf("shadow event %d tag %v", id, tag)
		}
	}
	tables, err := s.Tables(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(tables, ","); got != "events_20250331,orders,payments" {
		t.Errorf("Tables = %s", got)
	}
}

func TestMisconfiguredRefusesTaggedCheckout(t *testing.T) {
	s := startShop(t, Config{Misconfigured: true})
	url := s.URL() + "/api/checkout"
	r := call(t, "POST", url, "drill-x", checkout(1, 1))
	if r.code != 503 || !strings.Contains(r.header.Get(shadow.RejectHeader), "table orders: not declared") {
		t.Fatalf("tagged checkout: %d %s, reason %q", r.code, r.raw, r.header.Get(shadow.RejectHeader))
	}
	if r := call(t, "POST", url, "", checkout(1, 1)); r.code != 200 {
		t.Fatalf("untagged checkout: %d %s", r.code, r.raw)
	}
	for table, want := range map[string]int{"orders": 1, "shadow_orders": 0, "payments": 1, "shadow_payments": 0} {
		if got := rows(t, s.DB(), table); len(got) != want {
			t.Errorf("%s: %d rows, want %d", table, len(got), want)
		}
	}
	if n := s.Provider().Charges(); n != 1 {
		t.Errorf("provider charged %d times, want 1", n)
	}
	ep, _ := s.Endpoint(Order)
	if m := scrape(t, ep.MetricsURL); !strings.Contains(m, `shop_shadow_rejected_total{kind="table",resource="orders",service="order"} 1`) {
		t.Errorf("refusal not counted:\n%s", grep(m, "shop_shadow"))
	}
}

func TestUnreadableTagRefused(t *testing.T) {
	s := startShop(t, Config{})
	r := call(t, "POST", s.URL()+"/api/checkout", "bad tag", checkout(1, 1))
	if r.code != 503 || r.header.Get(shadow.RejectHeader) == "" {
		t.Fatalf("%d %s", r.code, r.raw)
	}
	if n := len(rows(t, s.DB(), "orders")); n != 0 {
		t.Errorf("%d orders", n)
	}
}

// TestMisspeltTagRefused: a checkout whose tag is spelt near the tag's
// names, or whose header and baggage disagree, is refused at the gateway
// and never reaches a table or the payment provider.
func TestMisspeltTagRefused(t *testing.T) {
	s := startShop(t, Config{})
	for _, tc := range []struct {
		name    string
		headers [][2]string
		reason  string
	}{
		{"header with underscores", [][2]string{{"X_Loadcap_Shadow", "drill-n"}}, "near-miss header"},
		{"header with dots", [][2]string{{"x.loadcap.shadow", "drill-n"}}, "near-miss header"},
		{"baggage key upper case", [][2]string{{"Baggage", "LOADCAP.SHADOW=drill-n"}}, "near-miss baggage key"},
		{"baggage key as header", [][2]string{{"Loadcap-Shadow", "drill-n"}}, "near-miss header"},
		{"header and baggage disagree", [][2]string{{shadow.Header, "drill-n"}, {"Baggage", "loadcap.shadow=drill-m"}}, "conflicting values"},
		{"two baggage members disagree", [][2]string{{"Baggage", "loadcap.shadow=drill-n,loadcap.shadow=drill-m"}}, "conflicting values"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := json.Marshal(checkout(1, 1))
			req, err := http.NewRequest("POST", s.URL()+"/api/checkout", bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range tc.headers {
				req.Header[h[0]] = []string{h[1]} // as written, not canonicalized
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			resp, err := http.DefaultClient.Do(req.WithContext(ctx))
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if reason := resp.Header.Get(shadow.RejectHeader); resp.StatusCode != 503 || !strings.Contains(reason, tc.reason) {
				t.Fatalf("%d %s, reason %q; want 503 with %q", resp.StatusCode, raw, reason, tc.reason)
			}
		})
	}
	for _, table := range []string{"orders", "shadow_orders", "payments", "shadow_payments"} {
		if got := rows(t, s.DB(), table); len(got) != 0 {
			t.Errorf("%s: %d rows, want none", table, len(got))
		}
	}
	if n := s.Provider().Charges(); n != 0 {
		t.Errorf("the payment provider was charged %d times, want never", n)
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grep(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestMetricsSplitByShadow(t *testing.T) {
	s := startShop(t, Config{Capacity: map[string]Capacity{Product: {Workers: 3, ServiceTime: time.Millisecond}}})
	u := s.URL()
	call(t, "GET", u+"/api/products/1", "", nil)
	call(t, "GET", u+"/api/products/1", "d3", nil)
	call(t, "GET", u+"/api/products/2", "d3", nil)
	gw, _ := s.Endpoint(Gateway)
	m := scrape(t, gw.MetricsURL)
	for _, want := range []string{
		`shop_requests_total{code="200",method="GET",route="/api/products/{id}",service="gateway",shadow="false"} 1`,
		`shop_requests_total{code="200",method="GET",route="/api/products/{id}",service="gateway",shadow="true"} 2`,
		`shop_request_duration_seconds_count{method="GET",route="/api/products/{id}",service="gateway",shadow="true"} 2`,
		`shop_shadow_requests_total{service="gateway",shadow="true"} 2`,
		`process_cpu_seconds_total{service="gateway"}`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("gateway metrics lack %s", want)
		}
	}
	pr, _ := s.Endpoint(Product)
	m = scrape(t, pr.MetricsURL)
	for _, want := range []string{
		`shop_requests_total{code="OK",method="grpc",route="/loadcap.shop.v1.Products/Get",service="product",shadow="true"} 2`,
		`shop_capacity_workers{service="product"} 3`,
		`shop_capacity_requests_per_second{service="product"} 3000`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("product metrics lack %s\n%s", want, grep(m, "shop_"))
		}
	}
	if pr.Capacity.PerSec() != 3000 {
		t.Errorf("endpoint capacity %v", pr.Capacity)
	}
}

// TestOneServicePerProcess wires services started separately, as
// `go run ./cmd/loadcap-shop --service NAME` does, through Config.Upstreams.
func TestOneServicePerProcess(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	base := Config{Dir: dir, Products: 20, Users: 20}
	addrs := map[string]string{}
	var provider *ProviderStub
	for _, name := range Names {
		cfg := base
		cfg.Upstreams = addrs
		if provider != nil {
			cfg.ProviderURL = "http://" + addrs[Provider]
		}
		s, err := Start(ctx, cfg, Spec{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ep, _ := s.Endpoint(name)
		addrs = withAddr(addrs, name, ep.Addr)
		if name == Provider {
			provider = s.Provider()
		}
		if name == Gateway {
			if r := call(t, "POST", ep.URL+"/api/checkout", "", checkout(2, 1)); r.code != 200 {
				t.Fatalf("checkout: %d %s", r.code, r.raw)
			}
			if r := call(t, "POST", ep.URL+"/api/checkout", "d4", checkout(2, 1)); r.code != 200 {
				t.Fatalf("tagged checkout: %d %s", r.code, r.raw)
			}
			if n := len(rows(t, s.DB(), "shadow_orders")); n != 1 {
				t.Errorf("%d shadow orders", n)
			}
		}
	}
	if n := provider.Charges(); n != 1 {
		t.Errorf("provider charged %d times, want 1", n)
	}
}

func withAddr(m map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for a, b := range m {
		out[a] = b
	}
	return out
}

func TestMissingUpstream(t *testing.T) {
	_, err := Start(context.Background(), Config{Dir: t.TempDir(), Products: 5, Users: 5}, Spec{Name: Order})
	if err == nil || !strings.Contains(err.Error(), "no address") {
		t.Fatalf("err = %v, want a missing upstream", err)
	}
}

func TestRefusesNonLoopback(t *testing.T) {
	_, err := Start(context.Background(), Config{Dir: t.TempDir(), Products: 5, Users: 5},
		Spec{Name: Provider, Listen: "0.0.0.0:0"})
	if err == nil || !strings.Contains(err.Error(), "not a loopback address") {
		t.Fatalf("err = %v", err)
	}
}

// TestRestartContinuesIDs restarts a shop on its database with a fresh
// in-process store: sequences resume after the IDs already written.
func TestRestartContinuesIDs(t *testing.T) {
	for name, cfg := range backends(t) {
		t.Run(name, func(t *testing.T) { testRestartContinuesIDs(t, cfg) })
	}
}

func testRestartContinuesIDs(t *testing.T, cfg Config) {
	for round := 1; round <= 2; round++ {
		s := startShop(t, cfg)
		for _, drill := range []string{"", "d5"} {
			if r := call(t, "POST", s.URL()+"/api/checkout", drill, checkout(1, 1)); r.code != 200 {
				t.Fatalf("round %d: %d %s", round, r.code, r.raw)
			}
		}
		if n := len(rows(t, s.DB(), "shadow_orders")); n != round {
			t.Errorf("round %d: %d shadow orders", round, n)
		}
		s.Close()
	}
}

func TestStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Start(ctx, Config{Dir: t.TempDir(), Products: 5, Users: 5})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-s.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("still running 10 s after its context ended")
	}
	if _, err := http.Get(s.URL() + "/healthz"); err == nil {
		t.Error("gateway still answers")
	}
}
