package capacity

import (
	"errors"
	"io/fs"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/loadcap/loadcap/scenarios"
)

func TestReadPoints(t *testing.T) {
	tests := []struct {
		name string
		path string
	}{
		{"CSV with comment, header and extra column", "specsdm91.csv"},
		{"find.json, steps in search order", "find.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pts, err := ReadPoints(filepath.Join("testdata", "usl", tt.path))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(pts, specSDM91) {
				t.Errorf("points = %v, want %v", pts, specSDM91)
			}
			u, err := FitUSL(pts)
			if err != nil {
				t.Fatal(err)
			}
			if !agreesTo(u.PeakN, "96.52") {
				t.Errorf("PeakN = %v, want 96.52", u.PeakN)
			}
		})
	}
}

func TestParsePointsAccepts(t *testing.T) {
	tests := []struct {
		name string
		data string
		want []Point
	}{
		{"CRLF, BOM, quotes, spaces, blank lines",
			"\ufeffN,X,comment\r\n1,10,\"a, b\"\r\n\r\n\"2\", 19 ,x\r\n 3 ,27\r\n",
			[]Point{{1, 10}, {2, 19}, {3, 27}}},
		{"fractional concurrency, exponents",
			"vus,rps\n0.5,5e1\n1.25,1.2E2\n2,180\n",
			[]Point{{0.5, 50}, {1.25, 120}, {2, 180}}},
		{"find.json with repeated concurrency keeps both, sorted",
			`{"steps":[{"concurrency":3,"achieved":27},{"concurrency":1,"achieved":10},{"concurrency":3,"achieved":28},{"concurrency":2,"achieved":19}]}`,
			[]Point{{1, 10}, {2, 19}, {3, 27}, {3, 28}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pts, err := ParsePoints("in", []byte(tt.data))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(pts, tt.want) {
				t.Errorf("points = %v, want %v", pts, tt.want)
			}
		})
	}
}

// want is one expected problem: position, field and a substring of the message.
type want struct {
	line, col int
	path, msg string
}

