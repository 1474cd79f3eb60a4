package capacity

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/loadcap/loadcap/scenarios"
)

// maxReadErrors bounds the problems reported for one file: past it, a file
// is not what the user thinks it is, and more lines say nothing new.
const maxReadErrors = 50

// ReadPoints reads USL measurements from the file at path, choosing the
// format by content:
//
//   - a JSON object is a find.json (`loadcap capacity find --out`): every
//     entry of "steps" is a point with N = steps[i].concurrency (requests in
//     flight) and X = steps[i].achieved (requests per second), sorted by N
//     because the search visits rates out of order;
//   - anything else is CSV with a header row: column 1 is the concurrency N,
//     column 2 the throughput X in requests per second, further columns are
//     ignored, lines starting with # are comments. N must increase from row
//     to row.
//
// Every N and X must be a finite positive number and there must be at least
// 3 points (3 distinct N). Problems with the file, including a missing file,
// are returned all at once as scenarios.Errors, each with the file name, the
// line and column where one is known, and the field at fault in Path
// ("column 2", "steps[3].achieved"). A file that cannot be read is reported
// the same way and also matches errors.Is(err, fs.ErrNotExist) when missing.
func ReadPoints(path string) ([]Point, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		msg := err.Error()
		var pe *fs.PathError
		if errors.As(err, &pe) {
			msg = pe.Err.Error()
		}
		return nil, readError{scenarios.Errors{{File: path, Msg: "cannot read: " + msg}}, err}
	}
	return ParsePoints(path, data)
}

// readError is a file that cannot be read: bad input for the CLI
// (scenarios.Invalid) that still matches errors.Is(err, fs.ErrNotExist).
type readError struct {
	problems scenarios.Errors
	cause    error
}

func (e readError) Error() string   { return e.problems.Error() }
func (e readError) Unwrap() []error { return []error{e.problems, e.cause} }

// ParsePoints is ReadPoints for data already in memory (standard input, say);
// name is the file name used in errors.
func ParsePoints(name string, data []byte) ([]Point, error) {
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, scenarios.Errors{{File: name, Msg: "no data: the file is empty"}}
	}
	if trimmed[0] == '{' || trimmed[0] == '[' {
		return parseFindJSON(name, data)
	}
	return parseCSV(name, data)
}

// problems collects the errors of one file.
type problems struct {
	file string
	errs scenarios.Errors
}

func (p *problems) add(line, col int, path, format string, a ...any) {
	p.errs = append(p.errs, &scenarios.Error{
		File: p.file, Pos: scenarios.Pos{Line: line, Col: col}, Path: path, Msg: fmt.Sprintf(format, a...),
	})
}

func (p *problems) full() bool { return len(p.errs) >= maxReadErrors }

func (p *problems) err() error {
	if len(p.errs) == 0 {
		return nil
	}
	if p.full() {
		p.add(0, 0, "", "too many problems; stopped after %d", maxReadErrors)
	}
	return p.errs
}

// parseCSV reads "N,X[,ignored...]" rows after a header row.
func parseCSV(name string, data []byte) ([]Point, error) {
	probs := &problems{file: name}
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = true
	r.Comment = '#'

	var pts []Point
	rows := 0
	seenHeader := false
	lastN, lastLine := math.NaN(), 0
	for !probs.full() {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				line, col := clampPos(data, pe.Line, pe.Column)
				probs.add(line, col, "", "%v", pe.Err)
				continue
			}
			probs.add(0, 0, "", "%v", err)
			break
		}
		line, col := r.FieldPos(0)
		if !seenHeader {
			seenHeader = true
			if _, err := strconv.ParseFloat(strings.TrimSpace(rec[0]), 64); err != nil {
				if len(rec) < 2 {
					probs.add(line, col, "", "the header has only 1 column; need 2: concurrency N (requests in flight), throughput X (req/s)")
				}
				continue
			}
			// A number on line 1 is data, not a column name: say so, and
			// still check the row so every problem shows at once.
			probs.add(line, col, "", `missing header row: the first line must name the columns, e.g. "concurrency,throughput"`)
		}
		rows++
		n, okN := csvNumber(probs, r, data, rec, 0, "concurrency")
		x, okX := csvNumber(probs, r, data, rec, 1, "throughput")
		if !okN {
			continue
		}
		if !math.IsNaN(lastN) && n <= lastN {
			probs.add(line, col, "column 1", "concurrency must increase from row to row: %s after %s on line %d",
				strconv.FormatFloat(n, 'g', -1, 64), strconv.FormatFloat(lastN, 'g', -1, 64), lastLine)
		} else {
			lastN, lastLine = n, line
		}
		if okX {
			pts = append(pts, Point{N: n, X: x})
		}
	}
	switch {
	case !seenHeader:
		probs.add(0, 0, "", "no data: the file has no rows")
	case rows < 3:
		probs.add(0, 0, "", "need at least 3 data rows (concurrency, throughput), found %d", rows)
	}
	if err := probs.err(); err != nil {
		return nil, err
	}
	return pts, nil
}

