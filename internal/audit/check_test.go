package audit

import (
	"database/sql"
	"strings"
	"testing"

	"github.com/loadcap/loadcap/shadow"
)

const ordersDDL = `CREATE TABLE orders (id BIGINT PRIMARY KEY, total INTEGER NOT NULL, note VARCHAR(20), shadow_tag TEXT)`

func TestCheck(t *testing.T) {
	tests := []struct {
		name   string
		ddl    string
		tables []string
		naming shadow.Naming
		want   []Problem // What compared by prefix
	}{
		{
			name: "identical twin",
			ddl:  ordersDDL + `; CREATE TABLE shadow_orders (id BIGINT PRIMARY KEY, total INTEGER NOT NULL, note VARCHAR(20), shadow_tag TEXT)`,
		},
		{
			name: "columns in another order",
			ddl:  ordersDDL + `; CREATE TABLE shadow_orders (shadow_tag TEXT, note VARCHAR(20), total INTEGER NOT NULL, id BIGINT PRIMARY KEY)`,
		},
		{
			name:   "custom naming",
			ddl:    ordersDDL + `; CREATE TABLE orders_s (id BIGINT PRIMARY KEY, total INTEGER NOT NULL, note VARCHAR(20), shadow_tag TEXT)`,
			naming: shadow.Naming{Suffix: "_s"},
		},
		{
			name: "generated first column",
			ddl: `CREATE TABLE t (g INTEGER GENERATED ALWAYS AS (1) STORED, id BIGINT NOT NULL);
			      CREATE TABLE shadow_t (g INTEGER GENERATED ALWAYS AS (1) STORED, id BIGINT NOT NULL)`,
			tables: []string{"t"},
		},
		{
			name: "every difference listed",
			ddl:  ordersDDL + `; CREATE TABLE shadow_orders (id BIGINT PRIMARY KEY, total TEXT NOT NULL, shadow_tag TEXT NOT NULL, extra INTEGER)`,
			want: []Problem{
				{Table: "shadow_orders", Column: "extra", What: "not in orders"},
				{Table: "shadow_orders", Column: "note", What: "missing (orders has "},
				{Table: "shadow_orders", Column: "shadow_tag", What: "NOT NULL, orders has NULL"},
				{Table: "shadow_orders", Column: "total", What: "type TEXT, orders has INT"}, // INT(11) in MariaDB
			},
		},
		{
			name: "no twin",
			ddl:  ordersDDL,
			want: []Problem{{Table: "shadow_orders", What: "shadow twin of orders does not exist"}},
		},
		{
			name: "no production table",
			ddl:  `CREATE TABLE shadow_orders (id BIGINT)`,
			want: []Problem{{Table: "orders", What: "production table does not exist"}},
		},
		{
			name:   "several tables, each checked once",
			ddl:    ordersDDL + `; CREATE TABLE shadow_orders (id BIGINT PRIMARY KEY, total INTEGER NOT NULL, note VARCHAR(20), shadow_tag TEXT); CREATE TABLE payments (id BIGINT)`,
			tables: []string{"orders", "payments", "orders", "carts"},
			want: []Problem{
				{Table: "shadow_payments", What: "shadow twin of payments does not exist"},
				{Table: "carts", What: "production table does not exist"},
				{Table: "shadow_carts", What: "shadow twin of carts does not exist"},
			},
		},
		{
			// The daily tables of a tracking path, named by a pattern: each
			// day's table is checked against its own twin.
			name: "daily tables by pattern",
			ddl: `CREATE TABLE track_20261110 (id BIGINT, kind TEXT); CREATE TABLE shadow_track_20261110 (id BIGINT, kind TEXT);
			      CREATE TABLE track_20261111 (id BIGINT, kind TEXT); CREATE TABLE shadow_track_20261111 (id BIGINT, kind INTEGER);
			      CREATE TABLE track_20261112 (id BIGINT, kind TEXT);
			      CREATE TABLE shadow_track_20261113 (id BIGINT, kind TEXT);
			      CREATE TABLE tracking_config (k TEXT)`,
			tables: []string{"track_2026*"},
			want: []Problem{
				{Table: "shadow_track_20261111", Column: "kind", What: "type INT"},
				{Table: "shadow_track_20261112", What: "shadow twin of track_20261112 does not exist"},
				{Table: "track_20261113", What: "production table does not exist"},
			},
		},
		{
			name:   "pattern matching nothing",
			ddl:    ordersDDL + `; CREATE TABLE shadow_orders (id BIGINT PRIMARY KEY, total INTEGER NOT NULL, note VARCHAR(20), shadow_tag TEXT)`,
			tables: []string{"orders", "track_*"},
			want:   []Problem{{Table: "track_*", What: "no production table matches"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forEachDB(t, func(t *testing.T, db *sql.DB, _ string) {
				exec(t, db, tt.ddl)
				tables := tt.tables
				if tables == nil {
					tables = []string{"orders"}
				}
				r, err := Check(testCtx(t), db, tables, tt.naming)
				if err != nil {
					t.Fatal(err)
				}
				assertProblems(t, r.Problems, tt.want)
				if r.OK() != (len(tt.want) == 0) {
					t.Fatalf("OK() = %v with problems %v", r.OK(), r.Problems)
				}
			})
		})
	}
}

func assertProblems(t *testing.T, got, want []Problem) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("problems:\n%s\nwant:\n%s", problemList(got), problemList(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Table != w.Table || g.Column != w.Column || !strings.HasPrefix(g.What, w.What) {
			t.Fatalf("problem %d: %q, want %q…\nall:\n%s", i, g, w, problemList(got))
		}
	}
}

func problemList(ps []Problem) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString("  " + p.String() + "\n")
	}
	return b.String()
}

// TestCheckWritable: a twin the database will not write to is reported;
// a writable one passes and the test leaves no row behind.
func TestCheckWritable(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sql.DB, readOnlyDSN string) {
		exec(t, db, ordersDDL+`; CREATE TABLE shadow_orders (id BIGINT PRIMARY KEY, total INTEGER NOT NULL, note VARCHAR(20), shadow_tag TEXT);
			INSERT INTO orders (id, total) VALUES (1, 10)`)
		r, err := Check(testCtx(t), db, []string{"orders"}, shadow.Naming{})
		if err != nil || !r.OK() {
			t.Fatalf("Check = %v, %v; want OK", r, err)
		}
		for table, want := range map[string]int{"orders": 1, "shadow_orders": 0} {
			var n int
			if err := db.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil || n != want {
				t.Fatalf("%s has %d rows (%v), want %d", table, n, err, want)
			}
		}

		ro, err := Open(testCtx(t), readOnlyDSN)
		if err != nil {
			t.Fatal(err)
		}
		defer ro.Close()
		r, err = Check(testCtx(t), ro, []string{"orders"}, shadow.Naming{})
		if err != nil {
			t.Fatal(err)
		}
		assertProblems(t, r.Problems, []Problem{{Table: "shadow_orders", What: "not writable: "}})
		if !strings.Contains(strings.ToLower(r.Problems[0].What), "read") {
			t.Fatalf("reason %q does not say read-only", r.Problems[0].What)
		}
	})
}

func TestCheckNoTables(t *testing.T) {
	db, _ := openSQLite(t)
	if _, err := Check(testCtx(t), db, nil, shadow.Naming{}); err == nil {
		t.Fatal("Check with no tables succeeded")
	}
}
