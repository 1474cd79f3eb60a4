package scenarios

import (
	"errors"
	"sort"
	"strconv"
	"strings"
)

// Pos is a position in a scenario file: 1-based line and column, as yaml.v3
// reports them. The zero Pos means "no position" (a problem with the whole
// file, or with a scenario built by Quick).
type Pos struct{ Line, Col int }

// Error is one problem in a scenario file. Path is the key path of the value
// at fault, e.g. "scenarios.browse.rate" or "requests[2].path".
type Error struct {
	File string
	Pos
	Path string
	Msg  string
}

// Error formats the problem as "file:line:col: path: msg", leaving out the
// parts that are unknown (no file, no position, no path).
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(":")
	}
	if e.Line > 0 {
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(":")
		if e.Col > 0 {
			b.WriteString(strconv.Itoa(e.Col))
			b.WriteString(":")
		}
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one file. It implements error: one problem
// per line, sorted by position.
type Errors []*Error

// Error lists the problems one per line, sorted by position.
func (es Errors) Error() string {
	sorted := append(Errors(nil), es...)
	sorted.sort()
	lines := make([]string, len(sorted))
	for i, e := range sorted {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the problems as individual errors, for errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

func (es Errors) sort() {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Col != b.Col {
			return a.Col < b.Col
		}
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		return a.Msg < b.Msg
	})
}

// Invalid reports whether err is (or wraps) a problem with the user's input,
// an *Error or Errors, as opposed to a failure of the tool itself. The CLI maps
// it to exit code 104.
func Invalid(err error) bool {
	if err == nil {
		return false
	}
	var e *Error
	if errors.As(err, &e) {
		return true
	}
	var es Errors
	return errors.As(err, &es)
}

// suggest returns ` (did you mean "x"?)` when one of the candidates is close
// to got, else "".
func suggest(got string, candidates []string) string {
	best, bestDist := "", 1<<30
	lg := strings.ToLower(got)
	for _, c := range candidates {
		d := editDistance(lg, strings.ToLower(c))
		if d < bestDist {
			best, bestDist = c, d
		}
	}
	// Short words are close to everything: allow fewer edits, and never
	// as many as the word has letters.
	limit := 2
	if len(got) <= 4 {
		limit = 1
	}
	if best == "" || bestDist > limit || bestDist >= len(got) {
		return ""
	}
	return ` (did you mean "` + best + `"?)`
}

// editDistance is the Levenshtein distance between a and b, in bytes. Inputs
// longer than 64 bytes are never "close", which keeps the cost bounded.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		if a == b {
			return 0
		}
		return 1 << 20
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
