package scenarios

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"

	"gopkg.in/yaml.v3"
)

// Order is how a data source hands out rows.
type Order string

const (
	// Sequential hands out rows in file order through one cursor shared by
	// all VUs, wrapping around at the end.
	Sequential Order = "sequential"
	// Random picks a uniformly random row from the VU's random source.
	Random Order = "random"
)

// MaxDataFileSize bounds a CSV data file, which is held in memory.
const MaxDataFileSize = 1 << 30

// DataSource is one CSV file of test data. Columns come from its header row;
// every row has exactly len(Columns) cells.
type DataSource struct {
	Name    string
	File    string // path as opened (relative to the scenario file's directory)
	Order   Order
	Columns []string
	Rows    [][]string
	Pos     Pos

	cursor atomic.Uint64 // Sequential: next row, shared by all VUs
}

// pick chooses the row for one request.
func (d *DataSource) pick(rng *rand.Rand) int {
	if d.Order == Random {
		return rng.IntN(len(d.Rows))
	}
	return int((d.cursor.Add(1) - 1) % uint64(len(d.Rows)))
}

var sourceName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// data parses the data: section and loads every CSV file.
func (p *parser) data(n *yaml.Node) *dataEnv {
	env := &dataEnv{failed: map[string]bool{}}
	pairs, ok := p.mapping(n, "data")
	if !ok {
		return env
	}
	for _, e := range pairs {
		path := join("data", e.key)
		env.declared = append(env.declared, e.key)
		if !sourceName.MatchString(e.key) {
			p.errorf(e.k, path, "a data source name may only hold letters, digits, _ and -")
			env.failed[e.key] = true
			continue
		}
		ds := p.dataSource(e, path)
		if ds == nil {
			env.failed[e.key] = true
			continue
		}
		env.sources = append(env.sources, ds)
	}
	return env
}

func (p *parser) dataSource(e kv, path string) *DataSource {
	if v := resolve(e.v); v != nil && v.Kind == yaml.ScalarNode && v.Tag == "!!str" {
		// users: data/users.csv is short for users: {file: data/users.csv}.
		k := ystr("file")
		k.Line, k.Column = v.Line, v.Column
		e.v = ymap(k, v)
	}
	pairs, ok := p.mapping(e.v, path)
	if !ok {
		return nil
	}
	p.known(pairs, path, "file", "order")
	ds := &DataSource{Name: e.key, Order: Sequential, Pos: posOf(e.k)}
	if o, ok := find(pairs, "order"); ok {
		s, ok := p.str(o.v, join(path, "order"))
		switch {
		case !ok:
		case s == string(Sequential) || s == string(Random):
			ds.Order = Order(s)
		default:
			p.errorf(o.v, join(path, "order"), "must be sequential or random, got %q%s", s,
				suggest(s, []string{string(Sequential), string(Random)}))
		}
	}
	f, ok := find(pairs, "file")
	if !ok {
		p.errorf(e.k, join(path, "file"), "is required: the CSV file to read")
		return nil
	}
	name, ok := p.str(f.v, join(path, "file"))
	if !ok {
		return nil
	}
	if name == "" {
		p.errorf(f.k, join(path, "file"), "is empty")
		return nil
	}
	ds.File = name
	if !filepath.IsAbs(name) {
		ds.File = filepath.Join(p.dir, name)
	}
	if p.outside(ds.File) {
		p.errorf(f.v, join(path, "file"), "%s", outsideMsg(name))
		return nil
	}
	if msg := ds.load(); msg != "" {
		p.errorf(f.k, join(path, "file"), "%s", msg)
		return nil
	}
	return ds
}

// load reads the CSV file. It returns a message for the user, or "".
func (d *DataSource) load() string {
	st, err := os.Stat(d.File)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Sprintf("CSV file %s does not exist", d.File)
		}
		return fmt.Sprintf("cannot read CSV file: %v", err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Sprintf("CSV file %s is not a regular file", d.File)
	}
	if st.Size() > MaxDataFileSize {
		return fmt.Sprintf("CSV file %s is larger than %d MiB", d.File, MaxDataFileSize>>20)
	}
	fh, err := os.Open(d.File)
	if err != nil {
		return fmt.Sprintf("cannot read CSV file: %v", err)
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, MaxDataFileSize+1))
	if err != nil {
		return fmt.Sprintf("cannot read CSV file: %v", err)
	}
	if len(data) > MaxDataFileSize {
		return fmt.Sprintf("CSV file %s is larger than %d MiB", d.File, MaxDataFileSize>>20)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))

	r := csv.NewReader(bytes.NewReader(data))
	header, err := r.Read()
	if errors.Is(err, io.EOF) {
		return fmt.Sprintf("CSV file %s is empty: its first line must name the columns", d.File)
	}
	if err != nil {
		return fmt.Sprintf("CSV %s: %v", d.File, err)
	}
	seen := map[string]bool{}
	for i, c := range header {
		c = strings.TrimSpace(c)
		switch {
		case c == "":
			return fmt.Sprintf("CSV file %s: header column %d has no name", d.File, i+1)
		case seen[c]:
			return fmt.Sprintf("CSV file %s: header names column %q twice", d.File, c)
		case strings.ContainsAny(c, " \t{}\"`"):
			return fmt.Sprintf("CSV file %s: column name %q can't hold blanks, braces or quotes", d.File, c)
		}
		seen[c] = true
		header[i] = c
	}
	d.Columns = header
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Sprintf("CSV %s: %v", d.File, err)
		}
		d.Rows = append(d.Rows, rec)
	}
	if len(d.Rows) == 0 {
		return fmt.Sprintf("CSV file %s has a header but no rows", d.File)
	}
	return ""
}
