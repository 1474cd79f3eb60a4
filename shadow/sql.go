package shadow

import (
	"context"
	"database/sql"
)

// DB routes database work by tag: tagged contexts to a shadow database (or
// a pool whose connections use a shadow schema), untagged ones to
// production. Tagged work never reaches the production *sql.DB; with no
// shadow database it is refused with an *IsolationError. DB does not read
// SQL, so table names are as the caller writes them. Safe for concurrent
// use.
type DB struct {
	p              *Policy
	prod, shadowDB *sql.DB
}

// DB returns a DB over the production database prod and the shadow
// database shadowDB (nil: tagged work is refused).
func (p *Policy) DB(prod, shadowDB *sql.DB) *DB {
	return &DB{p: p, prod: prod, shadowDB: shadowDB}
}

// Route returns the database ctx's work must use.
func (d *DB) Route(ctx context.Context) (*sql.DB, error) {
	drill, tagged := FromContext(ctx)
	if !tagged {
		return d.prod, nil
	}
	if d.shadowDB == nil {
		return nil, d.p.reject(drill, Resource{Kind: KindDatabase}, reasonNoShadowDB)
	}
	return d.shadowDB, nil
}

// ExecContext runs query on the database Route picks.
func (d *DB) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	db, err := d.Route(ctx)
	if err != nil {
		return nil, err
	}
	return db.ExecContext(ctx, query, args...)
}

// QueryContext runs query on the database Route picks.
func (d *DB) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	db, err := d.Route(ctx)
	if err != nil {
		return nil, err
	}
	return db.QueryContext(ctx, query, args...)
}

// QueryRowContext runs query on the database Route picks; a refusal comes
// out of Row.Scan.
func (d *DB) QueryRowContext(ctx context.Context, query string, args ...any) *Row {
	db, err := d.Route(ctx)
	if err != nil {
		return &Row{err: err}
	}
	return &Row{row: db.QueryRowContext(ctx, query, args...)}
}

// BeginTx starts a transaction on the database Route picks.
func (d *DB) BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error) {
	db, err := d.Route(ctx)
	if err != nil {
		return nil, err
	}
	return db.BeginTx(ctx, opts)
}

// Row is the result of DB.QueryRowContext, like *sql.Row.
type Row struct {
	row *sql.Row
	err error
}

// Scan copies the row's columns into dest, as sql.Row.Scan; it returns the
// refusal when the query was refused.
func (r *Row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	return r.row.Scan(dest...)
}

// Err returns the refusal or the query's error, as sql.Row.Err.
func (r *Row) Err() error {
	if r.err != nil {
		return r.err
	}
	return r.row.Err()
}