// csvNumber parses field i of the current record as a finite positive
// number, reporting a problem at the field (or the end of the row when the
// field is missing) otherwise.
func csvNumber(probs *problems, r *csv.Reader, data []byte, rec []string, i int, what string) (float64, bool) {
	path := "column " + strconv.Itoa(i+1)
	if i >= len(rec) {
		last := len(rec) - 1
		line, col := r.FieldPos(last)
		line, col = clampPos(data, line, col+len(rec[last]))
		probs.add(line, col, path, "missing %s", what)
		return 0, false
	}
	line, col := r.FieldPos(i)
	s := strings.TrimSpace(rec[i])
	if s == "" {
		probs.add(line, col, path, "missing %s", what)
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	if msg := checkNumber(v, err, s, what); msg != "" {
		probs.add(line, col, path, "%s", msg)
		return 0, false
	}
	return v, true
}

// checkNumber returns what is wrong with a parsed concurrency or throughput,
// or "".
func checkNumber(v float64, err error, s, what string) string {
	if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
		return fmt.Sprintf("%s %s is out of range", what, s)
	}
	if err != nil {
		return fmt.Sprintf("%s is not a number: %q", what, s)
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Sprintf("%s must be a finite number, got %s", what, s)
	}
	if v <= 0 {
		return fmt.Sprintf("%s must be positive, got %s", what, s)
	}
	return ""
}

// jsonItem is a value seen while walking a JSON document: a scalar token, or
// json.Delim('{') / json.Delim('[') for an object or array, with the byte
// offset where it starts and, for arrays, the number of elements.
type jsonItem struct {
	tok json.Token
	off int
	len int
}

// jsonWalker records the position of every value under "steps" in a
// find.json, so problems can be reported at their line and column, which
// encoding/json's Unmarshal does not do.
type jsonWalker struct {
	data  []byte
	dec   *json.Decoder
	items map[string]jsonItem
}

func (w *jsonWalker) keep(path string) bool {
	return path == "" || path == "steps" || strings.HasPrefix(path, "steps[")
}

// start returns the offset of the next value from off, past blanks, ':' and ','.
func (w *jsonWalker) start(off int64) int {
	i := int(off)
	for i < len(w.data) {
		switch w.data[i] {
		case ' ', '\t', '\r', '\n', ':', ',':
			i++
			continue
		}
		break
	}
	return i
}

func (w *jsonWalker) value(path string, off int) error {
	tok, err := w.dec.Token()
	if err != nil {
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		if w.keep(path) {
			w.items[path] = jsonItem{tok: tok, off: off}
		}
		return nil
	}
	n := 0
	for ; w.dec.More(); n++ {
		var sub string
		if d == '{' {
			key, err := w.dec.Token()
			if err != nil {
				return err
			}
			k, _ := key.(string)
			sub = k
			if path != "" {
				sub = path + "." + k
			}
		} else {
			sub = fmt.Sprintf("%s[%d]", path, n)
		}
		if err := w.value(sub, w.start(w.dec.InputOffset())); err != nil {
			return err
		}
	}
	if _, err := w.dec.Token(); err != nil { // the closing delimiter
		return err
	}
	if w.keep(path) {
		w.items[path] = jsonItem{tok: d, off: off, len: n}
	}
	return nil
}

