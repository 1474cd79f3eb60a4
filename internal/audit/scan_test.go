package audit

import (
	"database/sql"
	"reflect"
	"strings"
	"testing"

	"github.com/loadcap/loadcap/shadow"
)

// leakyShop is a database after a drill d1 with offset 1000 where things
// went wrong, in every way the audit knows.
const leakyShop = `
CREATE TABLE orders (id BIGINT PRIMARY KEY, total INTEGER NOT NULL, shadow_tag TEXT);
CREATE TABLE shadow_orders (id BIGINT PRIMARY KEY, total INTEGER NOT NULL, shadow_tag TEXT);
CREATE TABLE events_20240101 (id BIGINT, shadow_tag TEXT);
CREATE TABLE shadow_events_20240101 (id BIGINT, shadow_tag TEXT);
CREATE TABLE audit_log (id BIGINT, shadow_tag TEXT);
CREATE TABLE shadow_orphan (id BIGINT, shadow_tag TEXT);
CREATE TABLE users (id BIGINT, name TEXT);
CREATE TABLE shadow_users (id BIGINT, name TEXT);
CREATE TABLE settings (k TEXT, v TEXT);
INSERT INTO orders VALUES (1, 10, NULL), (2, 10, 'd1'), (3, 10, 'other'), (4, 10, ''), (1001, 10, NULL), (1002, 10, 'd1');
INSERT INTO shadow_orders VALUES (1001, 10, 'd1'), (1002, 10, 'other'), (1003, 10, NULL), (1004, 10, ''), (5, 10, 'd1'), (6, 10, NULL);
INSERT INTO events_20240101 VALUES (1, NULL);
INSERT INTO shadow_events_20240101 VALUES (1001, 'd1');
INSERT INTO audit_log VALUES (7, 'd1');
INSERT INTO shadow_orphan VALUES (1005, 'd1');
INSERT INTO users VALUES (1, 'a'), (2000, 'b');
INSERT INTO shadow_users VALUES (1001, 'a');
INSERT INTO settings VALUES ('k', 'v')`

// cleanShop is the same schema after a drill that went right.
const cleanShop = `
CREATE TABLE orders (id BIGINT PRIMARY KEY, total INTEGER NOT NULL, shadow_tag TEXT);
CREATE TABLE shadow_orders (id BIGINT PRIMARY KEY, total INTEGER NOT NULL, shadow_tag TEXT);
INSERT INTO orders VALUES (1, 10, NULL), (2, 10, ''), (999, 10, NULL);
INSERT INTO shadow_orders VALUES (1000, 10, 'd1'), (1001, 10, 'd0'), (5000000000, 10, 'd1')`

const (
	drillRow   = "row of drill d1 in a production table"
	inRange    = "ID in the shadow range (≥ 1000) in a production table"
	untagged   = "untagged row in a shadow table (shadow_tag is NULL)"
	emptyTag   = "untagged row in a shadow table (shadow_tag is empty)"
	belowRange = "ID below the shadow range (< 1000)"
)

