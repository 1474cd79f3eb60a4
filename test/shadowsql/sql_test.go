// Package shadowsql tests the shadow library's database/sql routing
// against a real SQLite. It lives in loadcap's module, not the library's,
// so that the library's go.mod never names a database driver.
package shadowsql_test

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/loadcap/loadcap/shadow"
)

func shopPolicy(t testing.TB) *shadow.Policy {
	t.Helper()
	p, err := shadow.NewPolicy(
		shadow.Logger(slog.New(slog.DiscardHandler)),
		shadow.Tables("orders", "events_*"),
		shadow.Keys("cart:*", "session"),
		shadow.Topics("events"),
		shadow.Effects("payment"),
		shadow.IDOffset(1_000_000_000),
	)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func tagged(t testing.TB, p *shadow.Policy, drill string) context.Context {
	t.Helper()
	ctx, err := p.WithTag(context.Background(), drill)
	if err != nil {
		t.Fatal(err)
	}
	return ctx
}

func openSQLite(t *testing.T, name string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER NOT NULL, shadow_tag TEXT)`); err != nil {
		t.Fatal(err)
	}
	return db
}

func count(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM orders`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDBRoutes: tagged work lands in the shadow database, untagged in
// production, through every method.
func TestDBRoutes(t *testing.T) {
	p := shopPolicy(t)
	prod, shadowDB := openSQLite(t, "prod.db"), openSQLite(t, "shadow.db")
	db := p.DB(prod, shadowDB)
	tag := tagged(t, p, "d1")
	insert := `INSERT INTO orders (id, total, shadow_tag) VALUES (?, ?, ?)`

	for _, ctx := range []context.Context{tag, context.Background()} {
		id, err := shadow.ID(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, insert, id, 10, shadow.SQLTag(ctx)); err != nil {
			t.Fatal(err)
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, insert, id+1, 20, shadow.SQLTag(ctx)); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	var tagCol sql.NullString
	var sum int64
	if err := db.QueryRowContext(tag, `SELECT max(shadow_tag), sum(id) FROM orders`).Scan(&tagCol, &sum); err != nil {
		t.Fatal(err)
	}
	if tagCol.String != "d1" || sum != 2_000_000_003 {
		t.Fatalf("tagged read saw tag %q, id sum %d; want d1, 2000000003", tagCol.String, sum)
	}
	rows, err := db.QueryContext(context.Background(), `SELECT id FROM orders WHERE shadow_tag IS NULL ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		rows.Scan(&id)
		ids = append(ids, id)
	}
	rows.Close()
	if len(ids) != 2 || ids[0] != 1 || ids[1] != 2 {
		t.Fatalf("untagged read saw production ids %v, want [1 2]", ids)
	}
	if count(t, prod) != 2 || count(t, shadowDB) != 2 {
		t.Fatalf("production has %d rows, shadow %d; want 2 each", count(t, prod), count(t, shadowDB))
	}
}

// TestDBWithoutShadow: with no shadow database, tagged work is refused by
// every method and production is untouched.
func TestDBWithoutShadow(t *testing.T) {
	p := shopPolicy(t)
	prod := openSQLite(t, "prod.db")
	db := p.DB(prod, nil)
	ctx := tagged(t, p, "d1")
	insert := `INSERT INTO orders (id, total) VALUES (1, 1)`
	errs := map[string]error{}
	_, errs["ExecContext"] = db.ExecContext(ctx, insert)
	_, errs["QueryContext"] = db.QueryContext(ctx, `SELECT 1`)
	_, errs["BeginTx"] = db.BeginTx(ctx, nil)
	errs["QueryRowContext"] = db.QueryRowContext(ctx, `SELECT 1`).Scan(new(int))
	errs["Row.Err"] = db.QueryRowContext(ctx, `SELECT 1`).Err()
	for m, err := range errs {
		if !errors.Is(err, shadow.ErrNotIsolated) {
			t.Errorf("%s = %v, want a refusal", m, err)
		}
	}
	if count(t, prod) != 0 {
		t.Fatal("tagged work reached production")
	}
	if _, err := db.ExecContext(context.Background(), insert); err != nil || count(t, prod) != 1 {
		t.Fatalf("untagged insert: %v", err)
	}
}
