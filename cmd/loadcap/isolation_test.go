package main

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"
)

// sqliteDB creates a database file holding stmts and returns its DSN.
func sqliteDB(t *testing.T, stmts ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "shop.db")
	dsn := "sqlite:" + path
	// audit.Open never creates a file: make it with the driver itself.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	return dsn
}

func TestShadowCheckAndAudit(t *testing.T) {
	t.Parallel()
	good := sqliteDB(t,
		"CREATE TABLE orders (id INTEGER PRIMARY KEY, sku TEXT NOT NULL, shadow_tag TEXT)",
		"CREATE TABLE shadow_orders (id INTEGER PRIMARY KEY, sku TEXT NOT NULL, shadow_tag TEXT)",
		"INSERT INTO orders (id, sku) VALUES (1, 'a'), (2, 'b')",
		"INSERT INTO shadow_orders (id, sku, shadow_tag) VALUES (1000001, 'a', 'd1')",
	)
	if r := loadcap(t, nil, false, "shadow", "check", "--dsn", good, "--tables", "orders"); r.code != 0 || !strings.Contains(r.stdout, "ok: 1 tables") {
		t.Errorf("check of an isolated table: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := loadcap(t, nil, false, "shadow", "audit", "--dsn", good, "--drill", "d1", "--tables", "orders", "--id-offset", "1000000"); r.code != 0 {
		t.Errorf("audit of a clean drill: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	bad := sqliteDB(t,
		"CREATE TABLE orders (id INTEGER PRIMARY KEY, sku TEXT NOT NULL, qty INTEGER, shadow_tag TEXT)",
		"CREATE TABLE shadow_orders (id INTEGER PRIMARY KEY, sku TEXT NOT NULL, shadow_tag TEXT)",
		"INSERT INTO orders (id, sku, shadow_tag) VALUES (1, 'a', NULL), (1000007, 'b', 'd1')",
		"INSERT INTO shadow_orders (id, sku, shadow_tag) VALUES (5, 'c', NULL)",
	)
	r := loadcap(t, nil, false, "shadow", "check", "--dsn", bad, "--tables", "orders,payments")
	if r.code != 106 || !strings.Contains(r.stdout, "qty") || !strings.Contains(r.stdout, "payments") {
		t.Errorf("check: exit %d, want 106 naming the missing column qty and the missing table payments\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = loadcap(t, nil, false, "shadow", "audit", "--dsn", bad, "--drill", "d1", "--tables", "orders", "--id-offset", "1000000")
	if r.code != 106 || strings.Count(r.stdout, "LEAK") < 2 || !strings.Contains(r.stdout, "1000007") {
		t.Errorf("audit: exit %d, want 106 listing the drill row in orders and the untagged row in shadow_orders\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Auditing another drill is no way around it: d1's row in production
	// leaked all the same, and the report names d1.
	r = loadcap(t, nil, false, "shadow", "audit", "--dsn", bad, "--drill", "d2", "--tables", "orders")
	if r.code != 106 || strings.Contains(r.stdout, "ok:") || !strings.Contains(r.stdout, "row of drill d1 (not d2) in a production table") ||
		!strings.Contains(r.stdout, "rows of drills in production tables: d1") {
		t.Errorf("audit of d2 with a row of d1 in production: exit %d, want 106 naming d1\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := loadcap(t, nil, false, "shadow", "audit", "--dsn", bad, "--drill", "has space"); r.code != 2 {
		t.Errorf("bad drill id: exit %d, want 2", r.code)
	}
	if r := loadcap(t, nil, false, "shadow", "check", "--dsn", "sqlite:"+filepath.Join(t.TempDir(), "none.db"), "--tables", "orders"); r.code != 1 {
		t.Errorf("missing database: exit %d, want 1\n%s", r.code, r.stderr)
	}
}