func TestScan(t *testing.T) {
	tests := []struct {
		name       string
		ddl        string
		drill      string
		m          Markers
		wantTables []string
		want       []string // Leak.String()
		wantCounts map[string]int
		wantDrills []string // ScanReport.Drills; nil = none
		unchecked  []string // Problem.String() prefixes
	}{
		{
			name:  "clean",
			ddl:   cleanShop,
			drill: "d1",
			m:     Markers{IDOffset: 1000},
		},
		{
			name:  "every leak",
			ddl:   leakyShop,
			drill: "d1",
			m:     Markers{IDOffset: 1000},
			wantTables: []string{"audit_log", "events_20240101", "orders", "users",
				"shadow_events_20240101", "shadow_orders", "shadow_orphan", "shadow_users"},
			want: []string{
				"audit_log 7: " + drillRow,
				"orders 2: " + drillRow,
				"orders 3: row of drill other (not d1) in a production table",
				"orders 1001: " + inRange,
				"orders 1002: " + drillRow + "; " + inRange,
				"users 2000: " + inRange,
				"shadow_orders 5: " + belowRange,
				"shadow_orders 6: " + untagged + "; " + belowRange,
				"shadow_orders 1003: " + untagged,
				"shadow_orders 1004: " + emptyTag,
			},
			wantDrills: []string{"d1", "other"},
			unchecked:  []string{"users.shadow_tag: no such column", "shadow_users.shadow_tag: no such column"},
		},
		{
			name:  "no drill named",
			ddl:   leakyShop,
			drill: "",
			m:     Markers{IDOffset: 1000},
			want: []string{
				"audit_log 7: " + drillRow,
				"orders 2: " + drillRow,
				"orders 3: row of drill other in a production table",
				"orders 1001: " + inRange,
				"orders 1002: " + drillRow + "; " + inRange,
				"users 2000: " + inRange,
				"shadow_orders 5: " + belowRange,
				"shadow_orders 6: " + untagged + "; " + belowRange,
				"shadow_orders 1003: " + untagged,
				"shadow_orders 1004: " + emptyTag,
			},
			wantDrills: []string{"d1", "other"},
			unchecked:  []string{"users.shadow_tag: no such column", "shadow_users.shadow_tag: no such column"},
		},
		{
			name:  "tags only",
			ddl:   leakyShop,
			drill: "d1",
			m:     Markers{},
			want: []string{
				"audit_log 7: " + drillRow,
				"orders 2: " + drillRow,
				"orders 3: row of drill other (not d1) in a production table",
				"orders 1002: " + drillRow,
				"shadow_orders 6: " + untagged,
				"shadow_orders 1003: " + untagged,
				"shadow_orders 1004: " + emptyTag,
			},
			wantDrills: []string{"d1", "other"},
			unchecked:  []string{"users.shadow_tag: no such column", "shadow_users.shadow_tag: no such column"},
		},
		{
			name:  "listed rows capped, all counted",
			ddl:   leakyShop,
			drill: "d1",
			m:     Markers{IDOffset: 1000, MaxRows: 1},
			want: []string{
				"audit_log 7: " + drillRow,
				"orders 2: " + drillRow,
				"users 2000: " + inRange,
				"shadow_orders 5: " + belowRange,
			},
			wantCounts: map[string]int{"audit_log": 1, "orders": 4, "users": 1, "shadow_orders": 4},
			wantDrills: []string{"d1", "other"},
			unchecked:  []string{"users.shadow_tag: no such column", "shadow_users.shadow_tag: no such column"},
		},
		{
			name:       "tables given",
			ddl:        leakyShop,
			drill:      "d1",
			m:          Markers{IDOffset: 1000, Tables: []string{"orders", "payments"}},
			wantTables: []string{"orders", "shadow_orders"},
			want: []string{
				"orders 2: " + drillRow,
				"orders 3: row of drill other (not d1) in a production table",
				"orders 1001: " + inRange,
				"orders 1002: " + drillRow + "; " + inRange,
				"shadow_orders 5: " + belowRange,
				"shadow_orders 6: " + untagged + "; " + belowRange,
				"shadow_orders 1003: " + untagged,
				"shadow_orders 1004: " + emptyTag,
			},
			wantDrills: []string{"d1", "other"},
			unchecked:  []string{"payments: does not exist", "shadow_payments: does not exist"},
		},
		{
			// Daily tables named by a pattern are scanned with their twins;
			// a pattern that matches nothing is reported, not ignored.
			name:       "daily tables by pattern",
			ddl:        leakyShop + `; INSERT INTO shadow_events_20240101 VALUES (3, NULL); INSERT INTO events_20240101 VALUES (1002, 'd1')`,
			drill:      "d1",
			m:          Markers{IDOffset: 1000, Tables: []string{"events_*", "track_*"}},
			wantTables: []string{"events_20240101", "shadow_events_20240101"},
			want: []string{
				"events_20240101 1002: " + drillRow + "; " + inRange,
				"shadow_events_20240101 3: " + untagged + "; " + belowRange,
			},
			wantDrills: []string{"d1"},
			unchecked:  []string{"track_*: no production table matches"},
		},
		{
			// The audited drill left nothing, but production holds rows of
			// two other drills: a leak all the same, and both are named.
			name:  "another drill's rows",
			ddl:   cleanShop + `; INSERT INTO orders VALUES (3, 10, 'd0'), (4, 10, 'presale-2025'), (5, 10, 'd0')`,
			drill: "d1",
			m:     Markers{},
			want: []string{
				"orders 3: row of drill d0 (not d1) in a production table",
				"orders 4: row of drill presale-2025 (not d1) in a production table",
				"orders 5: row of drill d0 (not d1) in a production table",
			},
			wantDrills: []string{"d0", "presale-2025"},
		},
		{
			name: "IDs that are not integers",
			ddl: `CREATE TABLE carts (id TEXT, shadow_tag TEXT); CREATE TABLE shadow_carts (id TEXT, shadow_tag TEXT);
			      INSERT INTO carts VALUES ('abc', 'd1'); INSERT INTO shadow_carts VALUES ('5', 'd1')`,
			drill:      "d1",
			m:          Markers{IDOffset: 1000},
			want:       []string{"carts abc: " + drillRow},
			unchecked:  []string{"carts.id: type TEXT is not an integer", "shadow_carts.id: type TEXT is not an integer"},
			wantDrills: []string{"d1"},
		},
		{
			name:  "custom markers",
			ddl:   `CREATE TABLE orders (oid BIGINT, drill TEXT); CREATE TABLE orders_s (oid BIGINT, drill TEXT); INSERT INTO orders VALUES (1, 'd1'), (50, NULL); INSERT INTO orders_s VALUES (60, 'd1')`,
			drill: "d1",
			m:     Markers{IDOffset: 50, TagColumn: "drill", IDColumn: "oid", Tables: []string{"orders"}, Naming: shadowNaming("", "_s")},
			want: []string{
				"orders 1: " + drillRow,
				"orders 50: ID in the shadow range (≥ 50) in a production table",
			},
			wantDrills: []string{"d1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forEachDB(t, func(t *testing.T, db *sql.DB, _ string) {
				exec(t, db, tt.ddl)
				r, err := Scan(testCtx(t), db, tt.drill, tt.m)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, l := range r.Leaks {
					got = append(got, l.String())
				}
				if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
					t.Fatalf("leaks:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
				}
				wantCounts := tt.wantCounts
				if wantCounts == nil {
					wantCounts = map[string]int{}
					for _, l := range r.Leaks {
						wantCounts[l.Table]++
					}
				}
				if !reflect.DeepEqual(r.Counts, wantCounts) {
					t.Fatalf("counts %v, want %v", r.Counts, wantCounts)
				}
				if r.OK() != (len(tt.want) == 0) {
					t.Fatalf("OK() = %v with %d leaks", r.OK(), r.Total())
				}
				if !reflect.DeepEqual(r.Drills, tt.wantDrills) {
					t.Fatalf("drills in production %v, want %v", r.Drills, tt.wantDrills)
				}
				if tt.wantTables != nil && !reflect.DeepEqual(r.Tables, tt.wantTables) {
					t.Fatalf("scanned %v, want %v", r.Tables, tt.wantTables)
				}
				assertUnchecked(t, r.Unchecked, tt.unchecked)
			})
		})
	}
}

