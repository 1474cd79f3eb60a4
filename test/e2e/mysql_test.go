package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loadcap/loadcap/internal/demo/shop"
	"github.com/loadcap/loadcap/shadow"
)

// TestDrillOnMySQLNoLeak is the drill and its leak audit on MySQL (MariaDB
// in CI), where the shops loadcap is for keep their orders and their
// behaviour-tracking daily tables: `loadcap drill` replays the recorded
// shop traffic, tagged, against the shop on MySQL; its pre-flight and its
// audit cover orders, payments and the daily event tables (events_*);
// every drill row is in a twin, and `loadcap shadow audit` then finds a
// leak planted in today's daily table (exit 106) that `shadow check` could
// not have seen.
func TestDrillOnMySQLNoLeak(t *testing.T) {
	b := mysqlBackend(t)
	if b.cfg == nil {
		t.Skip("LOADCAP_MYSQL_DSN not set")
	}
	cfg := b.cfg(t) // the default catalogue and users: the recording's requests name them
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := shop.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("stop the shop: %v", err)
		}
	})
	if !strings.HasPrefix(s.DSN(), "mysql://") {
		t.Fatalf("shop DSN %q, want mysql://", s.DSN())
	}

	// Production has been tracking users all day: today's daily table
	// exists before the drill, as the pre-flight's events_* expects.
	if r := taggedCall(t, "POST", s.URL()+"/api/track", "", `{"user": 1, "kind": "view", "product": 3}`); r.StatusCode != 202 {
		t.Fatalf("untagged track: HTTP %d", r.StatusCode)
	}
	waitEvents(t, s, 1, 0)

	recording, err := filepath.Abs("../../scenarios/examples/shop-traffic.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	plan := writeDrill(t, s, drillOpts{
		traffic: fmt.Sprintf("{replay: %q}", recording),
		stages:  `  - {name: half, multiplier: 0.5, hold: 3s}`,
		guard: fmt.Sprintf(`  rules:
    - {name: drill-errors, drill: "error<5%%"}
    - {name: gateway-health, health: "%s/healthz"}`, s.URL()),
		tables: `orders, payments, "events_*"`,
	})
	p := start(t, "drill", plan, "--out-dir", out)
	code := p.wait(t, 60*time.Second)
	stdout := p.stdout.String()
	// A stage may miss its rate on a stalled machine (99); isolation is
	// judged all the same. Anything else is a failure.
	if code != 0 && code != 99 {
		t.Fatalf("exit %d, want 0\n%s\n%s", code, stdout, p.stderr.String())
	}
	if !strings.Contains(stdout, "ok: no leak") {
		t.Fatalf("audit not clean:\n%s\n%s", stdout, p.stderr.String())
	}

	// The drill's orders and events went to the twins only.
	orders := len(rowsOf(t, s.DB(), "shadow_orders"))
	if orders == 0 {
		t.Fatal("the drill placed no order: the audit had nothing to find")
	}
	checkRows(t, s, "shadow_orders", orders, "e2e-drill")
	checkRows(t, s, "orders", 0, "")
	checkRows(t, s, "payments", 0, "")
	if n := s.Provider().Charges(); n != 0 {
		t.Errorf("the payment provider was charged %d times by a drill", n)
	}
	tables, err := s.Tables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var daily []string
	for _, tb := range tables {
		if strings.HasPrefix(tb, "events_") {
			daily = append(daily, tb)
		}
	}
	if len(daily) == 0 {
		t.Fatalf("no daily event table among %v", tables)
	}
	prod, shadowed := events(t, s)
	if prod != 1 || shadowed == 0 {
		t.Errorf("events: %d production (want the 1 untagged), %d in the twins (want the drill's)", prod, shadowed)
	}
	for _, tb := range daily {
		if !strings.Contains(stdout, tb) {
			t.Errorf("the drill's audit does not name the daily table %s:\n%s", tb, stdout)
		}
		checkRows(t, s, shadow.DefaultTableNaming.Shadow(tb), len(rowsOf(t, s.DB(), shadow.DefaultTableNaming.Shadow(tb))), "e2e-drill")
	}
	t.Logf("%d tagged orders and %d tagged events, all in twins; daily tables %v", orders, shadowed, daily)

	// A drill row in today's production daily table: the pre-flight
	// passes (the schema is fine), the audit fails and names the row.
	today := daily[len(daily)-1]
	leak := s.IDOffset() + 777_777
	if _, err := s.DB().Exec(fmt.Sprintf("INSERT INTO `%s` (id, user_id, kind, at_ms, shadow_tag) VALUES (%d, 1, 'view', 0, 'e2e-drill')", today, leak)); err != nil {
		t.Fatal(err)
	}
	chk := start(t, "shadow", "check", "--dsn", s.DSN(), "--tables", "orders,payments,events_*")
	if c := chk.wait(t, 30*time.Second); c != 0 || !strings.Contains(chk.stdout.String(), today) {
		t.Errorf("shadow check: exit %d, want 0 naming %s\n%s\n%s", c, today, chk.stdout.String(), chk.stderr.String())
	}
	aud := start(t, "shadow", "audit", "--dsn", s.DSN(), "--drill", "e2e-drill", "--tables", "orders,payments,events_*",
		"--id-offset", fmt.Sprint(s.IDOffset()))
	c := aud.wait(t, 30*time.Second)
	want := fmt.Sprintf("LEAK %s %d: row of drill e2e-drill in a production table", today, leak)
	if c != 106 || !strings.Contains(aud.stdout.String(), want) {
		t.Errorf("shadow audit: exit %d, want 106 with %q\n%s\n%s", c, want, aud.stdout.String(), aud.stderr.String())
	}
}
