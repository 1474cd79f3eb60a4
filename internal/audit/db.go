// Package audit checks a database before a drill and audits it afterwards:
// Check (`loadcap shadow check`) verifies that every production table has a
// writable shadow twin with the same columns; Scan (`loadcap shadow audit`)
// finds rows that leaked, drill rows in production tables and production
// rows in shadow tables, by the markers described in package shadow.
//
// PostgreSQL (through pgx) and SQLite (modernc.org/sqlite) are supported;
// the dialect is found from the *sql.DB. Tables are looked up as named
// (quoted, so case-sensitive in PostgreSQL); "schema.table" names work, and
// discovery looks at the current schema only. Nothing here writes: Check's
// write test inserts no row, in a transaction it rolls back.
package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"
)

// Open opens and pings the database at dsn: "postgres://…" or
// "postgresql://…" (PostgreSQL), "sqlite:PATH", "file:PATH[?…]" or a path
// ending in ".db" (SQLite). A SQLite file must exist; Open does not create
// one.
func Open(ctx context.Context, dsn string) (*sql.DB, error) {
	driver, name, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open(driver, name)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", redact(dsn), err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", redact(dsn), err)
	}
	return db, nil
}

// parseDSN returns the database/sql driver and data source name for dsn.
func parseDSN(dsn string) (driver, name string, err error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return "pgx", dsn, nil
	case strings.HasPrefix(dsn, "sqlite:"):
		name = strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite:"), "//") // sqlite:///abs/path too
	case strings.HasPrefix(dsn, "file:"):
		name = dsn
	default:
		path, _, _ := strings.Cut(dsn, "?")
		if !strings.HasSuffix(path, ".db") {
			return "", "", fmt.Errorf("database %q: want postgres://…, postgresql://…, sqlite:PATH, file:PATH or PATH.db", redact(dsn))
		}
		name = dsn
	}
	if path := sqlitePath(name); path != "" {
		if _, err := os.Stat(path); err != nil {
			return "", "", fmt.Errorf("database %s: %w", dsn, err)
		}
	}
	return "sqlite", name, nil
}

// sqlitePath is the file a SQLite name opens, "" for in-memory databases.
func sqlitePath(name string) string {
	path, query, _ := strings.Cut(name, "?")
	if strings.Contains(query, "mode=memory") {
		return ""
	}
	if p, ok := strings.CutPrefix(path, "file:"); ok {
		path = p
		if strings.HasPrefix(path, "///") { // file:///abs/path
			path = path[2:]
		}
	}
	if path == "" || path == ":memory:" {
		return ""
	}
	return path
}

// redact hides a password in a URL DSN.
func redact(dsn string) string {
	scheme, rest, ok := strings.Cut(dsn, "://")
	if !ok {
		return dsn
	}
	auth, host, ok := strings.Cut(rest, "@")
	if !ok {
		return dsn
	}
	if user, _, hasPass := strings.Cut(auth, ":"); hasPass {
		return scheme + "://" + user + ":xxxxx@" + host
	}
	return dsn
}

type dialect int

const (
	sqliteDialect dialect = iota + 1
	postgresDialect
)

// dialectOf tells the database's dialect from its driver, or by asking it.
func dialectOf(ctx context.Context, db *sql.DB) (dialect, error) {
	switch db.Driver().(type) {
	case *stdlib.Driver:
		return postgresDialect, nil
	case *sqlite.Driver:
		return sqliteDialect, nil
	}
	var s string
	if db.QueryRowContext(ctx, `SELECT sqlite_version()`).Scan(&s) == nil {
		return sqliteDialect, nil
	}
	if db.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&s) == nil {
		return postgresDialect, nil
	}
	return 0, errors.New("unsupported database: neither PostgreSQL nor SQLite")
}

// arg is the placeholder of the i-th (from 1) query argument.
func (d dialect) arg(i int) string {
	if d == postgresDialect {
		return "$" + strconv.Itoa(i)
	}
	return "?"
}

// quote quotes a table name; "a.b" is schema a, table b.
func quote(table string) string {
	parts := strings.Split(table, ".")
	for i, p := range parts {
		parts[i] = quoteIdent(p)
	}
	return strings.Join(parts, ".")
}

// quoteIdent quotes one identifier, a column name.
func quoteIdent(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// column is one column of a table as the database declares it.
type column struct {
	name     string
	typ      string // normalized: upper case, single spaces
	notNull  bool
	writable bool // not generated (an INSERT may name it)
}

// columns returns the columns of table in declaration order, nil when the
// table does not exist.
func columns(ctx context.Context, db *sql.DB, d dialect, table string) ([]column, error) {
	var rows *sql.Rows
	var err error
	if d == postgresDialect {
		rows, err = db.QueryContext(ctx, `
			SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
			       a.attgenerated = '' AND a.attidentity <> 'a'
			FROM pg_catalog.pg_attribute a
			WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
			ORDER BY a.attnum`, quote(table))
	} else {
		schema, name, qualified := strings.Cut(table, ".")
		if !qualified {
			schema, name = "main", table
		}
		rows, err = db.QueryContext(ctx, `SELECT name, type, "notnull" FROM pragma_table_info(?, ?) ORDER BY cid`, name, schema)
	}
	if err != nil {
		return nil, fmt.Errorf("columns of %s: %w", table, err)
	}
	defer rows.Close()
	var cols []column
	for rows.Next() {
		c := column{writable: true}
		dest := []any{&c.name, &c.typ, &c.notNull}
		if d == postgresDialect {
			dest = append(dest, &c.writable)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("columns of %s: %w", table, err)
		}
		c.typ = strings.ToUpper(strings.Join(strings.Fields(c.typ), " "))
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("columns of %s: %w", table, err)
	}
	return cols, nil
}

// tables lists the base tables of the current schema, sorted.
func tables(ctx context.Context, db *sql.DB, d dialect) ([]string, error) {
	q := `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY name`
	if d == postgresDialect {
		q = `SELECT table_name FROM information_schema.tables
		     WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name`
	}
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("list tables: %w", err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	return names, nil
}

// find returns the column named name (case-insensitively, as both
// databases match unquoted names), or nil.
func find(cols []column, name string) *column {
	for i := range cols {
		if strings.EqualFold(cols[i].name, name) {
			return &cols[i]
		}
	}
	return nil
}

// integer reports whether a column of type typ holds whole numbers that
// compare as numbers with the ID offset.
func (d dialect) integer(typ string) bool {
	if d == postgresDialect {
		switch {
		case typ == "SMALLINT", typ == "INTEGER", typ == "BIGINT", strings.HasPrefix(typ, "NUMERIC"):
			return true
		}
		return false
	}
	return strings.Contains(typ, "INT") // SQLite's INTEGER affinity rule
}