func TestParsePointsErrors(t *testing.T) {
	tests := []struct {
		name string
		data string
		want []want
	}{
		{"empty", "", []want{{0, 0, "", "no data: the file is empty"}}},
		{"blank", " \n\r\n\t", []want{{0, 0, "", "no data: the file is empty"}}},
		{"comments only", "# nothing yet\n", []want{{0, 0, "", "no data: the file has no rows"}}},
		{"header only", "n,x\n", []want{{0, 0, "", "need at least 3 data rows (concurrency, throughput), found 0"}}},
		{"two rows", "n,x\n1,10\n2,20\n", []want{{0, 0, "", "found 2"}}},
		{"no header", "1,10\n2,19\n3,27\n", []want{{1, 1, "", "missing header row"}}},
		{"no header and a bad row", "1,10\n2,x\n3,27\n", []want{
			{1, 1, "", "missing header row"},
			{2, 3, "column 2", `throughput is not a number: "x"`}}},
		{"header with one column", "n\n1\n2\n3\n", []want{
			{1, 1, "", "the header has only 1 column"},
			{2, 2, "column 2", "missing throughput"},
			{3, 2, "column 2", "missing throughput"},
			{4, 2, "column 2", "missing throughput"}}},
		{"non-numeric", "n,x\n1,10\n2,abc\nfoo,30\n4,40\n", []want{
			{3, 3, "column 2", `throughput is not a number: "abc"`},
			{4, 1, "column 1", `concurrency is not a number: "foo"`}}},
		{"zero, negative, NaN, Inf", "n,x\n1,0\n-2,19\nNaN,5\n4, Inf\n", []want{
			{2, 3, "column 2", "throughput must be positive, got 0"},
			{3, 1, "column 1", "concurrency must be positive, got -2"},
			{4, 1, "column 1", "concurrency must be a finite number, got NaN"},
			{5, 4, "column 2", "throughput must be a finite number, got Inf"}}},
		{"out of range", "n,x\n1,10\n2,1e999\n3,30\n", []want{
			{3, 3, "column 2", "throughput 1e999 is out of range"}}},
		{"missing and empty throughput", "n,x\n1,10\n2\n3,\n4,40\n", []want{
			{3, 2, "column 2", "missing throughput"},
			{4, 3, "column 2", "missing throughput"}}},
		{"N not increasing", "n,x\n1,10\n4,30\n4,31\n2,20\n8,50\n", []want{
			{4, 1, "column 1", "concurrency must increase from row to row: 4 after 4 on line 3"},
			{5, 1, "column 1", "concurrency must increase from row to row: 2 after 4 on line 3"}}},
		{"bare quote", "n,x\n1,10\n2,1\"9\n3,27\n4,40\n", []want{
			{3, 4, "", `bare " in non-quoted-field`}}},

		{"JSON syntax error", "{\"steps\": [\n  1,\n]}", []want{{3, 1, "", "invalid JSON: invalid character ']'"}}},
		{"JSON truncated", "{\"steps\": [\n", []want{{2, 1, "", "invalid JSON: unexpected end of file"}}},
		{"JSON trailing data", `{"steps": []} x`, []want{{1, 15, "", "unexpected data after the JSON object"}}},
		{"JSON array", `[{"concurrency": 1, "achieved": 10}]`, []want{{1, 1, "", "not a find.json"}}},
		{"JSON without steps", "{\n  \"max_qps\": 5\n}", []want{{1, 1, "steps", "missing: not a find.json"}}},
		{"JSON steps not an array", `{"steps": {"a": 1}}`, []want{{1, 11, "steps", "must be an array of steps"}}},
		{"JSON one step", `{"steps": [{"concurrency": 1, "achieved": 10}]}`, []want{{1, 11, "steps", "need at least 3 steps, found 1"}}},
		{"JSON one concurrency", `{"steps": [{"concurrency": 2, "achieved": 10}, {"concurrency": 2, "achieved": 11}, {"concurrency": 2, "achieved": 12}]}`,
			[]want{{1, 11, "steps", "need at least 3 distinct concurrency values, found 1"}}},
		{"JSON bad steps", `{"max_qps": 10, "steps": [
  {"concurrency": 1, "achieved": 10},
  {"concurrency": "2", "achieved": 19},
  {"achieved": 5, "latency_ms": {"p99": 3}},
  {"concurrency": -3, "achieved": null},
  5,
  {"concurrency": 1e999, "achieved": true}
]}`, []want{
			{3, 19, "steps[1].concurrency", `concurrency must be a number, got the string "2"`},
			{4, 3, "steps[2].concurrency", "missing concurrency"},
			{5, 19, "steps[3].concurrency", "concurrency must be positive, got -3"},
			{5, 35, "steps[3].achieved", "throughput must be a number, got null"},
			{6, 3, "steps[4]", "must be an object"},
			{7, 19, "steps[5].concurrency", "concurrency 1e999 is out of range"},
			{7, 38, "steps[5].achieved", "throughput must be a number, got a boolean"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pts, err := ParsePoints("data.csv", []byte(tt.data))
			if err == nil {
				t.Fatalf("points = %v, want errors", pts)
			}
			checkProblems(t, err, "data.csv", tt.want)
		})
	}
}

// checkProblems asserts that err is scenarios.Errors holding exactly the
// wanted problems, in position order.
func checkProblems(t *testing.T, err error, file string, wants []want) {
	t.Helper()
	if !scenarios.Invalid(err) {
		t.Fatalf("error %v (%T) is not a scenarios error", err, err)
	}
	var es scenarios.Errors
	if !errors.As(err, &es) {
		t.Fatalf("error %v is not scenarios.Errors", err)
	}
	if len(es) != len(wants) {
		t.Errorf("%d problems, want %d:\n%v", len(es), len(wants), err)
	}
	for i, w := range wants {
		if i >= len(es) {
			break
		}
		e := es[i]
		if e.File != file || e.Line != w.line || e.Col != w.col || e.Path != w.path || !strings.Contains(e.Msg, w.msg) {
			t.Errorf("problem %d = %s:%d:%d %q %q\n          want %s:%d:%d %q containing %q",
				i, e.File, e.Line, e.Col, e.Path, e.Msg, file, w.line, w.col, w.path, w.msg)
		}
	}
}

func TestReadPointsMissingFile(t *testing.T) {
	path := filepath.Join("testdata", "usl", "no-such.csv")
	_, err := ReadPoints(path)
	checkProblems(t, err, path, []want{{0, 0, "", "cannot read: no such file or directory"}})
	if got := err.Error(); got != path+": cannot read: no such file or directory" {
		t.Errorf("message %q", got)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is(%v, fs.ErrNotExist) = false", err)
	}
}

// A find step where nothing completed is a measurement, not a point on the
// curve: fit skips it as find does.
func TestReadPointsSkipsEmptySteps(t *testing.T) {
	pts, err := ParsePoints("find.json", []byte(`{"steps": [
  {"concurrency": 1, "achieved": 10}, {"concurrency": 0, "achieved": 0},
  {"concurrency": 2, "achieved": 19}, {"concurrency": 3, "achieved": 27}]}`))
	if err != nil || len(pts) != 3 {
		t.Fatalf("points %v, err %v; want the 3 non-empty steps", pts, err)
	}
}
