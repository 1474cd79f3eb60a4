package shop

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/loadcap/loadcap/shadow"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

// Table names. Orders, payments and the daily event tables have shadow
// twins (shadow.DefaultTableNaming); products and users are read-only
// reference data, read by tagged and untagged requests alike.
const (
	tableProducts = "products"
	tableUsers    = "users"
	tableOrders   = "orders"
	tablePayments = "payments"
	eventsPrefix  = "events_" // + YYYYMMDD (UTC)
)

// Columns of the tables with twins. Every statement is written once, with
// $N placeholders, which both PostgreSQL and SQLite accept; database.bind
// turns them into MySQL's ?. Each $N appears once, in order.
const (
	ordersColumns = `(id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL, items BIGINT NOT NULL,
		total_cents BIGINT NOT NULL, status TEXT NOT NULL, created_ms BIGINT NOT NULL, shadow_tag TEXT)`
	paymentsColumns = `(id BIGINT PRIMARY KEY, order_id BIGINT NOT NULL, user_id BIGINT NOT NULL,
		amount_cents BIGINT NOT NULL, provider_ref TEXT NOT NULL, created_ms BIGINT NOT NULL, shadow_tag TEXT)`
	eventsColumns = `(id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL, kind TEXT NOT NULL,
		product_id BIGINT, at_ms BIGINT NOT NULL, shadow_tag TEXT)`
)

// database is the shop's SQL storage: PostgreSQL, MySQL (or MariaDB) or a
// SQLite file. SQLite gets one writer connection (it serialises writers
// anyway; one connection turns lock contention into a queue) and a pool of
// readers (WAL mode).
type database struct {
	kind      dbKind
	read      *sql.DB // queries
	write     *sql.DB // statements that write; == read for PostgreSQL and MySQL
	dsn       string  // for audit.Open and `loadcap shadow audit`
	tempDir   string  // removed at close
	schema    string  // dropped at close when drop (MySQL: a database)
	drop      bool
	adminDSN  string
	daysMu    sync.Mutex
	daysReady map[string]bool // daily tables known to exist
}

type dbKind int

const (
	sqliteDB dbKind = iota
	postgresDB
	mysqlDB
)

func openDatabase(ctx context.Context, c Config) (*database, error) {
	switch {
	case c.DSN == "":
		return openSQLite(ctx, c)
	case strings.HasPrefix(c.DSN, "mysql://"):
		return openMySQL(ctx, c)
	}
	return openPostgres(ctx, c)
}

func openPostgres(ctx context.Context, c Config) (*database, error) {
	if !strings.HasPrefix(c.DSN, "postgres://") && !strings.HasPrefix(c.DSN, "postgresql://") {
		return nil, errors.New("shop: DSN: want postgres://…, mysql://… (or none for SQLite)")
	}
	cc, err := pgx.ParseConfig(c.DSN)
	if err != nil {
		return nil, fmt.Errorf("shop: DSN: %w", err)
	}
	d := &database{kind: postgresDB, dsn: c.DSN, schema: c.Schema, drop: c.DropSchema, adminDSN: c.DSN, daysReady: map[string]bool{}}
	if c.Schema != "" {
		admin := stdlib.OpenDB(*cc.Copy())
		_, err := admin.ExecContext(ctx, `CREATE SCHEMA IF NOT EXISTS `+c.Schema)
		admin.Close()
		if err != nil && !isDuplicate(err) { // two processes creating it at once
			return nil, fmt.Errorf("shop: create schema %s: %w", c.Schema, err)
		}
		cc.RuntimeParams["search_path"] = c.Schema
		d.dsn = withQuery(c.DSN, "search_path="+c.Schema)
	}
	d.read = stdlib.OpenDB(*cc)
	d.read.SetMaxOpenConns(32)
	d.read.SetMaxIdleConns(32)
	d.write = d.read
	if err := d.read.PingContext(ctx); err != nil {
		d.close()
		return nil, fmt.Errorf("shop: connect to PostgreSQL: %w", err)
	}
	return d, nil
}

// openMySQL opens the MySQL or MariaDB database of c.DSN,
// mysql://USER:PASS@HOST:PORT/DB, or with c.Schema the database of that
// name on the same server, created when missing (utf8mb4, so that event
// kinds in any script are stored as sent).
func openMySQL(ctx context.Context, c Config) (*database, error) {
	cfg, err := mysqlConfig(c.DSN)
	if err != nil {
		return nil, err
	}
	d := &database{kind: mysqlDB, dsn: c.DSN, schema: c.Schema, drop: c.DropSchema, adminDSN: c.DSN, daysReady: map[string]bool{}}
	if c.Schema != "" {
		admin, err := openMySQLConfig(cfg)
		if err != nil {
			return nil, err
		}
		_, err = admin.ExecContext(ctx, `CREATE DATABASE IF NOT EXISTS `+c.Schema+` CHARACTER SET utf8mb4`)
		admin.Close()
		if err != nil {
			return nil, fmt.Errorf("shop: create database %s: %w", c.Schema, err)
		}
		cfg = cfg.Clone()
		cfg.DBName = c.Schema
		u, _ := url.Parse(c.DSN) // parsed by mysqlConfig already
		u.Path = "/" + c.Schema
		d.dsn = u.String()
	}
	if d.read, err = openMySQLConfig(cfg); err != nil {
		return nil, err
	}
	d.read.SetMaxOpenConns(32)
	d.read.SetMaxIdleConns(32)
	d.write = d.read
	if err := d.read.PingContext(ctx); err != nil {
		d.close()
		return nil, fmt.Errorf("shop: connect to MySQL: %w", err)
	}
	return d, nil
}

