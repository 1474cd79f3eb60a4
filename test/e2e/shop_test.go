package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/loadcap/loadcap/internal/audit"
	"github.com/loadcap/loadcap/internal/demo/shop"
	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/scenarios"
	"github.com/loadcap/loadcap/shadow"
)

// The shop suite proves isolation end to end: the reference shop runs in
// the test's process, loadcap's engine drives it with untagged traffic and
// with a drill's tagged traffic at once, and the database, the payment
// provider's stub, the metrics and the audit must show that the drill's
// work went only to shadow resources.

// shopBackend is one storage setup the suite runs against.
type shopBackend struct {
	name string
	cfg  func(t *testing.T) shop.Config // nil: skipped
}

// shopBackends are SQLite with in-process stores, PostgreSQL with Redis
// when LOADCAP_PG_DSN and LOADCAP_REDIS_ADDR are set (required with
// LOADCAP_REQUIRE_PG=1 / LOADCAP_REQUIRE_REDIS=1), and MySQL (MariaDB in
// CI) when LOADCAP_MYSQL_DSN is set (required with LOADCAP_REQUIRE_MYSQL=1),
// with Redis when it is there too.
func shopBackends(t *testing.T) []shopBackend {
	t.Helper()
	dsn, addr := os.Getenv("LOADCAP_PG_DSN"), os.Getenv("LOADCAP_REDIS_ADDR")
	if dsn == "" && os.Getenv("LOADCAP_REQUIRE_PG") == "1" {
		t.Fatal("LOADCAP_REQUIRE_PG=1 but LOADCAP_PG_DSN is not set")
	}
	if addr == "" && os.Getenv("LOADCAP_REQUIRE_REDIS") == "1" {
		t.Fatal("LOADCAP_REQUIRE_REDIS=1 but LOADCAP_REDIS_ADDR is not set")
	}
	bs := []shopBackend{{name: "sqlite+memory", cfg: func(t *testing.T) shop.Config {
		return shop.Config{Dir: t.TempDir()}
	}}}
	pg := shopBackend{name: "postgres+redis"}
	if dsn != "" && addr != "" {
		pg.cfg = func(t *testing.T) shop.Config {
			unique := fmt.Sprintf("shop_e2e_%d_%d", os.Getpid(), time.Now().UnixNano())
			t.Cleanup(func() { deleteRedisKeys(t, addr, unique+":") })
			return shop.Config{DSN: dsn, Schema: unique, DropSchema: true, RedisAddr: addr, KeyPrefix: unique + ":"}
		}
	}
	return append(bs, pg, mysqlBackend(t))
}

// mysqlBackend is the shop on MySQL, in a database of its own dropped at
// the end, with Redis when LOADCAP_REDIS_ADDR is set.
func mysqlBackend(t *testing.T) shopBackend {
	t.Helper()
	dsn, addr := os.Getenv("LOADCAP_MYSQL_DSN"), os.Getenv("LOADCAP_REDIS_ADDR")
	if dsn == "" && os.Getenv("LOADCAP_REQUIRE_MYSQL") == "1" {
		t.Fatal("LOADCAP_REQUIRE_MYSQL=1 but LOADCAP_MYSQL_DSN is not set")
	}
	b := shopBackend{name: "mysql"}
	if dsn == "" {
		return b
	}
	b.cfg = func(t *testing.T) shop.Config {
		unique := fmt.Sprintf("shop_e2e_%d_%d", os.Getpid(), time.Now().UnixNano())
		c := shop.Config{DSN: dsn, Schema: unique, DropSchema: true}
		if addr != "" {
			t.Cleanup(func() { deleteRedisKeys(t, addr, unique+":") })
			c.RedisAddr, c.KeyPrefix = addr, unique+":"
		}
		return c
	}
	return b
}

// deleteRedisKeys removes what a test left in Redis under prefix.
func deleteRedisKeys(t *testing.T, addr, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	it := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for it.Next(ctx) {
		keys = append(keys, it.Val())
	}
	if len(keys) > 0 {
		if err := c.Del(ctx, keys...).Err(); err != nil {
			t.Errorf("clean up Redis: %v", err)
		}
	}
}

