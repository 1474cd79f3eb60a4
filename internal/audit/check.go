package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/loadcap/loadcap/shadow"
)

// Problem is one thing wrong with a table.
type Problem struct {
	Table  string `json:"table"`            // the table it is in
	Column string `json:"column,omitempty"` // "" when it is about the whole table
	What   string `json:"what"`
}

func (p Problem) String() string {
	if p.Column == "" {
		return p.Table + ": " + p.What
	}
	return p.Table + "." + p.Column + ": " + p.What
}

// CheckReport is the result of Check.
type CheckReport struct {
	Tables   []string  // the production tables checked
	Problems []Problem // every problem found, table by table
}

// OK reports whether every table passed: no problems.
func (r *CheckReport) OK() bool { return len(r.Problems) == 0 }

// Check verifies, before a drill, that each production table in tables
// (patterns such as "track_*" stand for the tables they match, see
// IsPattern; one that matches nothing is a problem) has
// its shadow twin (named by naming; the zero Naming means
// shadow.DefaultTableNaming) with identical columns — names, types and
// nullability, in any order; types as declared in SQLite, as format_type
// gives them in PostgreSQL, as information_schema's COLUMN_TYPE in MySQL —
// and that the twin accepts writes. The write
// test is an INSERT of no row, in a transaction that is rolled back: it
// meets privileges and read-only databases or transactions, but no row
// trigger or constraint, and leaves nothing behind. Problems go in the
// report; the error is for failures to ask the database.
func Check(ctx context.Context, db *sql.DB, tables []string, naming shadow.Naming) (*CheckReport, error) {
	if len(tables) == 0 {
		return nil, errors.New("check: no tables given")
	}
	if naming == (shadow.Naming{}) {
		naming = shadow.DefaultTableNaming
	}
	d, err := dialectOf(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	r := &CheckReport{}
	tables, unmatched, err := expand(ctx, db, d, tables, naming)
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	for _, p := range unmatched {
		r.Problems = append(r.Problems, Problem{Table: p, What: "no production table matches"})
	}
	for _, table := range tables {
		r.Tables = append(r.Tables, table)
		problems, err := checkTable(ctx, db, d, table, naming.Shadow(table))
		if err != nil {
			return nil, fmt.Errorf("check %s: %w", table, err)
		}
		r.Problems = append(r.Problems, problems...)
	}
	return r, nil
}

func checkTable(ctx context.Context, db *sql.DB, d dialect, table, twin string) ([]Problem, error) {
	prodCols, err := columns(ctx, db, d, table)
	if err != nil {
		return nil, err
	}
	twinCols, err := columns(ctx, db, d, twin)
	if err != nil {
		return nil, err
	}
	var ps []Problem
	if prodCols == nil {
		ps = append(ps, Problem{Table: table, What: "production table does not exist"})
	}
	if twinCols == nil {
		ps = append(ps, Problem{Table: twin, What: "shadow twin of " + table + " does not exist"})
	}
	if prodCols == nil || twinCols == nil {
		return ps, nil
	}

	names := map[string]bool{}
	for _, c := range prodCols {
		names[c.name] = true
	}
	for _, c := range twinCols {
		names[c.name] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, n := range sorted {
		p, s := find(prodCols, n), find(twinCols, n)
		switch {
		case s == nil:
			ps = append(ps, Problem{Table: twin, Column: n, What: "missing (" + table + " has " + describe(p) + ")"})
		case p == nil:
			ps = append(ps, Problem{Table: twin, Column: n, What: "not in " + table})
		default:
			if s.typ != p.typ {
				ps = append(ps, Problem{Table: twin, Column: n, What: fmt.Sprintf("type %s, %s has %s", orNone(s.typ), table, orNone(p.typ))})
			}
			if s.notNull != p.notNull {
				ps = append(ps, Problem{Table: twin, Column: n, What: fmt.Sprintf("%s, %s has %s", nullability(s), table, nullability(p))})
			}
		}
	}
	if err := writeTest(ctx, db, d, twin, twinCols); err != nil {
		ps = append(ps, Problem{Table: twin, What: "not writable: " + err.Error()})
	}
	return ps, nil
}

// writeTest inserts no row into table, in a transaction it rolls back.
// MySQL checks privileges and read-only state (read_only, a read-only
// transaction) before it looks for rows, so an empty INSERT meets them all
// the same, in InnoDB and non-transactional engines alike.
func writeTest(ctx context.Context, db *sql.DB, d dialect, table string, cols []column) error {
	var target *column
	for i := range cols {
		if cols[i].writable {
			target = &cols[i]
			break
		}
	}
	if target == nil {
		return errors.New("no column an INSERT may name")
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	names, values, from := d.quoteIdent(target.name), "NULL", ""
	if d == mysqlDialect {
		// MySQL's strict mode refuses, before it reads a row, an INSERT
		// that leaves out a NOT NULL column without a default; and it wants
		// a FROM before a WHERE.
		var ns, vs []string
		for _, c := range cols {
			if c.writable {
				ns, vs = append(ns, d.quoteIdent(c.name)), append(vs, "NULL")
			}
		}
		names, values, from = strings.Join(ns, ", "), strings.Join(vs, ", "), " FROM DUAL"
	}
	_, err = tx.ExecContext(ctx, "INSERT INTO "+d.quote(table)+" ("+names+") SELECT "+values+from+" WHERE 1 = 0")
	return err
}

func describe(c *column) string { return strings.TrimSpace(orNone(c.typ) + " " + nullability(c)) }

func nullability(c *column) string {
	if c.notNull {
		return "NOT NULL"
	}
	return "NULL"
}

func orNone(typ string) string {
	if typ == "" {
		return "(no type)"
	}
	return typ
}
