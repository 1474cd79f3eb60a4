// Package audit checks a database before a drill and audits it afterwards:
// Check (`loadcap shadow check`) verifies that every production table has a
// writable shadow twin with the same columns; Scan (`loadcap shadow audit`)
// finds rows that leaked, drill rows in production tables and production
// rows in shadow tables, by the markers described in package shadow.
//
// PostgreSQL (through pgx), MySQL and MariaDB (go-sql-driver/mysql) and
// SQLite (modernc.org/sqlite) are supported; the dialect is found from the
// *sql.DB. Tables are looked up as named (quoted, so case-sensitive in
// PostgreSQL, and in MySQL where its file system is); "schema.table" names
// work (in MySQL the schema is the database), and discovery looks at the
// current schema (MySQL: the current database) only. Nothing here writes:
// Check's write test inserts no row, in a transaction it rolls back.
package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"

	"github.com/loadcap/loadcap/shadow"
)

// Open opens and pings the database at dsn: "postgres://…" or
// "postgresql://…" (PostgreSQL), "mysql://USER:PASS@HOST:PORT/DB[?…]"
// (MySQL or MariaDB; see MySQLConfig), "sqlite:PATH", "file:PATH[?…]" or a
// path ending in ".db" (SQLite). A SQLite file must exist; Open does not
// create one.
func Open(ctx context.Context, dsn string) (*sql.DB, error) {
	var db *sql.DB
	if strings.HasPrefix(dsn, "mysql://") {
		// Through a connector: the configuration is not formatted into the
		// driver's DSN syntax and parsed again, where a password's '@' or
		// '/' could be read differently.
		c, err := MySQLConfig(dsn)
		if err != nil {
			return nil, err
		}
		conn, err := mysql.NewConnector(c)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", redact(dsn), err)
		}
		db = sql.OpenDB(conn)
	} else {
		driver, name, err := parseDSN(dsn)
		if err != nil {
			return nil, err
		}
		if db, err = sql.Open(driver, name); err != nil {
			return nil, fmt.Errorf("open %s: %w", redact(dsn), err)
		}
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", redact(dsn), err)
	}
	return db, nil
}

// parseDSN returns the database/sql driver and data source name for dsn,
// any but mysql://.
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
			return "", "", fmt.Errorf("database %q: want postgres://…, postgresql://…, mysql://…, sqlite:PATH, file:PATH or PATH.db", redact(dsn))
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

// MySQLConfig turns a URL, mysql://USER[:PASS]@HOST[:PORT]/DB[?PARAMS],
// into the driver's configuration: TCP to HOST:PORT (3306 by default), DB
// the current database (required: discovery and unqualified names need
// one). USER and PASS are URL-encoded where they hold reserved characters;
// PARAMS are the driver's (tls=true, timeout=5s, …) or system variables
// set on each connection. The connect timeout is 10 s unless PARAMS set
// one.
func MySQLConfig(dsn string) (*mysql.Config, error) {
	bad := func(what string) error {
		return fmt.Errorf("database %s: %s (want mysql://USER:PASS@HOST:PORT/DB)", redact(dsn), what)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return nil, bad("not a URL")
	}
	if u.Scheme != "mysql" || u.Host == "" || u.Opaque != "" {
		return nil, bad("no host")
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" || strings.Contains(db, "/") {
		return nil, bad("no database")
	}
	if u.User == nil || u.User.Username() == "" {
		return nil, bad("no user")
	}
	c, err := mysql.ParseDSN("/?" + u.RawQuery)
	if err != nil {
		return nil, bad(err.Error())
	}
	c.User = u.User.Username()
	c.Passwd, _ = u.User.Password()
	c.Net = "tcp"
	c.Addr = u.Host
	if u.Port() == "" {
		c.Addr = net.JoinHostPort(u.Hostname(), "3306")
	}
	c.DBName = db
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	return c, nil
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
	mysqlDialect
)

// dialectOf tells the database's dialect from its driver, or by asking it.
func dialectOf(ctx context.Context, db *sql.DB) (dialect, error) {
	switch db.Driver().(type) {
	case *stdlib.Driver:
		return postgresDialect, nil
	case *sqlite.Driver:
		return sqliteDialect, nil
	case *mysql.MySQLDriver:
		return mysqlDialect, nil
	}
	var s string
	if db.QueryRowContext(ctx, `SELECT sqlite_version()`).Scan(&s) == nil {
		return sqliteDialect, nil
	}
	if db.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&s) == nil {
		return postgresDialect, nil
	}
	if db.QueryRowContext(ctx, `SELECT @@version_comment`).Scan(&s) == nil {
		return mysqlDialect, nil
	}
	return 0, errors.New("unsupported database: neither PostgreSQL, MySQL nor SQLite")
}

