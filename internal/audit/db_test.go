package audit

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// backend is a database the tests run against: SQLite always, PostgreSQL
// when LOADCAP_PG_DSN is set.
type backend struct {
	name string
	// open returns a fresh, empty database and the DSN of a read-only
	// handle on it.
	open func(t *testing.T) (db *sql.DB, readOnlyDSN string)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// forEachDB runs f on SQLite and, when configured, on PostgreSQL, each in
// a database of its own. It fails when LOADCAP_REQUIRE_PG=1 and
// LOADCAP_PG_DSN is unset.
func forEachDB(t *testing.T, f func(t *testing.T, db *sql.DB, readOnlyDSN string)) {
	backends := []backend{{name: "sqlite", open: openSQLite}}
	if os.Getenv("LOADCAP_PG_DSN") != "" {
		backends = append(backends, backend{name: "postgres", open: openPostgres})
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			db, ro := b.open(t)
			f(t, db, ro)
		})
	}
	if os.Getenv("LOADCAP_PG_DSN") == "" {
		if os.Getenv("LOADCAP_REQUIRE_PG") == "1" {
			t.Fatal("LOADCAP_REQUIRE_PG=1 but LOADCAP_PG_DSN is unset")
		}
		t.Log("LOADCAP_PG_DSN unset: PostgreSQL skipped")
	}
}

func openSQLite(t *testing.T) (*sql.DB, string) {
	path := filepath.Join(t.TempDir(), "shop.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, "file:" + path + "?mode=ro"
}

// openPostgres creates a schema of its own for the test, opens a pool
// whose connections use it, and drops it at the end.
func openPostgres(t *testing.T) (*sql.DB, string) {
	ctx := testCtx(t)
	base := os.Getenv("LOADCAP_PG_DSN")
	admin, err := Open(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	var buf [6]byte
	rand.Read(buf[:])
	schema := "audit_test_" + hex.EncodeToString(buf[:])
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	dsn := withParams(t, base, "search_path", schema)
	db, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, withParams(t, dsn, "default_transaction_read_only", "on")
}

func withParams(t *testing.T, dsn string, kv ...string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("LOADCAP_PG_DSN: %v", err)
	}
	q := u.Query()
	for i := 0; i < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// exec runs statements separated by ";".
func exec(t *testing.T, db *sql.DB, stmts string) {
	t.Helper()
	for s := range strings.SplitSeq(stmts, ";") {
		if strings.TrimSpace(s) == "" {
			continue
		}
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", strings.TrimSpace(s), err)
		}
	}
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "shop.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	exec(t, db, `CREATE TABLE orders (id INTEGER)`)
	db.Close()

	tests := []struct {
		name string
		dsn  string
		ok   bool
	}{
		{name: "path ending .db", dsn: path, ok: true},
		{name: "sqlite:PATH", dsn: "sqlite:" + path, ok: true},
		{name: "sqlite:///PATH", dsn: "sqlite://" + path, ok: true},
		{name: "file:PATH", dsn: "file:" + path, ok: true},
		{name: "file:PATH with query", dsn: "file:" + path + "?mode=ro", ok: true},
		{name: "missing file", dsn: filepath.Join(dir, "nope.db")},
		{name: "missing file with sqlite:", dsn: "sqlite:" + filepath.Join(dir, "nope.sqlite")},
		{name: "unknown kind", dsn: "mysql://root@127.0.0.1/shop"},
		{name: "bare word", dsn: "shop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := Open(testCtx(t), tt.dsn)
			if !tt.ok {
				if err == nil {
					db.Close()
					t.Fatalf("Open(%q) succeeded", tt.dsn)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if d, err := dialectOf(testCtx(t), db); err != nil || d != sqliteDialect {
				t.Fatalf("dialect %v, %v", d, err)
			}
			var n int
			if err := db.QueryRow(`SELECT count(*) FROM orders`).Scan(&n); err != nil {
				t.Fatalf("not the file's database: %v", err)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "nope.db")); err == nil {
		t.Fatal("Open created a database file")
	}
	if dsn := os.Getenv("LOADCAP_PG_DSN"); dsn != "" {
		db, err := Open(testCtx(t), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if d, err := dialectOf(testCtx(t), db); err != nil || d != postgresDialect {
			t.Fatalf("dialect %v, %v", d, err)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:secret@h:5432/db?x=1": "postgres://u:xxxxx@h:5432/db?x=1",
		"postgres://u@h/db":                 "postgres://u@h/db",
		"shop.db":                           "shop.db",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}