func assertUnchecked(t *testing.T, got []Problem, want []string) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = strings.HasPrefix(got[i].String(), want[i])
	}
	if !ok {
		t.Fatalf("unchecked:\n%s\nwant prefixes:\n  %s", problemList(got), strings.Join(want, "\n  "))
	}
}

func TestScanInvalidDrill(t *testing.T) {
	db, _ := openSQLite(t)
	if _, err := Scan(testCtx(t), db, "d 1", Markers{}); err == nil {
		t.Fatal("Scan accepted an invalid drill id")
	}
	if _, err := Scan(testCtx(t), db, "d1", Markers{IDOffset: -1}); err == nil {
		t.Fatal("Scan accepted a negative offset")
	}
}

func shadowNaming(prefix, suffix string) shadow.Naming {
	return shadow.Naming{Prefix: prefix, Suffix: suffix}
}

// TestScanOtherDrillNotOK: `shadow audit --drill d1` over a production
// table that holds only another drill's rows is not "ok": the text names
// the drill found.
func TestScanOtherDrillNotOK(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sql.DB, _ string) {
		exec(t, db, cleanShop+`; INSERT INTO orders VALUES (3, 10, 'd0')`)
		r, err := Scan(testCtx(t), db, "d1", Markers{IDOffset: 1000})
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		if err := r.WriteText(&b); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		if r.OK() || strings.Contains(out, "ok:") {
			t.Fatalf("audit of d1 says ok with a row of d0 in production:\n%s", out)
		}
		for _, want := range []string{"LEAK orders 3: row of drill d0 (not d1) in a production table", "rows of drills in production tables: d0"} {
			if !strings.Contains(out, want) {
				t.Errorf("report lacks %q:\n%s", want, out)
			}
		}
	})
}
