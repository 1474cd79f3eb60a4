package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/loadcap/loadcap/internal/audit"
	"github.com/loadcap/loadcap/internal/cli"
	"github.com/loadcap/loadcap/shadow"
)

// isolationTimeout bounds a check or an audit against a database.
const isolationTimeout = 10 * time.Minute

type namingFlags struct{ prefix, suffix string }

func (n *namingFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&n.prefix, "shadow-prefix", shadow.DefaultTableNaming.Prefix, "a shadow twin's name is prefix + table + suffix (a schema works: 'shadow.')")
	cmd.Flags().StringVar(&n.suffix, "shadow-suffix", shadow.DefaultTableNaming.Suffix, "see --shadow-prefix")
}

func (n *namingFlags) naming() shadow.Naming {
	return shadow.Naming{Prefix: n.prefix, Suffix: n.suffix}
}

func shadowIsolationCmds(st *state) []*cobra.Command {
	return []*cobra.Command{newCheckCmd(st), newAuditCmd(st)}
}

func newCheckCmd(st *state) *cobra.Command {
	var (
		dsn    string
		tables []string
		nf     namingFlags
	)
	cmd := &cobra.Command{
		Use:   "check --dsn DSN --tables orders,payments,...",
		Short: "Pre-flight: every production table has a writable shadow twin with the same columns (exit 106 if not)",
		Long: `Before a drill, verify that each production table has its shadow twin (shadow_<table> by default),
with identical columns (name, type, nullability) and writable: an INSERT of no rows inside a
transaction that is rolled back. Nothing is written. DSN: postgres://..., mysql://USER:PASS@HOST:PORT/DB
(MySQL or MariaDB) or sqlite:PATH.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dsn == "" || len(tables) == 0 {
				return usageErr("--dsn and --tables are required")
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), isolationTimeout)
			defer cancel()
			db, err := audit.Open(ctx, dsn)
			if err != nil {
				return err
			}
			defer db.Close()
			rep, err := audit.Check(ctx, db, tables, nf.naming())
			if err != nil {
				return err
			}
			for _, p := range rep.Problems {
				fmt.Fprintln(st.stdout, p)
			}
			if !rep.OK() {
				return cli.WithCode(cli.ExitIsolation, fmt.Errorf("isolation check failed: %d problems in %d tables", len(rep.Problems), len(rep.Tables)))
			}
			fmt.Fprintf(st.stdout, "ok: %d tables have writable shadow twins with the same columns (%s)\n", len(rep.Tables), strings.Join(rep.Tables, ", "))
			return nil
		},
	}
	cmd.Flags().StringVar(&dsn, "dsn", "", "the database: postgres://user@host/db, mysql://user:pass@host:port/db or sqlite:PATH")
	cmd.Flags().StringSliceVar(&tables, "tables", nil, "production tables to check; PREFIX* stands for every table it matches, such as daily tables (track_*)")
	nf.add(cmd)
	return cmd
}

func newAuditCmd(st *state) *cobra.Command {
	var (
		dsn    string
		drill  string
		m      audit.Markers
		nf     namingFlags
		strict bool
	)
	cmd := &cobra.Command{
		Use:   "audit --dsn DSN --drill ID",
		Short: "After a drill: no drill row in production tables, no production row in shadow tables (exit 106 on a leak)",
		Long: `Scan production tables for rows carrying the drill's markers (the tag column equal to the drill id,
or an ID in the shadow range) and shadow tables for rows without them. Every leak is printed;
any leak exits 106. Tables that cannot be checked (no tag column, a non-integer ID) are listed;
--strict makes them exit 106 too. With no --tables, every table of the current schema (MySQL: the
DSN's database) with a twin or a tag column is scanned, daily tables such as track_20261111 among them.
DSN: postgres://..., mysql://USER:PASS@HOST:PORT/DB (MySQL or MariaDB) or sqlite:PATH.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dsn == "" {
				return usageErr("--dsn is required")
			}
			if drill != "" {
				if err := shadow.ValidateTag(drill); err != nil {
					return cli.WithCode(cli.ExitUsage, fmt.Errorf("--drill: %w", err))
				}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), isolationTimeout)
			defer cancel()
			db, err := audit.Open(ctx, dsn)
			if err != nil {
				return err
			}
			defer db.Close()
			m.Naming = nf.naming()
			rep, err := audit.Scan(ctx, db, drill, m)
			if err != nil {
				return err
			}
			if err := rep.WriteText(st.stdout); err != nil {
				return err
			}
			switch {
			case !rep.OK():
				return cli.WithCode(cli.ExitIsolation, fmt.Errorf("audit: %d leaking rows in %d tables scanned", rep.Total(), len(rep.Tables)))
			case strict && len(rep.Unchecked) > 0:
				return cli.WithCode(cli.ExitIsolation, errors.New("audit: some tables could not be checked (--strict)"))
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&dsn, "dsn", "", "the database: postgres://user@host/db, mysql://user:pass@host:port/db or sqlite:PATH")
	fl.StringVar(&drill, "drill", "", `the drill audited; a row of any drill in a production table is a leak, named in the report`)
	fl.StringSliceVar(&m.Tables, "tables", nil, "production tables to scan, with their twins; PREFIX* stands for every table it matches (default: discovered)")
	fl.StringVar(&m.TagColumn, "tag-column", shadow.TagColumn, "the column holding the drill id in shadow rows")
	fl.StringVar(&m.IDColumn, "id-column", audit.DefaultIDColumn, "the row ID column")
	fl.Int64Var(&m.IDOffset, "id-offset", 0, "shadow IDs are at least this; production IDs below (0: no ID checks)")
	fl.IntVar(&m.MaxRows, "max-rows", 0, "leaks listed per table (all are counted; 0 = the default)")
	fl.BoolVar(&strict, "strict", false, "exit 106 when a table could not be checked")
	nf.add(cmd)
	return cmd
}
