package audit

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/loadcap/loadcap/shadow"
)

// Defaults of Markers.
const (
	DefaultIDColumn = "id"
	DefaultMaxRows  = 1000
)

// Markers says how rows written by tagged work are recognised (package
// shadow, "Markers in stored data") and which tables to scan.
type Markers struct {
	TagColumn string        // holds the drill id; "" = shadow.TagColumn ("shadow_tag")
	IDColumn  string        // the row's ID, also the key in leak reports; "" = DefaultIDColumn
	IDOffset  int64         // shadow IDs are ≥ IDOffset, production IDs below; 0 = no ID checks
	Naming    shadow.Naming // shadow table names; zero = shadow.DefaultTableNaming
	// Tables are the production tables to scan, with their twins;
	// patterns such as "track_*" stand for the tables they match (see
	// IsPattern; one that matches nothing is listed as unchecked). Nil:
	// every table of the current schema with a twin or a tag column, and
	// every table named as a twin.
	Tables  []string
	MaxRows int // leaks listed per table (all are counted); 0 = DefaultMaxRows, < 0 = no limit
}

// Leak is one row where it must not be.
type Leak struct {
	Table string `json:"table"`
	Key   string `json:"key,omitempty"` // the row's ID column value; "" when the table has no ID column
	Why   string `json:"why"`
}

func (l Leak) String() string {
	if l.Key == "" {
		return l.Table + ": " + l.Why
	}
	return l.Table + " " + l.Key + ": " + l.Why
}

// ScanReport is the result of Scan.
type ScanReport struct {
	Drill     string         // the drill audited ("" = none named); rows of every drill count
	Drills    []string       // drill ids found in production tables, sorted: any one is a leak
	Tables    []string       // tables scanned, production and shadow
	Leaks     []Leak         // leaking rows, at most MaxRows per table, by table then ID
	Counts    map[string]int // leaking rows per table, including those not listed
	Unchecked []Problem      // tables, or markers of tables, that could not be checked
}

// Total is the number of leaking rows found.
func (r *ScanReport) Total() int {
	n := 0
	for _, c := range r.Counts {
		n += c
	}
	return n
}

// OK reports whether no leak was found. Unchecked tables do not count.
func (r *ScanReport) OK() bool { return r.Total() == 0 }