// arg is the placeholder of the i-th (from 1) query argument.
func (d dialect) arg(i int) string {
	if d == postgresDialect {
		return "$" + strconv.Itoa(i)
	}
	return "?"
}

// quote quotes a table name; "a.b" is schema a, table b.
func (d dialect) quote(table string) string {
	parts := strings.Split(table, ".")
	for i, p := range parts {
		parts[i] = d.quoteIdent(p)
	}
	return strings.Join(parts, ".")
}

// quoteIdent quotes one identifier, a column name: in backticks for MySQL
// (double quotes are strings there unless ANSI_QUOTES is set), in double
// quotes for the others.
func (d dialect) quoteIdent(name string) string {
	if d == mysqlDialect {
		return "`" + strings.ReplaceAll(name, "`", "``") + "`"
	}
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

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
	switch d {
	case postgresDialect:
		rows, err = db.QueryContext(ctx, `
			SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
			       a.attgenerated = '' AND a.attidentity <> 'a'
			FROM pg_catalog.pg_attribute a
			WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
			ORDER BY a.attnum`, d.quote(table))
	case mysqlDialect:
		// COLUMN_TYPE keeps lengths and UNSIGNED ("varchar(20)", "bigint(20)
		// unsigned"); GENERATION_EXPRESSION is '' in MySQL and NULL in
		// MariaDB for ordinary columns.
		var schema sql.NullString
		name := table
		if s, n, qualified := strings.Cut(table, "."); qualified {
			schema, name = sql.NullString{String: s, Valid: true}, n
		}
		rows, err = db.QueryContext(ctx, `
			SELECT column_name, column_type, is_nullable = 'NO', COALESCE(generation_expression, '') = ''
			FROM information_schema.columns
			WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ?
			ORDER BY ordinal_position`, schema, name)
	default:
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
		if d != sqliteDialect {
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

// tables lists the base tables of the current schema, sorted (bytewise,
// whatever the database's collation).
func tables(ctx context.Context, db *sql.DB, d dialect) ([]string, error) {
	var q string
	switch d {
	case postgresDialect:
		q = `SELECT table_name FROM information_schema.tables
		     WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`
	case mysqlDialect:
		q = `SELECT table_name FROM information_schema.tables
		     WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'`
	default:
		q = `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\'`
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
	sort.Strings(names)
	return names, nil
}

// IsPattern reports whether a table name given to Check or Scan is a
// pattern: a prefix and a final '*' ("track_*"), which stands for every
// production table of the current schema whose name starts with the
// prefix: the daily tables of a tracking path (track_20261111, …), whose
// names a drill plan cannot know in advance.
func IsPattern(table string) bool { return strings.HasSuffix(table, "*") }

// expand replaces each pattern among names by the production tables it
// matches, sorted, in its place: the production tables of the current
// schema, and the production names of the twins there (so that a twin
// whose production table is missing is still reported). unmatched are
// the patterns that matched nothing. Names appear once.
func expand(ctx context.Context, db *sql.DB, d dialect, names []string, naming shadow.Naming) (out, unmatched []string, err error) {
	var all []string
	seen := map[string]bool{}
	add := func(n string) {
		if n != "" && !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	for _, n := range names {
		if !IsPattern(n) {
			add(n)
			continue
		}
		if all == nil {
			if all, err = tables(ctx, db, d); err != nil {
				return nil, nil, err
			}
		}
		prefix := strings.TrimSuffix(n, "*")
		var match []string
		for _, t := range all {
			if real, isTwin := naming.Real(t); isTwin {
				t = real
			}
			if strings.HasPrefix(t, prefix) {
				match = append(match, t)
			}
		}
		if len(match) == 0 {
			unmatched = append(unmatched, n)
		}
		sort.Strings(match)
		for _, t := range match {
			add(t)
		}
	}
	return out, unmatched, nil
}

// find returns the column named name (case-insensitively, as the
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
	if d == mysqlDialect { // TINYINT … BIGINT, with a display width or UNSIGNED; DECIMAL(M,0)
		base, _, _ := strings.Cut(typ, "(")
		base, _, _ = strings.Cut(base, " ")
		switch base {
		case "TINYINT", "SMALLINT", "MEDIUMINT", "INT", "BIGINT":
			return true
		case "DECIMAL":
			return strings.Contains(typ, ",0)")
		}
		return false
	}
	return strings.Contains(typ, "INT") // SQLite's INTEGER affinity rule
}