// forEachBackend runs fn against every backend, skipping unconfigured ones.
func forEachBackend(t *testing.T, fn func(t *testing.T, cfg shop.Config)) {
	for _, b := range shopBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			if b.cfg == nil {
				t.Skip("not configured (LOADCAP_PG_DSN and LOADCAP_REDIS_ADDR, or LOADCAP_MYSQL_DSN)")
			}
			fn(t, b.cfg(t))
		})
	}
}

// startShop starts the shop in-process for one test.
func startShop(t *testing.T, cfg shop.Config) *shop.Shop {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	cfg.Products, cfg.Users = 200, 100
	s, err := shop.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("stop the shop: %v", err)
		}
	})
	return s
}

// shopMix is a shopping session mix at rate requests/s for 2 s. drill ""
// sends untagged traffic; otherwise the engine tags every request.
func shopMix(target, drill string, rate int, only ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "target: %s\n", target)
	if drill != "" {
		fmt.Fprintf(&b, "drill_id: %s\n", drill)
	}
	fmt.Fprintf(&b, `seed: 7
http:
  timeout: 10s
  headers: {Content-Type: application/json}
scenarios:
  shoppers:
    executor: constant-arrival-rate
    rate: %d
    duration: 2s
    preAllocatedVUs: 10
    maxVUs: 60
    gracefulStop: 10s
`, rate)
	if len(only) > 0 {
		fmt.Fprintf(&b, "    requests: [%s]\n", strings.Join(only, ", "))
	}
	b.WriteString(`requests:
  - {name: products, path: "/api/products?page={{randInt 1 10}}"}
  - {name: product, path: "/api/products/{{randInt 1 200}}", weight: 2}
  - {name: login, method: POST, path: /api/login, body: '{"user": {{randInt 1 100}}}'}
  - name: add-to-cart
    method: POST
    path: /api/cart/items
    body: '{"user": {{randInt 1 100}}, "product": {{randInt 1 200}}, "quantity": {{randInt 1 3}}}'
    weight: 2
  - {name: cart, path: "/api/cart/{{randInt 1 100}}"}
  - name: checkout
    method: POST
    path: /api/checkout
    body: '{"user": {{randInt 1 100}}, "items": [{"product": {{randInt 1 200}}, "quantity": {{randInt 1 3}}}]}'
    weight: 3
  - name: track
    method: POST
    path: /api/track
    body: '{"user": {{randInt 1 100}}, "kind": "{{pick "view" "click" "search"}}", "product": {{randInt 1 200}}}'
    weight: 3
`)
	return b.String()
}

// drive runs the scenarios at once through loadcap's engine and returns
// their results in order.
func drive(t *testing.T, files ...string) []*loadgen.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	results := make([]*loadgen.Result, len(files))
	errs := make(chan error, len(files))
	for i, text := range files {
		f, err := scenarios.Parse(fmt.Sprintf("mix%d.yaml", i), []byte(text))
		if err != nil {
			t.Fatalf("scenario %d: %v\n%s", i, err, text)
		}
		e, err := loadgen.New(f)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			var err error
			results[i], err = e.Run(ctx)
			errs <- err
		}()
	}
	for range files {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	return results
}

// status returns how many name requests got HTTP code.
func status(r *loadgen.Result, name string, code int) int {
	if s := r.Request(name); s != nil {
		return int(s.StatusCodes[code])
	}
	return 0
}