// parseFindJSON reads the steps of a find.json as points sorted by N.
func parseFindJSON(name string, data []byte) ([]Point, error) {
	probs := &problems{file: name}
	at := func(off int, path, format string, a ...any) {
		line, col := lineCol(data, off)
		probs.add(line, col, path, format, a...)
	}
	w := &jsonWalker{data: data, dec: json.NewDecoder(bytes.NewReader(data)), items: map[string]jsonItem{}}
	w.dec.UseNumber()
	err := w.value("", w.start(0))
	if err == nil {
		if _, extra := w.dec.Token(); extra != io.EOF {
			at(w.start(w.dec.InputOffset()), "", "unexpected data after the JSON object")
			return nil, probs.err()
		}
	}
	if err != nil {
		// The Decoder's offsets for syntax errors are approximate;
		// Unmarshal's are exact: the Offset-th byte is the bad one.
		var se *json.SyntaxError
		var v any
		if uerr := json.Unmarshal(data, &v); errors.As(uerr, &se) {
			err = se
		}
		switch {
		case errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF ||
			(se != nil && strings.HasPrefix(se.Error(), "unexpected end")):
			at(len(data), "", "invalid JSON: unexpected end of file")
		case se != nil:
			at(int(se.Offset)-1, "", "invalid JSON: %v", se)
		default:
			at(int(w.dec.InputOffset()), "", "invalid JSON: %v", err)
		}
		return nil, probs.err()
	}

	root := w.items[""]
	if root.tok != json.Delim('{') {
		at(root.off, "", `not a find.json: expected an object with "steps" (loadcap capacity find --out)`)
		return nil, probs.err()
	}
	steps, ok := w.items["steps"]
	switch {
	case !ok:
		at(root.off, "steps", `missing: not a find.json (loadcap capacity find --out)`)
		return nil, probs.err()
	case steps.tok != json.Delim('['):
		at(steps.off, "steps", "must be an array of steps")
		return nil, probs.err()
	}

	var pts []Point
	for i := 0; i < steps.len; i++ {
		path := fmt.Sprintf("steps[%d]", i)
		step := w.items[path]
		if step.tok != json.Delim('{') {
			at(step.off, path, "must be an object with concurrency and achieved")
			continue
		}
		// A step where nothing completed (achieved or concurrency exactly 0)
		// is a real measurement but no point on the curve: find skips it
		// when it fits, and so does this reader.
		if jsonZero(w.items, path+".concurrency") || jsonZero(w.items, path+".achieved") {
			continue
		}
		n, okN := jsonNumber(at, w.items, step, path+".concurrency", "concurrency")
		x, okX := jsonNumber(at, w.items, step, path+".achieved", "throughput")
		if okN && okX {
			pts = append(pts, Point{N: n, X: x})
		}
	}
	if steps.len < 3 {
		at(steps.off, "steps", "need at least 3 steps, found %d", steps.len)
	} else if len(probs.errs) == 0 {
		distinct := map[float64]bool{}
		for _, p := range pts {
			distinct[p.N] = true
		}
		if len(distinct) < 3 {
			at(steps.off, "steps", "need at least 3 distinct concurrency values, found %d", len(distinct))
		}
	}
	if err := probs.err(); err != nil {
		return nil, err
	}
	sort.SliceStable(pts, func(i, j int) bool { return pts[i].N < pts[j].N })
	return pts, nil
}

// jsonZero reports whether the item at path is the number 0.
func jsonZero(items map[string]jsonItem, path string) bool {
	num, ok := items[path].tok.(json.Number)
	if !ok {
		return false
	}
	v, err := strconv.ParseFloat(string(num), 64)
	return err == nil && v == 0
}

// jsonNumber reads the number at path, a field of step, reporting a problem
// at the value (or at the step when the field is missing) otherwise.
func jsonNumber(at func(int, string, string, ...any), items map[string]jsonItem, step jsonItem, path, what string) (float64, bool) {
	it, ok := items[path]
	if !ok {
		at(step.off, path, "missing %s", what)
		return 0, false
	}
	num, ok := it.tok.(json.Number)
	if !ok {
		at(it.off, path, "%s must be a number, got %s", what, jsonKind(it.tok))
		return 0, false
	}
	v, err := strconv.ParseFloat(string(num), 64)
	if msg := checkNumber(v, err, string(num), what); msg != "" {
		at(it.off, path, "%s", msg)
		return 0, false
	}
	return v, true
}

func jsonKind(tok json.Token) string {
	switch t := tok.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return fmt.Sprintf("the string %q", t)
	case json.Delim:
		if t == '{' {
			return "an object"
		}
		return "an array"
	}
	return fmt.Sprintf("%v", tok)
}

// clampPos keeps a position from encoding/csv inside data: for an
// unterminated quote it points past the newline that ends the last line.
func clampPos(data []byte, line, col int) (int, int) {
	lines := bytes.Split(data, []byte("\n"))
	line = max(1, min(line, len(lines)))
	col = max(1, min(col, len(lines[line-1])+1))
	return line, col
}

// lineCol turns a byte offset into a 1-based line and byte column.
func lineCol(data []byte, off int) (line, col int) {
	off = max(0, min(off, len(data)))
	before := data[:off]
	line = 1 + bytes.Count(before, []byte("\n"))
	col = off - bytes.LastIndexByte(before, '\n')
	return line, col
}
