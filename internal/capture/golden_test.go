package capture

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loadcap/loadcap/test/testkit"
)

// fixtureScrub is the scrubbing the golden files are written with: the
// defaults plus a card number, a password and a token parameter.
func fixtureScrub(t *testing.T) *Scrubber {
	t.Helper()
	s, err := NewScrubber(ScrubConfig{Fields: []string{"card.number", "password"}, Query: []string{"token"}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// openFixture opens testdata/name as format f (with the custom log_format
// for custom.log).
func openFixture(t *testing.T, name string, f Format) ReadCloser {
	t.Helper()
	var opts []Option
	if name == "custom.log" {
		lf, err := os.ReadFile("testdata/custom.format")
		if err != nil {
			t.Fatal(err)
		}
		opts = append(opts, WithLogFormat(string(lf)))
	}
	r, err := Open(filepath.Join("testdata", name), f, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// readAll returns every record of r.
func readAll(t *testing.T, r Reader) []Record {
	t.Helper()
	var recs []Record
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return recs
		}
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
}

// problem is an expected malformed record: its line and a piece of the
// reason.
type problem struct {
	line   int
	reason string
}

var fixtures = []struct {
	name      string
	file      string
	format    Format
	records   int
	malformed []problem
}{
	{
		name: "combined", file: "access.log", format: FormatNginx, records: 9,
		malformed: []problem{
			{5, `request "\x16\x03\x01`},
			{8, "time"},
			{9, `request "-" is not`},
			{11, `no " - " after $remote_addr`},
			{14, "no \" \" after $status"},
			{15, `method "G<T" is not a token`},
		},
	},
	{
		name: "log_format", file: "custom.log", format: FormatNginx, records: 4,
		malformed: []problem{
			{4, `time "not-a-time"`},
			{5, `no "\" \"" after $http_authorization`},
			{6, `status "abc"`},
		},
	},
	{
		name: "har", file: "sample.har", format: FormatHAR, records: 4,
		malformed: []problem{
			{57, "request.url \"data:image"},
			{66, "startedDateTime \"last tuesday\""},
			{71, "no request"},
			{88, "request.headers.value: must be a string, got a JSON number"},
			{93, "entry is not an object"},
		},
	},
	{
		name: "goreplay", file: "sample.gor", format: FormatGoReplay, records: 5,
		malformed: []problem{
			{46, "is not a GoReplay header line"},
			{52, "the body holds 16 of its 100 bytes"},
			{71, `request line "GET /bad header HTTP/1.1"`},
		},
	},
	{
		name: "jsonl", file: "sample.jsonl", format: FormatJSONL, records: 4,
		malformed: []problem{
			{4, `time: "yesterday" is not an RFC 3339 time`},
			{5, "invalid JSON"},
			{7, "headers[0]: must be a [name, value] pair"},
			{8, `method "GE T" is not a token`},
			{10, `path "no-slash" does not start with /`},
		},
	},
}

// TestGolden imports each fixture (read, scrub, write JSONL) and compares
// the output with testdata/<file>.golden.jsonl; it checks that every
// malformed record is reported at its line, and that the output reads back
// as the same records.
func TestGolden(t *testing.T) {
	for _, fx := range fixtures {
		t.Run(fx.name, func(t *testing.T) {
			r := openFixture(t, fx.file, fx.format)
			var out bytes.Buffer
			w := NewWriter(&out, WithScrubber(fixtureScrub(t)))
			n, err := Copy(w, r)
			if err != nil {
				t.Fatal(err)
			}
			if n != int64(fx.records) {
				t.Errorf("wrote %d records, want %d", n, fx.records)
			}
			testkit.Golden(t, filepath.Join("testdata", fx.file+".golden.jsonl"), out.Bytes())

			m := r.Malformed()
			if m.Count != int64(len(fx.malformed)) || len(m.First) != len(fx.malformed) {
				t.Errorf("malformed: count %d, %d listed, want %d:\n%v", m.Count, len(m.First), len(fx.malformed), m.Err())
			}
			for i, want := range fx.malformed {
				if i >= len(m.First) {
					break
				}
				got := m.First[i]
				if got.Source.File != filepath.Join("testdata", fx.file) || got.Source.Line != want.line || !strings.Contains(got.Reason, want.reason) {
					t.Errorf("problem %d is %s, want line %d with %q", i, got, want.line, want.reason)
				}
			}

			// What import wrote, the JSONL reader reads back unchanged.
			back := readAll(t, NewJSONLReader(bytes.NewReader(out.Bytes()), "golden"))
			var again bytes.Buffer
			w2 := NewWriter(&again, WithoutScrubbing())
			for i := range back {
				if err := w2.Write(&back[i]); err != nil {
					t.Fatal(err)
				}
			}
			if err := w2.Flush(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again.Bytes(), out.Bytes()) {
				t.Errorf("the JSONL output does not survive a read and a write:\n--- first\n%s\n--- second\n%s", out.Bytes(), again.Bytes())
			}
		})
	}
}

// TestDetect: NewReader with no format picks the right reader for each
// fixture.
func TestDetect(t *testing.T) {
	for _, fx := range fixtures {
		t.Run(fx.name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", fx.file))
			if err != nil {
				t.Fatal(err)
			}
			if got := Detect(data); got != fx.format {
				t.Errorf("Detect = %q, want %q", got, fx.format)
			}
		})
	}
}

// TestMalformedErr: the report becomes scenarios.Errors with file:line,
// and says how many there were past the first MaxProblems.
func TestMalformedErr(t *testing.T) {
	var log strings.Builder
	for i := 0; i < 25; i++ {
		log.WriteString("garbage\n")
	}
	log.WriteString(`1.2.3.4 - - [11/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "-"` + "\n")
	r := NewLogReader(strings.NewReader(log.String()), "a.log", nil)
	if recs := readAll(t, r); len(recs) != 1 {
		t.Fatalf("read %d records, want 1", len(recs))
	}
	m := r.Malformed()
	if m.Count != 25 || len(m.First) != MaxProblems {
		t.Fatalf("count %d with %d listed, want 25 with %d", m.Count, len(m.First), MaxProblems)
	}
	msg := m.Err().Error()
	for _, want := range []string{"a.log:1: malformed record: no \" - \" after $remote_addr", "a.log:10: malformed record", "25 malformed records in all (the first 10 are listed)"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Err() lacks %q:\n%s", want, msg)
		}
	}
	if (Malformed{}).Err() != nil {
		t.Error("an empty report is an error")
	}
}