// rowsOf reads (id, shadow_tag) of the rows of table.
func rowsOf(t *testing.T, db *sql.DB, table string) map[int64]sql.NullString {
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
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkRows asserts that table holds want rows, all production rows
// (untagged, IDs below the offset) or all rows of drill.
func checkRows(t *testing.T, s *shop.Shop, table string, want int, drill string) {
	t.Helper()
	got := rowsOf(t, s.DB(), table)
	if len(got) != want {
		t.Errorf("%s: %d rows, want %d", table, len(got), want)
	}
	bad := 0
	for id, tag := range got {
		if drill == "" && (tag.Valid || id >= s.IDOffset()) || drill != "" && (tag.String != drill || id < s.IDOffset()) {
			bad++
			if bad <= 3 {
				t.Errorf("%s: row id %d tag %v does not belong here", table, id, tag)
			}
		}
	}
}

// events counts the rows of the production daily tables and of their
// twins.
func events(t *testing.T, s *shop.Shop) (prod, shadowed int) {
	t.Helper()
	tables, err := s.Tables(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		if strings.HasPrefix(tb, "events_") {
			prod += len(rowsOf(t, s.DB(), tb))
			shadowed += len(rowsOf(t, s.DB(), shadow.DefaultTableNaming.Shadow(tb)))
		}
	}
	return prod, shadowed
}

// waitEvents waits until the consumer has written prod and shadowed events.
func waitEvents(t *testing.T, s *shop.Shop, prod, shadowed int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		p, sh := events(t, s)
		if p == prod && sh == shadowed {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("events: %d production, %d shadow; want %d and %d", p, sh, prod, shadowed)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func metricsOf(t *testing.T, s *shop.Shop, service string) string {
	t.Helper()
	ep, ok := s.Endpoint(service)
	if !ok {
		t.Fatalf("no service %s", service)
	}
	resp, err := http.Get(ep.MetricsURL)
	if err != nil {
		t.Fatal(err)
	}
	return readAll(t, resp)
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// metricValue returns the value of the series named exactly series
// (name{labels} as the exposition format sorts them), 0 when absent.
func metricValue(text, series string) float64 {
	for _, l := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(l, series+" "); ok {
			var v float64
			fmt.Sscan(rest, &v)
			return v
		}
	}
	return 0
}

// taggedCall sends one request tagged with drill by hand (as a proxy
// forwarding loadcap's header would).
func taggedCall(t *testing.T, method, url, drill, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if drill != "" {
		req.Header.Set(shadow.Header, drill)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestShopIsolation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, cfg shop.Config) {
		s := startShop(t, cfg)
		const drill = "e2e-drill-1"
		res := drive(t, shopMix(s.URL(), "", 30), shopMix(s.URL(), drill, 20)) // different counts, so that a swap shows
		prod, tagged := res[0], res[1]
		for i, r := range res {
			// A stall of the machine in the last second of a run drops the
			// arrivals it held back at the end (by design): the run says so.
			stalled := false
			for _, iv := range r.Intervals {
				stalled = stalled || iv.T >= 1 && loadgen.HostStalled(iv.Stall, iv.Steal)
			}
			switch {
			case r.Totals.Failed != 0:
				t.Fatalf("run %d: completed %d, failed %d", i, r.Totals.Completed, r.Totals.Failed)
			case stalled:
				t.Logf("run %d: its host stalled the generator near the end (up to %v): completed %d, dropped %d", i, r.Totals.MaxStall, r.Totals.Completed, r.Totals.Dropped)
			case r.Totals.Completed < 30 || r.Totals.Dropped != 0:
				t.Fatalf("run %d: completed %d, failed %d, dropped %d", i, r.Totals.Completed, r.Totals.Failed, r.Totals.Dropped)
			}
		}
		orders := [2]int{status(prod, "checkout", 200), status(tagged, "checkout", 200)}
		tracks := [2]int{status(prod, "track", 202), status(tagged, "track", 202)}
		t.Logf("sent %d untagged and %d tagged requests: checkouts %v, events %v",
			prod.Totals.Sent, tagged.Totals.Sent, orders, tracks)
		if orders[0] == 0 || orders[1] == 0 || tracks[0] == 0 || tracks[1] == 0 {
			t.Fatalf("the mix sent too little: checkouts %v, events %v", orders, tracks)
		}

		// Orders and payments: HTTP → gateway → order → payment, in their tables.
		checkRows(t, s, "orders", orders[0], "")
		checkRows(t, s, "shadow_orders", orders[1], drill)
		checkRows(t, s, "payments", orders[0], "")
		checkRows(t, s, "shadow_payments", orders[1], drill)

		// Events: HTTP → gRPC → queue → consumer → the daily tables.
		waitEvents(t, s, tracks[0], tracks[1])
		tables, _ := s.Tables(context.Background())
		for _, tb := range tables {
			if strings.HasPrefix(tb, "events_") {
				checkRows(t, s, tb, len(rowsOf(t, s.DB(), tb)), "")
				checkRows(t, s, shadow.DefaultTableNaming.Shadow(tb), len(rowsOf(t, s.DB(), shadow.DefaultTableNaming.Shadow(tb))), drill)
			}
		}
		user := metricsOf(t, s, shop.User)
		if got := metricValue(user, `shop_events_consumed_total{result="stored",service="user",shadow="true"}`); int(got) != tracks[1] {
			t.Errorf("consumer stored %v tagged events, want %d", got, tracks[1])
		}

		// The payment provider saw the untagged payments only.
		calls := s.Provider().Calls()
		if len(calls) != orders[0] {
			t.Errorf("provider got %d calls, want %d (the untagged checkouts)", len(calls), orders[0])
		}
		for _, c := range calls {
			if c.Header.Get(shadow.Header) != "" || strings.Contains(c.Header.Get("Baggage"), shadow.BaggageMember) {
				t.Errorf("provider got a tagged call: %v", c.Header)
			}
		}
		pay := metricsOf(t, s, shop.Payment)
		if got := metricValue(pay, `shop_payment_charges_total{mode="mock",service="payment"}`); int(got) != orders[1] {
			t.Errorf("%v mock charges, want %d", got, orders[1])
		}

		// Carts: a drill's cart is invisible to production.
		if r := taggedCall(t, "POST", s.URL()+"/api/cart/items", drill, `{"user": 4242, "product": 1}`); r.StatusCode != 200 {
			t.Fatalf("tagged add to cart: HTTP %d", r.StatusCode)
		}
		resp, err := http.Get(s.URL() + "/api/cart/4242")
		if err != nil {
			t.Fatal(err)
		}
		if body := readAll(t, resp); !strings.Contains(body, `"items":[]`) {
			t.Errorf("production sees the drill's cart: %s", body)
		}

		// Metrics split the traffic.
		gw := metricsOf(t, s, shop.Gateway)
		for _, sh := range []string{"false", "true"} {
			series := `shop_requests_total{code="200",method="POST",route="/api/checkout",service="gateway",shadow="` + sh + `"}`
			want := orders[0]
			if sh == "true" {
				want = orders[1]
			}
			if got := metricValue(gw, series); int(got) != want {
				t.Errorf("%s = %v, want %d", series, got, want)
			}
		}

		// The audit finds nothing, then finds a planted leak.
		ctx := context.Background()
		m := audit.Markers{IDOffset: s.IDOffset()}
		for _, d := range []string{drill, ""} {
			rep, err := audit.Scan(ctx, s.DB(), d, m)
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK() || len(rep.Unchecked) > 0 {
				t.Errorf("audit (drill %q): leaks %v, unchecked %v", d, rep.Leaks, rep.Unchecked)
			}
			if len(rep.Tables) < 6 {
				t.Errorf("audit scanned only %v", rep.Tables)
			}
		}
		// The DSN `loadcap shadow audit --dsn` gets reaches the same tables.
		db, err := audit.Open(ctx, s.DSN())
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		rep, err := audit.Scan(ctx, db, drill, m)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() || len(rep.Tables) < 6 {
			t.Errorf("audit through %s: leaks %v, tables %v", s.DSN(), rep.Leaks, rep.Tables)
		}
		// (Values written in: placeholders differ between the databases.)
		if _, err := s.DB().Exec(fmt.Sprintf(`INSERT INTO orders (id, user_id, items, total_cents, status, created_ms, shadow_tag)
			VALUES (%d, 1, 1, 100, 'paid', 0, '%s')`, s.IDOffset()+999_999, drill)); err != nil {
			t.Fatal(err)
		}
		rep, err = audit.Scan(ctx, db, drill, m)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Total() != 1 || rep.Counts["orders"] != 1 {
			t.Errorf("planted leak: audit found %v", rep.Leaks)
		}

		// The pre-flight check passes, and fails once a twin lacks a column.
		check, err := audit.Check(ctx, s.DB(), tables, shadow.Naming{})
		if err != nil {
			t.Fatal(err)
		}
		if !check.OK() {
			t.Errorf("check: %v", check.Problems)
		}
		if _, err := s.DB().Exec(`ALTER TABLE shadow_payments DROP COLUMN provider_ref`); err != nil {
			t.Fatal(err)
		}
		check, err = audit.Check(ctx, s.DB(), tables, shadow.Naming{})
		if err != nil {
			t.Fatal(err)
		}
		if len(check.Problems) != 1 || check.Problems[0].Table != "shadow_payments" || check.Problems[0].Column != "provider_ref" {
			t.Errorf("check with a missing column: %v", check.Problems)
		}
	})
}

func TestShopMisconfiguredServiceFailsClosed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, cfg shop.Config) {
		cfg.Misconfigured = true
		s := startShop(t, cfg)
		const drill = "e2e-drill-2"
		res := drive(t, shopMix(s.URL(), "", 15, "checkout", "track"), shopMix(s.URL(), drill, 10, "checkout", "track"))
		prod, tagged := res[0], res[1]
		ok := status(prod, "checkout", 200)
		refused := status(tagged, "checkout", 503)
		if ok == 0 || refused == 0 || prod.Totals.Failed != 0 {
			t.Fatalf("untagged checkouts %d ok (%d failed), tagged %d refused", ok, prod.Totals.Failed, refused)
		}
		if n := int(tagged.Request("checkout").Sent); refused != n {
			t.Errorf("%d of %d tagged checkouts refused", refused, n)
		}
		// Other tagged work goes on: tracking is declared.
		if status(tagged, "track", 202) == 0 {
			t.Error("tagged tracking failed too")
		}
		r := taggedCall(t, "POST", s.URL()+"/api/checkout", drill, `{"user": 1, "items": [{"product": 1, "quantity": 1}]}`)
		if r.StatusCode != 503 || !strings.Contains(r.Header.Get(shadow.RejectHeader), "table orders: not declared") {
			t.Errorf("tagged checkout: HTTP %d, %s: %q", r.StatusCode, shadow.RejectHeader, r.Header.Get(shadow.RejectHeader))
		}
		refused++

		checkRows(t, s, "orders", ok, "")
		checkRows(t, s, "shadow_orders", 0, drill)
		checkRows(t, s, "payments", ok, "")
		checkRows(t, s, "shadow_payments", 0, drill)
		if n := s.Provider().Charges(); n != ok {
			t.Errorf("provider charged %d times, want %d", n, ok)
		}
		order := metricsOf(t, s, shop.Order)
		if got := metricValue(order, `shop_shadow_rejected_total{kind="table",resource="orders",service="order"}`); int(got) != refused {
			t.Errorf("order service counted %v refusals, want %d", got, refused)
		}
		rep, err := audit.Scan(context.Background(), s.DB(), "", audit.Markers{IDOffset: s.IDOffset()})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() {
			t.Errorf("audit: %v", rep.Leaks)
		}
	})
}