// Scan is the audit after a drill: it reports every row that leaked.
//
//   - In production tables: rows whose tag column holds any drill id (not
//     only drill's: a row of another drill, an earlier one or one that ran
//     beside it, leaked just the same; the ids are in Drills), and rows
//     whose ID is in the shadow range (≥ IDOffset).
//   - In shadow tables: rows without a tag (NULL or empty), and rows whose
//     ID is below the shadow range.
//
// A table lacking the tag column, or an integer ID column when IDOffset is
// set, is scanned by the marker it has and listed in Unchecked for the
// other. The error is for failures to ask the database and for an invalid
// drill id.
func Scan(ctx context.Context, db *sql.DB, drill string, m Markers) (*ScanReport, error) {
	if drill != "" {
		if err := shadow.ValidateTag(drill); err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
	}
	if m.TagColumn == "" {
		m.TagColumn = shadow.TagColumn
	}
	if m.IDColumn == "" {
		m.IDColumn = DefaultIDColumn
	}
	if m.Naming == (shadow.Naming{}) {
		m.Naming = shadow.DefaultTableNaming
	}
	if m.MaxRows == 0 {
		m.MaxRows = DefaultMaxRows
	}
	if m.IDOffset < 0 {
		return nil, fmt.Errorf("audit: ID offset %d: must not be negative", m.IDOffset)
	}
	d, err := dialectOf(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	s := &scanner{db: db, d: d, m: m, drill: drill, r: &ScanReport{Drill: drill, Counts: map[string]int{}}}
	targets, err := s.targets(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	for _, t := range targets {
		if err := s.scan(ctx, t); err != nil {
			return nil, fmt.Errorf("audit %s: %w", t.name, err)
		}
	}
	return s.r, nil
}

type scanner struct {
	db    *sql.DB
	d     dialect
	m     Markers
	drill string
	r     *ScanReport
}

type target struct {
	name   string
	shadow bool
	cols   []column
}

// targets lists the tables to scan: production tables, then shadow ones.
func (s *scanner) targets(ctx context.Context) ([]target, error) {
	colsOf := map[string][]column{}
	get := func(t string) ([]column, error) {
		if c, ok := colsOf[t]; ok {
			return c, nil
		}
		c, err := columns(ctx, s.db, s.d, t)
		colsOf[t] = c
		return c, err
	}
	var prod, shadows []target
	if s.m.Tables != nil {
		names, unmatched, err := expand(ctx, s.db, s.d, s.m.Tables, s.m.Naming)
		if err != nil {
			return nil, err
		}
		for _, p := range unmatched {
			s.r.Unchecked = append(s.r.Unchecked, Problem{Table: p, What: "no production table matches"})
		}
		for _, t := range names {
			for _, tt := range []target{{name: t}, {name: s.m.Naming.Shadow(t), shadow: true}} {
				cols, err := get(tt.name)
				if err != nil {
					return nil, err
				}
				if cols == nil {
					s.r.Unchecked = append(s.r.Unchecked, Problem{Table: tt.name, What: "does not exist"})
					continue
				}
				tt.cols = cols
				if tt.shadow {
					shadows = append(shadows, tt)
				} else {
					prod = append(prod, tt)
				}
			}
		}
		return append(prod, shadows...), nil
	}
	all, err := tables(ctx, s.db, s.d)
	if err != nil {
		return nil, err
	}
	exists := map[string]bool{}
	for _, t := range all {
		exists[t] = true
	}
	for _, t := range all {
		cols, err := get(t)
		if err != nil {
			return nil, err
		}
		if _, isTwin := s.m.Naming.Real(t); isTwin {
			shadows = append(shadows, target{name: t, shadow: true, cols: cols})
			continue
		}
		if exists[s.m.Naming.Shadow(t)] || find(cols, s.m.TagColumn) != nil {
			prod = append(prod, target{name: t, cols: cols})
		}
	}
	return append(prod, shadows...), nil
}

// scan reads the leaking rows of one table.
func (s *scanner) scan(ctx context.Context, t target) error {
	tag := find(t.cols, s.m.TagColumn)
	id := find(t.cols, s.m.IDColumn)
	useID := id != nil && s.m.IDOffset > 0 && s.d.integer(id.typ)
	if tag == nil {
		s.r.Unchecked = append(s.r.Unchecked, Problem{Table: t.name, Column: s.m.TagColumn, What: "no such column: tags not checked"})
	}
	if s.m.IDOffset > 0 && !useID {
		what := "no such column: IDs not checked"
		if id != nil {
			what = "type " + orNone(id.typ) + " is not an integer: IDs not checked"
		}
		s.r.Unchecked = append(s.r.Unchecked, Problem{Table: t.name, Column: s.m.IDColumn, What: what})
	}
	if tag == nil && !useID {
		return nil
	}
	s.r.Tables = append(s.r.Tables, t.name)

	var conds []string
	var args []any
	keyExpr, tagExpr, order := "NULL", "NULL", ""
	if id != nil {
		keyExpr = s.d.quoteIdent(id.name)
		order = " ORDER BY " + keyExpr
	}
	if tag != nil {
		tagExpr = s.d.quoteIdent(tag.name)
		if t.shadow {
			conds = append(conds, "("+tagExpr+" IS NULL OR "+tagExpr+" = '')")
		} else {
			conds = append(conds, "("+tagExpr+" IS NOT NULL AND "+tagExpr+" <> '')")
		}
	}
	if useID {
		args = append(args, s.m.IDOffset)
		op := " >= "
		if t.shadow {
			op = " < "
		}
		conds = append(conds, keyExpr+op+s.bigint(len(args)))
	}
	q := "SELECT " + keyExpr + ", " + tagExpr + " FROM " + s.d.quote(t.name) + " WHERE " + strings.Join(conds, " OR ") + order
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var key, rowTag sql.NullString
		if err := rows.Scan(&key, &rowTag); err != nil {
			return err
		}
		s.r.Counts[t.name]++
		if !t.shadow && rowTag.String != "" {
			s.addDrill(rowTag.String)
		}
		if s.m.MaxRows > 0 && s.r.Counts[t.name] > s.m.MaxRows {
			continue
		}
		s.r.Leaks = append(s.r.Leaks, Leak{Table: t.name, Key: key.String, Why: s.why(t, tag != nil, useID, key, rowTag)})
	}
	return rows.Err()
}

// addDrill records a drill id found in a production table, keeping
// Drills sorted and without duplicates.
func (s *scanner) addDrill(d string) {
	i := sort.SearchStrings(s.r.Drills, d)
	if i < len(s.r.Drills) && s.r.Drills[i] == d {
		return
	}
	s.r.Drills = append(s.r.Drills, "")
	copy(s.r.Drills[i+1:], s.r.Drills[i:])
	s.r.Drills[i] = d
}

// bigint is the i-th placeholder for an ID bound.
func (s *scanner) bigint(i int) string {
	if s.d == postgresDialect {
		return s.d.arg(i) + "::bigint"
	}
	return s.d.arg(i)
}

// why says what is wrong with a row the query returned.
func (s *scanner) why(t target, hasTag, useID bool, key, tag sql.NullString) string {
	var reasons []string
	inRange := false
	if useID {
		n, err := strconv.ParseInt(key.String, 10, 64)
		inRange = err != nil || n >= s.m.IDOffset // unparseable: too big for int64
	}
	if t.shadow {
		if hasTag && tag.String == "" {
			reasons = append(reasons, "untagged row in a shadow table ("+s.m.TagColumn+" is "+nullOrEmpty(tag)+")")
		}
		if useID && !inRange {
			reasons = append(reasons, fmt.Sprintf("ID below the shadow range (< %d)", s.m.IDOffset))
		}
	} else {
		switch {
		case !hasTag || tag.String == "":
		case s.drill != "" && tag.String != s.drill:
			reasons = append(reasons, "row of drill "+tag.String+" (not "+s.drill+") in a production table")
		default:
			reasons = append(reasons, "row of drill "+tag.String+" in a production table")
		}
		if useID && inRange {
			reasons = append(reasons, fmt.Sprintf("ID in the shadow range (≥ %d) in a production table", s.m.IDOffset))
		}
	}
	return strings.Join(reasons, "; ")
}

func nullOrEmpty(v sql.NullString) string {
	if v.Valid {
		return "empty"
	}
	return "NULL"
}

// WriteText writes the report for a terminal: every leaking row listed,
// the count per table, every table that could not be checked, and "ok"
// when nothing leaked.
func (r *ScanReport) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	for _, l := range r.Leaks {
		fmt.Fprintln(bw, "LEAK", l)
	}
	tables := make([]string, 0, len(r.Counts))
	for t := range r.Counts {
		tables = append(tables, t)
	}
	sort.Strings(tables)
	for _, t := range tables {
		if n := r.Counts[t]; n > 0 {
			fmt.Fprintf(bw, "%s: %d leaking rows\n", t, n)
		}
	}
	if len(r.Drills) > 0 {
		fmt.Fprintf(bw, "rows of drills in production tables: %s\n", strings.Join(r.Drills, ", "))
	}
	for _, p := range r.Unchecked {
		fmt.Fprintln(bw, "UNCHECKED", p)
	}
	if r.OK() {
		fmt.Fprintf(bw, "ok: no leak in %d tables (%s)\n", len(r.Tables), strings.Join(r.Tables, ", "))
	}
	return bw.Flush()
}
