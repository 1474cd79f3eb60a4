package audit

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// backend is a database the tests run against: SQLite always, PostgreSQL
// when LOADCAP_PG_DSN is set, MySQL or MariaDB when LOADCAP_MYSQL_DSN is.
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

// forEachDB runs f on SQLite and, when configured, on PostgreSQL and on
// MySQL, each in a database of its own. It fails when LOADCAP_REQUIRE_PG=1
// and LOADCAP_PG_DSN is unset, or LOADCAP_REQUIRE_MYSQL=1 and
// LOADCAP_MYSQL_DSN is.
func forEachDB(t *testing.T, f func(t *testing.T, db *sql.DB, readOnlyDSN string)) {
	backends := []backend{{name: "sqlite", open: openSQLite}}
	if os.Getenv("LOADCAP_PG_DSN") != "" {
		backends = append(backends, backend{name: "postgres", open: openPostgres})
	}
	if os.Getenv("LOADCAP_MYSQL_DSN") != "" {
		backends = append(backends, backend{name: "mysql", open: openMySQL})
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
	if os.Getenv("LOADCAP_MYSQL_DSN") == "" {
		if os.Getenv("LOADCAP_REQUIRE_MYSQL") == "1" {
			t.Fatal("LOADCAP_REQUIRE_MYSQL=1 but LOADCAP_MYSQL_DSN is unset")
		}
		t.Log("LOADCAP_MYSQL_DSN unset: MySQL skipped")
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

// openMySQL creates a database of its own for the test (MySQL's schemas
// are databases), opens a pool on it, and drops it at the end. The
// read-only handle makes every transaction read-only (tx_read_only in
// MariaDB before 11.1, transaction_read_only in MySQL 8 and later MariaDB).
func openMySQL(t *testing.T) (*sql.DB, string) {
	ctx := testCtx(t)
	base := os.Getenv("LOADCAP_MYSQL_DSN")
	admin, err := Open(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	var buf [6]byte
	rand.Read(buf[:])
	name := "audit_test_" + hex.EncodeToString(buf[:])
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP DATABASE " + name); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("LOADCAP_MYSQL_DSN: %v", err)
	}
	u.Path = "/" + name
	db, err := Open(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	readOnly := "transaction_read_only"
	var v sql.NullString
	if db.QueryRowContext(ctx, "SELECT @@transaction_read_only").Scan(&v) != nil {
		readOnly = "tx_read_only"
	}
	return db, withParams(t, u.String(), readOnly, "1")
}

func withParams(t *testing.T, dsn string, kv ...string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("DSN: %v", err)
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
		{name: "unknown kind", dsn: "oracle://root@127.0.0.1/shop"},
		{name: "mysql without a database", dsn: "mysql://root@127.0.0.1:3306"},
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
	if dsn := os.Getenv("LOADCAP_MYSQL_DSN"); dsn != "" {
		db, err := Open(testCtx(t), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if d, err := dialectOf(testCtx(t), db); err != nil || d != mysqlDialect {
			t.Fatalf("dialect %v, %v", d, err)
		}
		// A wrong password is refused, and the error does not show it.
		u, _ := url.Parse(dsn)
		u.User = url.UserPassword(u.User.Username(), "wrong-pass-xyz")
		if db, err := Open(testCtx(t), u.String()); err == nil {
			db.Close()
			t.Fatal("Open with a wrong password succeeded")
		} else if strings.Contains(err.Error(), "wrong-pass-xyz") {
			t.Fatalf("error shows the password: %v", err)
		}
		// A password with URL and DSN delimiters in it, URL-encoded, logs
		// in: the server accepts it, then refuses the database the new
		// user has no grant on (1044), not the password (1045).
		var buf [4]byte
		rand.Read(buf[:])
		user, pass := "audit_pw_"+hex.EncodeToString(buf[:]), "p@ss/w:rd?#&="
		if _, err := db.Exec("CREATE USER '" + user + "'@'%' IDENTIFIED BY '" + pass + "'"); err != nil {
			t.Fatalf("create user: %v", err)
		}
		defer db.Exec("DROP USER '" + user + "'@'%'")
		u.User = url.UserPassword(user, pass)
		pw, err := Open(testCtx(t), u.String())
		var me *mysql.MySQLError
		if err == nil {
			pw.Close()
		} else if !errors.As(err, &me) || me.Number != 1044 {
			t.Fatalf("Open with an encoded password %s: %v", u.Redacted(), err)
		}
	}
}

// TestMySQLConfig: the mysql:// URL the README documents becomes the
// driver's TCP configuration; what it cannot be is refused with the URL,
// password hidden.
func TestMySQLConfig(t *testing.T) {
	tests := []struct {
		name, dsn            string
		user, pass, addr, db string
		params               map[string]string
		timeout              time.Duration
		err                  string
	}{
		{name: "full", dsn: "mysql://shop:s3cret@db.internal:3307/shop", user: "shop", pass: "s3cret", addr: "db.internal:3307", db: "shop", timeout: 10 * time.Second},
		{name: "default port", dsn: "mysql://shop@127.0.0.1/shop", user: "shop", addr: "127.0.0.1:3306", db: "shop", timeout: 10 * time.Second},
		{name: "IPv6", dsn: "mysql://shop@[::1]/shop", user: "shop", addr: "[::1]:3306", db: "shop", timeout: 10 * time.Second},
		{name: "encoded password", dsn: "mysql://shop:p%40ss%2Fw%3Ard@h:1/d", user: "shop", pass: "p@ss/w:rd", addr: "h:1", db: "d", timeout: 10 * time.Second},
		{name: "driver and session params", dsn: "mysql://u:p@h:1/d?timeout=3s&sql_mode=ANSI", user: "u", pass: "p", addr: "h:1", db: "d",
			timeout: 3 * time.Second, params: map[string]string{"sql_mode": "ANSI"}},
		{name: "no database", dsn: "mysql://u:p@h:1/", err: "no database"},
		{name: "no user", dsn: "mysql://h:1/d", err: "no user"},
		{name: "no host", dsn: "mysql:///d", err: "no host"},
		{name: "bad param", dsn: "mysql://u:secret@h:1/d?timeout=soon", err: "mysql://u:xxxxx@h:1/d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := MySQLConfig(tt.dsn)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || strings.Contains(err.Error(), "secret") {
					t.Fatalf("err %v, want one saying %q without the password", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.User != tt.user || c.Passwd != tt.pass || c.Net != "tcp" || c.Addr != tt.addr || c.DBName != tt.db || c.Timeout != tt.timeout {
				t.Fatalf("config %+v", c)
			}
			for k, v := range tt.params {
				if c.Params[k] != v {
					t.Errorf("param %s = %q, want %q", k, c.Params[k], v)
				}
			}
		})
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:secret@h:5432/db?x=1": "postgres://u:xxxxx@h:5432/db?x=1",
		"postgres://u@h/db":                 "postgres://u@h/db",
		"mysql://u:secret@h:3306/db":        "mysql://u:xxxxx@h:3306/db",
		"shop.db":                           "shop.db",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}