// BenchmarkShopCapacity overloads the product service (1.5 × its capacity,
// through the gateway) with loadcap's engine and reports the throughput of
// the steady seconds against Capacity.PerSec: the shop's known answer for
// capacity searches. Run with -benchtime 1x: each iteration is a 4 s run.
func BenchmarkShopCapacity(b *testing.B) {
	for _, c := range []string{"4x10ms", "4x10ms,exp", "8x2ms"} {
		b.Run(c, func(b *testing.B) {
			cp, err := shop.ParseCapacity(c)
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			s, err := shop.Start(ctx, shop.Config{Dir: b.TempDir(), Products: 50, Users: 10,
				Capacity: map[string]shop.Capacity{shop.Product: cp, shop.Gateway: {Workers: 1}}})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			text := fmt.Sprintf(`target: %s
scenarios:
  over: {executor: constant-arrival-rate, rate: %d, duration: 4s, preAllocatedVUs: 200, maxVUs: 2000, gracefulStop: 5s}
requests:
  - {name: product, path: "/api/products/{{randInt 1 50}}"}
`, s.URL(), int(cp.PerSec()*1.5))
			f, err := scenarios.Parse("over.yaml", []byte(text))
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				e, err := loadgen.New(f)
				if err != nil {
					b.Fatal(err)
				}
				r, err := e.Run(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if len(r.Intervals) < 4 {
					b.Fatalf("%d intervals", len(r.Intervals))
				}
				var done int64
				for _, iv := range r.Intervals[1:4] { // the first second fills the queue
					done += iv.Completed
				}
				rate := float64(done) / (r.Intervals[3].End - r.Intervals[0].End).Seconds()
				b.ReportMetric(rate, "req/s")
				b.ReportMetric(rate/cp.PerSec(), "of_capacity")
			}
		})
	}
}
