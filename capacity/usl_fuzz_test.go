package capacity

import (
	"bytes"
	"errors"
	"testing"

	"github.com/loadcap/loadcap/scenarios"
)

// FuzzReadCSV checks that ParsePoints never panics on any input (CSV, or
// JSON when it starts with a brace), that a failure is always
// scenarios.Errors positioned inside the input, and that what it accepts is
// fit for FitUSL. Seed corpus: testdata/fuzz/FuzzReadCSV.
//
//	go test ./capacity -run '^$' -fuzz FuzzReadCSV -fuzztime 30s
func FuzzReadCSV(f *testing.F) {
	f.Add([]byte("n,x\n1,10\n2,19\n3,27\n"))
	f.Add([]byte(`{"steps":[{"concurrency":1,"achieved":10},{"concurrency":2,"achieved":19},{"concurrency":3,"achieved":27}]}`))
	const name = "data.csv"
	f.Fuzz(func(t *testing.T, data []byte) {
		pts, err := ParsePoints(name, data)
		if err != nil {
			checkPositions(t, name, data, err)
			return
		}
		if len(pts) < 3 {
			t.Fatalf("accepted %d points", len(pts))
		}
		csv := bytes.TrimLeft(bytes.TrimPrefix(data, []byte("\ufeff")), " \t\r\n")[0] != '{'
		for i, p := range pts {
			if !finite(p.N) || !finite(p.X) || p.N <= 0 || p.X <= 0 {
				t.Fatalf("accepted point %d = %v", i, p)
			}
			if i > 0 && (p.N < pts[i-1].N || (csv && p.N == pts[i-1].N)) {
				t.Fatalf("points not in increasing N: %v", pts)
			}
		}
		if _, err := FitUSL(pts); err != nil {
			t.Fatalf("accepted points FitUSL rejects: %v", err)
		}
	})
}

// checkPositions asserts err is scenarios.Errors for name whose positions
// all lie inside data: a real line, a column at most one past its end.
func checkPositions(t *testing.T, name string, data []byte, err error) {
	t.Helper()
	var es scenarios.Errors
	if !errors.As(err, &es) || len(es) == 0 {
		t.Fatalf("error %v (%T) is not scenarios.Errors", err, err)
	}
	lines := bytes.Split(bytes.TrimPrefix(data, []byte("\ufeff")), []byte("\n"))
	for _, e := range es {
		if e.File != name || e.Msg == "" {
			t.Fatalf("problem %+v: wrong file or no message", e)
		}
		if e.Line == 0 && e.Col == 0 {
			continue // the whole file
		}
		if e.Line < 1 || e.Line > len(lines) || e.Col < 1 || e.Col > len(lines[e.Line-1])+1 {
			t.Fatalf("problem %q at %d:%d is outside the input (%d lines)", e, e.Line, e.Col, len(lines))
		}
	}
	if len(es) > maxReadErrors+1 {
		t.Fatalf("%d problems, more than the cap %d", len(es), maxReadErrors)
	}
}
