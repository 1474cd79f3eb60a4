package reports

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/loadcap/loadcap/internal/cli"
	"github.com/loadcap/loadcap/scenarios"
	"github.com/loadcap/loadcap/scenarios/slo"
)

func runBytes(f *testing.F, r *Run) []byte {
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		f.Fatal(err)
	}
	return b.Bytes()
}

// FuzzParseRun checks what ParseRun promises the commands that read
// run.json: it never panics; a refusal is scenarios.Errors naming the
// file; an accepted result passes Validate, balances its totals, decodes
// every request's histogram, compares with itself without error and
// without a regression, renders as HTML, and reads back the same after
// writing. Seed corpus: real results (NewRun, the synthetic recorder) and
// testdata/fuzz/FuzzParseRun.
//
//	go test ./reports -run '^$' -fuzz FuzzParseRun -fuzztime 30s
func FuzzParseRun(f *testing.F) {
	f.Add(runBytes(f, NewRun(sample(), Meta{Version: "test"})))
	f.Add(runBytes(f, steady(12, 3).build()))
	failing := synth{seconds: 11, names: []string{"buy", "home"}, rps: []float64{20, 5}, medianMs: []float64{5, 2}, sigma: 0.3, seed: 2,
		failShare: map[string]float64{"5xx": 0.1}, dropped: func(t int) int64 { return int64(t % 3) }}
	f.Add(runBytes(f, failing.build()))
	const name = "fuzz/run.json"
	allow, err := slo.ParseAllowances(slo.DefaultMaxRegression)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRun(name, data)
		if err != nil {
			var es scenarios.Errors
			if !errors.As(err, &es) || len(es) == 0 || len(es) > maxRunProblems+1 {
				t.Fatalf("error %v (%T) is not scenarios.Errors", err, err)
			}
			for _, e := range es {
				if e.File != name || e.Msg == "" {
					t.Fatalf("problem %q does not name the file", e)
				}
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("accepted, then invalid: %v", err)
		}
		if !bytes.Contains(data, []byte(`"lost"`)) {
			if err := r.CheckTotals(); err != nil {
				t.Fatalf("accepted unbalanced totals: %v", err)
			}
		}
		for _, n := range r.RequestNames() {
			if _, err := r.Histogram(n); err != nil {
				t.Fatalf("accepted a histogram that does not decode: %v", err)
			}
		}
		c, err := Compare(r, r, allow, Resamples(20))
		if err != nil {
			t.Fatalf("compare with itself: %v", err)
		}
		if c.Regressed {
			t.Fatalf("a run regressed against itself: %+v", c.Checks)
		}
		if err := WriteHTML(io.Discard, HTMLInput{Run: r}); err != nil {
			t.Fatalf("html: %v", err)
		}
		var b bytes.Buffer
		if err := r.WriteJSON(&b); err != nil {
			t.Fatal(err)
		}
		back, err := ParseRun(name, b.Bytes())
		if err != nil {
			t.Fatalf("written back, refused: %v", err)
		}
		if back.Totals != r.Totals || len(back.Intervals) != len(r.Intervals) || len(back.Requests) != len(r.Requests) {
			t.Fatalf("round trip changed the result")
		}
	})
}

// FuzzReadInputs checks the report command's reading of find and plan
// results (capacity find --out, capacity plan --out): never a panic, a
// refusal with an exit code (104 or 2), and an accepted input that renders
// as HTML and, for a find result, as JUnit. Seed corpus: capacity's find.json and plan results.
//
//	go test ./reports -run '^$' -fuzz FuzzReadInputs -fuzztime 30s
func FuzzReadInputs(f *testing.F) {
	for _, p := range []string{"../capacity/testdata/usl/find.json", "../capacity/testdata/plan/cart-find.json",
		"../capacity/testdata/plan/golden/steady.json", "../capacity/testdata/plan/golden/presale.json"} {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "result.json")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		in, err := ReadInputs([]string{p})
		if err != nil {
			if code := cli.ExitCode(err); code != int(cli.ExitInvalid) && code != int(cli.ExitUsage) {
				t.Fatalf("refused with exit %d: %v", code, err)
			}
			return
		}
		if err := WriteHTML(io.Discard, in); err != nil {
			t.Fatalf("html: %v", err)
		}
		if in.Find == nil {
			return // JUnit has nothing to say of a plan alone
		}
		if err := WriteJUnit(io.Discard, JUnitInput{Find: in.Find}); err != nil {
			t.Fatalf("junit: %v", err)
		}
	})
}

// FuzzIntervalsFile checks the intervals file reader (scanIntervals, as
// ParseRun reads a long run's seconds): it never panics; every problem
// names the file, and those within a line name its line; the seconds it
// accepts pass the same checks as embedded ones, their count within what
// it reports. Seed corpus: a real stream (soak through a Recorder), the
// same cut short and with a broken line, and the empty file.
//
//	go test ./reports -run '^$' -fuzz FuzzIntervalsFile -fuzztime 30s
func FuzzIntervalsFile(f *testing.F) {
	dir := f.TempDir()
	path := filepath.Join(dir, "run.intervals")
	s, err := CreateIntervalStream(path)
	if err != nil {
		f.Fatal(err)
	}
	soak(f, s, 3, 2, 6, 0, nil)
	if err := s.finish(); err != nil {
		f.Fatal(err)
	}
	whole, err := os.ReadFile(path + ".partial")
	if err != nil {
		f.Fatal(err)
	}
	id := s.id
	f.Add(whole)
	f.Add(whole[:len(whole)/2])
	var broken bytes.Buffer
	zw := gzip.NewWriter(&broken)
	fmt.Fprintf(zw, "{\"schema\":%q,\"id\":%q}\n{\"t\":0,\"end_s\":1,\"histograms\":{\"a\":\"HISTFAAAA\"}}\n{\"t\":-1}\nnot json\n", IntervalsSchema, id)
	zw.Close()
	f.Add(broken.Bytes())
	f.Add([]byte{})
	const name = "fuzz/run.intervals"
	f.Fuzz(func(t *testing.T, data []byte) {
		v := &runCheck{file: name}
		chk := newIntervalCheck()
		seen := 0
		n, _ := scanIntervals(v, bytes.NewReader(data), id, func(line int, iv *Interval) {
			seen++
			if line < 2 {
				t.Fatalf("a second on line %d, before the header's end", line)
			}
			w := &runCheck{file: name}
			chk.check(w, "x", iv)
		})
		if n != seen {
			t.Fatalf("reported %d seconds, handed over %d", n, seen)
		}
		for _, e := range v.errs {
			if e.File != name || e.Msg == "" {
				t.Fatalf("problem %q does not name the file", e)
			}
		}
		if len(v.errs) > maxRunProblems+1 {
			t.Fatalf("%d problems, bound %d", len(v.errs), maxRunProblems+1)
		}
	})
}