func openMySQLConfig(cfg *mysql.Config) (*sql.DB, error) {
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("shop: DSN: %w", err)
	}
	return sql.OpenDB(conn), nil
}

// mysqlConfig turns mysql://USER[:PASS]@HOST[:PORT]/DB[?PARAMS] into the
// driver's configuration, as loadcap shadow check|audit read it.
func mysqlConfig(dsn string) (*mysql.Config, error) {
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" || u.User == nil || strings.Trim(u.Path, "/") == "" {
		return nil, errors.New("shop: DSN: want mysql://USER:PASS@HOST:PORT/DB")
	}
	cfg, err := mysql.ParseDSN("/?" + u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("shop: DSN: %w", err)
	}
	cfg.User = u.User.Username()
	cfg.Passwd, _ = u.User.Password()
	cfg.Net, cfg.Addr, cfg.DBName = "tcp", u.Host, strings.Trim(u.Path, "/")
	if u.Port() == "" {
		cfg.Addr = net.JoinHostPort(u.Hostname(), "3306")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	return cfg, nil
}

// bind returns q, written with $N placeholders, in the database's dialect:
// MySQL's placeholders are all ?, so each $N (used once, in order) becomes
// one.
func (d *database) bind(q string) string {
	if d.kind != mysqlDB || !strings.Contains(q, "$") {
		return q
	}
	var b strings.Builder
	for i := 0; i < len(q); i++ {
		if q[i] == '$' && i+1 < len(q) && q[i+1] >= '0' && q[i+1] <= '9' {
			b.WriteByte('?')
			for i+1 < len(q) && q[i+1] >= '0' && q[i+1] <= '9' {
				i++
			}
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// withQuery appends a query parameter to a URL DSN.
func withQuery(dsn, kv string) string {
	if strings.Contains(dsn, "?") {
		return dsn + "&" + kv
	}
	return dsn + "?" + kv
}

func openSQLite(ctx context.Context, c Config) (*database, error) {
	d := &database{daysReady: map[string]bool{}}
	dir := c.Dir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "loadcap-shop-"); err != nil {
			return nil, fmt.Errorf("shop: %w", err)
		}
		d.tempDir = dir
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("shop: %w", err)
	}
	path := filepath.Join(dir, "shop.db")
	d.dsn = "sqlite:" + path
	name := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	var err error
	if d.write, err = sql.Open("sqlite", name); err != nil {
		d.close()
		return nil, fmt.Errorf("shop: open %s: %w", path, err)
	}
	d.write.SetMaxOpenConns(1)
	if d.read, err = sql.Open("sqlite", name); err != nil {
		d.close()
		return nil, fmt.Errorf("shop: open %s: %w", path, err)
	}
	d.read.SetMaxOpenConns(4)
	d.read.SetMaxIdleConns(4)
	if err := d.write.PingContext(ctx); err != nil {
		d.close()
		return nil, fmt.Errorf("shop: open %s: %w", path, err)
	}
	return d, nil
}

func (d *database) close() error {
	var errs []error
	if d.write != nil && d.write != d.read {
		errs = append(errs, d.write.Close())
	}
	if d.read != nil {
		errs = append(errs, d.read.Close())
	}
	if d.drop && d.schema != "" {
		if d.kind == mysqlDB {
			errs = append(errs, dropMySQLDatabase(d.adminDSN, d.schema))
		} else {
			errs = append(errs, dropSchema(d.adminDSN, d.schema))
		}
	}
	if d.tempDir != "" {
		errs = append(errs, os.RemoveAll(d.tempDir))
	}
	return errors.Join(errs...)
}

func dropSchema(dsn, schema string) error {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Exec(`DROP SCHEMA IF EXISTS ` + schema + ` CASCADE`); err != nil {
		return fmt.Errorf("shop: drop schema %s: %w", schema, err)
	}
	return nil
}

func dropMySQLDatabase(dsn, name string) error {
	cfg, err := mysqlConfig(dsn)
	if err != nil {
		return err
	}
	db, err := openMySQLConfig(cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Exec(`DROP DATABASE IF EXISTS ` + name); err != nil {
		return fmt.Errorf("shop: drop database %s: %w", name, err)
	}
	return nil
}

// isDuplicate reports whether err says that what was being created exists
// already (a race between two processes creating the same thing).
func isDuplicate(err error) bool {
	s := err.Error()
	return strings.Contains(s, "already exists") || strings.Contains(s, "duplicate key") ||
		strings.Contains(s, "UNIQUE constraint")
}

// migrate creates the tables that are missing, with their twins, and seeds
// the reference data when it is empty.
func (d *database) migrate(ctx context.Context, products, users int) error {
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS ` + tableProducts + ` (id BIGINT PRIMARY KEY, name TEXT NOT NULL, price_cents BIGINT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS ` + tableUsers + ` (id BIGINT PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL)`,
	}
	for _, t := range []struct{ name, cols string }{{tableOrders, ordersColumns}, {tablePayments, paymentsColumns}} {
		for _, n := range []string{t.name, shadow.DefaultTableNaming.Shadow(t.name)} {
			stmts = append(stmts, `CREATE TABLE IF NOT EXISTS `+n+` `+t.cols)
		}
	}
	for _, s := range stmts {
		if err := d.execRetry(ctx, s); err != nil {
			return fmt.Errorf("shop: create tables: %w", err)
		}
	}
	if err := d.seed(ctx, tableProducts, products, func(i int) []any {
		return []any{int64(i), fmt.Sprintf("Product %d", i), int64(100 + (i*7919)%9900)}
	}); err != nil {
		return err
	}
	return d.seed(ctx, tableUsers, users, func(i int) []any {
		return []any{int64(i), fmt.Sprintf("User %d", i), fmt.Sprintf("user%d@shop.test", i)}
	})
}

// execRetry runs a CREATE statement, once more when another process
// created the same thing at the same moment (PostgreSQL reports that race
// as a unique violation even with IF NOT EXISTS).
func (d *database) execRetry(ctx context.Context, stmt string) error {
	_, err := d.write.ExecContext(ctx, stmt)
	if err != nil && isDuplicate(err) {
		_, err = d.write.ExecContext(ctx, stmt)
	}
	return err
}

// seed fills table with rows 1..n of three columns when it is empty.
func (d *database) seed(ctx context.Context, table string, n int, row func(i int) []any) error {
	var count int64
	if err := d.write.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table).Scan(&count); err != nil {
		return fmt.Errorf("shop: seed %s: %w", table, err)
	}
	if count > 0 {
		return nil
	}
	const batch = 100
	for lo := 1; lo <= n; lo += batch {
		hi := min(lo+batch-1, n)
		var b strings.Builder
		args := make([]any, 0, 3*(hi-lo+1))
		if d.kind == mysqlDB {
			b.WriteString(`INSERT IGNORE INTO ` + table + ` VALUES `) // MySQL has no ON CONFLICT
		} else {
			b.WriteString(`INSERT INTO ` + table + ` VALUES `)
		}
		for i := lo; i <= hi; i++ {
			if i > lo {
				b.WriteByte(',')
			}
			k := len(args)
			fmt.Fprintf(&b, "($%d, $%d, $%d)", k+1, k+2, k+3)
			args = append(args, row(i)...)
		}
		if d.kind != mysqlDB {
			b.WriteString(` ON CONFLICT (id) DO NOTHING`)
		}
		if _, err := d.write.ExecContext(ctx, d.bind(b.String()), args...); err != nil {
			return fmt.Errorf("shop: seed %s: %w", table, err)
		}
	}
	return nil
}

// eventsTable returns the production daily table of day (YYYYMMDD),
// creating it and its twin on first use.
func (d *database) eventsTable(ctx context.Context, day string) (string, error) {
	name := eventsPrefix + day
	d.daysMu.Lock()
	defer d.daysMu.Unlock()
	if d.daysReady[name] {
		return name, nil
	}
	for _, n := range []string{name, shadow.DefaultTableNaming.Shadow(name)} {
		if err := d.execRetry(ctx, `CREATE TABLE IF NOT EXISTS `+n+` `+eventsColumns); err != nil {
			return "", fmt.Errorf("create %s: %w", n, err)
		}
	}
	d.daysReady[name] = true
	return name, nil
}

// maxID returns the largest id in table, 0 when it is empty.
func (d *database) maxID(ctx context.Context, table string) (int64, error) {
	var n sql.NullInt64
	err := d.write.QueryRowContext(ctx, `SELECT MAX(id) FROM `+table).Scan(&n)
	return n.Int64, err
}

// tables lists the tables of the shop's schema, sorted.
func (d *database) tables(ctx context.Context) ([]string, error) {
	q := `SELECT name FROM sqlite_master WHERE type = 'table'`
	switch d.kind {
	case postgresDB:
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`
	case mysqlDB:
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'`
	}
	rows, err := d.read.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	sort.Strings(names)
	return names, rows.Err()
}

// twinned returns the production tables among names that have a twin.
func twinned(names []string) []string {
	has := map[string]bool{}
	for _, n := range names {
		has[n] = true
	}
	var out []string
	for _, n := range names {
		if _, isTwin := shadow.DefaultTableNaming.Real(n); !isTwin && has[shadow.DefaultTableNaming.Shadow(n)] {
			out = append(out, n)
		}
	}
	return out
}
