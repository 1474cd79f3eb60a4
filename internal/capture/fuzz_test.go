package capture

import (
	"bytes"
	"io"
	"os"
	"testing"
	"time"

	"github.com/loadcap/loadcap/scenarios"
)

// addFixture seeds a fuzz target with a testdata file.
func addFixture(f *testing.F, name string) {
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
}

// checkReader drains r and checks what every reader promises: no panic, no
// error on in-memory input, only valid records whose JSONL form reads back
// the same, positions inside the input, a consistent malformed report.
func checkReader(t *testing.T, data []byte, r Reader) {
	t.Helper()
	lines := bytes.Count(data, []byte("\n")) + 1
	n := 0
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if err := rec.Validate(); err != nil {
			t.Fatalf("returned an invalid record (%v): %s", err, rec.AppendJSON(nil))
		}
		if rec.Source.File == "fuzz" && (rec.Source.Line < 1 || rec.Source.Line > lines) {
			t.Fatalf("source %s outside the input's %d lines", rec.Source, lines)
		}
		line := rec.AppendJSON(nil)
		back, err := decodeJSONRecord(line)
		if err != nil {
			t.Fatalf("own JSONL does not read back (%v): %s", err, line)
		}
		if err := back.Validate(); err != nil {
			t.Fatalf("JSONL reads back invalid (%v): %s", err, line)
		}
		if again := back.AppendJSON(nil); !bytes.Equal(again, line) || !back.Time.Equal(rec.Time) {
			t.Fatalf("JSONL round trip changed the record:\n%s\n%s", line, again)
		}
		if n++; n > len(data)+1 {
			t.Fatalf("more records than input bytes")
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("Next after the end = %v, want io.EOF", err)
	}
	m := r.Malformed()
	if m.Count < int64(len(m.First)) || len(m.First) > MaxProblems || (m.Count > 0) != (len(m.First) > 0) {
		t.Fatalf("inconsistent report: count %d, %d listed", m.Count, len(m.First))
	}
	for _, p := range m.First {
		if p.Reason == "" || p.Source.File != "fuzz" || p.Source.Line < 1 || p.Source.Line > lines {
			t.Fatalf("bad problem %q (input has %d lines)", p, lines)
		}
	}
	if m.Count > 0 && !scenarios.Invalid(m.Err()) {
		t.Fatalf("Malformed.Err is not invalid input: %v", m.Err())
	}
}

func FuzzCombined(f *testing.F) {
	addFixture(f, "access.log")
	f.Add([]byte(`1.2.3.4 - - [11/Nov/2026:10:00:00 +0000] "GET http://[::1]:80/a\x20b HTTP/1.1" 200 1 "-" "\xff\x00\r"`))
	f.Add([]byte(`1.2.3.4 - - [11/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1 "\\" "\\\\"` + "\n\n\r\n"))
	f.Add([]byte("\"\"\"\"\n[]\n - - [ "))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkReader(t, data, NewLogReader(bytes.NewReader(data), "fuzz", nil, WithMaxRecord(4096)))
	})
}

func FuzzLogFormat(f *testing.F) {
	custom, err := os.ReadFile("testdata/custom.format")
	if err != nil {
		f.Fatal(err)
	}
	log, err := os.ReadFile("testdata/custom.log")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(custom), log)
	f.Add(`$msec "$request" $request_time $http_x_y`, []byte(`1794387600.5 "PUT /x HTTP/1.1" 0.5 y`))
	f.Add(`${time_iso8601}|$request_method|$request_uri|$status|$request_body`, []byte("2026-11-11T10:00:00Z|GET|/|200|\\x00\\xff\n"))
	f.Fuzz(func(t *testing.T, format string, data []byte) {
		lf, err := CompileLogFormat(format)
		if err != nil {
			if !scenarios.Invalid(err) {
				t.Fatalf("compile error is not invalid input: %v", err)
			}
			return
		}
		checkReader(t, data, NewLogReader(bytes.NewReader(data), "fuzz", lf, WithMaxRecord(4096)))
	})
}

func FuzzHAR(f *testing.F) {
	addFixture(f, "sample.har")
	f.Add([]byte(`{"log":{"entries":[{"startedDateTime":"2026-11-11T10:00:00+01:00","request":{"method":"GET","url":"https://h/a b#c","headers":[{"name":"X","value":"\u0000"}]}}]}}`))
	f.Add([]byte(`{"log":{"entries":[[],{},null,1,"x",{"request":{"postData":{"text":"=","encoding":"base64"}}}]}}`))
	f.Add([]byte(`{"log":{"pages":[{"a":[[[{}]]]}],"entries":[`))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkReader(t, data, NewHARReader(bytes.NewReader(data), "fuzz"))
	})
}

func FuzzGoReplay(f *testing.F) {
	addFixture(f, "sample.gor")
	f.Add([]byte("1 1 1 0\nPOST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n\n🐵🙈🙉\n2 1 2 0\nHTTP/1.1 999 X"))
	f.Add([]byte("🐵🙈🙉\n\n1 ab 5\nGET http://h HTTP/1.0\nHost: a b\n\nbody\n🐵🙈🙉"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkReader(t, data, NewGoReplayReader(bytes.NewReader(data), "fuzz", WithMaxRecord(4096)))
	})
}

func FuzzJSONL(f *testing.F) {
	addFixture(f, "sample.jsonl")
	addFixture(f, "sample.har.golden.jsonl")
	f.Add([]byte(`{"time":"2026-11-11T10:00:00+14:00","method":"GET","path":"/","body":"","body_base64":"","source":"a:007"}`))
	f.Add([]byte(`{"time":"0000-01-01T00:00:00Z","method":"GET","path":"/","headers":[["a","\ud800"]],"status":99}`))
	f.Add([]byte(`{"time":"2026-11-11T10:00:00Z","method":"GET","path":"/\u00e9\n","headers":[["A","\/\b"]],"status":0200}`))
	f.Add([]byte(`{"Time":"2026-11-11T10:00:00Z","method":"GET","path":"/","body":null,"status":2e2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkReader(t, data, NewJSONLReader(bytes.NewReader(data), "fuzz", WithMaxRecord(4096)))
		// The fast decoder agrees with encoding/json whenever it answers.
		for _, line := range bytes.Split(data, []byte("\n")) {
			fast, ok := decodeFast(line)
			if !ok {
				continue
			}
			slow, err := decodeSlow(line)
			if err != nil {
				t.Fatalf("fast decoder accepted what encoding/json rejects (%v): %q", err, line)
			}
			if !bytes.Equal(fast.AppendJSON(nil), slow.AppendJSON(nil)) || !fast.Time.Equal(slow.Time) ||
				(fast.Body == nil) != (slow.Body == nil) || len(fast.Header) != len(slow.Header) {
				t.Fatalf("decoders differ on %q:\n%s\n%s", line, fast.AppendJSON(nil), slow.AppendJSON(nil))
			}
		}
	})
}

// FuzzRewriteRules checks that ParseRules never panics, reports problems
// inside the input, and that an accepted rule file only ever produces
// valid records.
func FuzzRewriteRules(f *testing.F) {
	rules, err := os.ReadFile("testdata/rewrite.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(rules)
	f.Add([]byte("paths: [{match: '^/(.*)', replace: '$1'}]\n"))
	f.Add([]byte("paths: [{match: 'x', replace: ' '}]\nids: [{field: a, prefix: p-}, {query: q, match: '(?P<id>\\d)', offset: 9223372036854775807}]\n"))
	f.Add([]byte("a: &a [*a]\nids: *a\n"))
	f.Add([]byte("<<: {host: h}\nheaders: {set: {A: ''}, add: {A: b}, drop: [a]}\n"))
	samples := []Record{
		{Method: "GET", Path: "/orders/1234?user_id=5&q=7", Header: []Header{{"X-Cart-Id", "1"}, {"Cookie", "x"}}},
		{Method: "POST", Host: "cdn.example.com", Path: "/api/v1/orders/99999999999999999999", Body: []byte(`{"order":{"id":1,"items":[{"sku":"SKU-1"}]},"a":"1"}`)},
		{Method: "DELETE", Path: "/legacy/x y", Header: []Header{{"x-forwarded-for", "1"}}, Body: []byte(`[1,{"a":[2]}]`)},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rw, err := ParseRules("r.yaml", data)
		if err != nil {
			es, ok := err.(scenarios.Errors)
			if !ok || len(es) == 0 {
				t.Fatalf("error is %T, want scenarios.Errors: %v", err, err)
			}
			// YAML breaks lines at \r\n, \n and a lone \r.
			lines := bytes.Count(bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n")), []byte("\n")) +
				bytes.Count(bytes.ReplaceAll(data, []byte("\r\n"), nil), []byte("\r")) + 1
			for _, e := range es {
				if e.File != "r.yaml" || e.Msg == "" || e.Line < 0 || e.Line > lines+1 {
					t.Fatalf("bad error %v (input has %d lines)", e, lines)
				}
			}
			return
		}
		for _, s := range samples {
			for k := 0; k < 3; k++ {
				rec := s
				rec.Time = time.Unix(1794387600, 0).UTC()
				rec.Path = normalizePath(rec.Path)
				if rw.Apply(&rec, k) {
					if err := rec.Validate(); err != nil {
						t.Fatalf("copy %d of %s rewritten into an invalid record: %v\n%s", k, s.Path, err, rec.AppendJSON(nil))
					}
				}
			}
		}
	})
}

// FuzzGzipCut checks a gzip recording cut anywhere, in each of the four
// formats: never a panic or a read error, only the records a whole read
// gives before the cut (the same requests at the same lines), and a cut
// reported, inside the input, whenever records were lost to it. Seed corpus:
// the testdata recordings.
//
//	go test ./internal/capture -run '^$' -fuzz FuzzGzipCut -fuzztime 30s
func FuzzGzipCut(f *testing.F) {
	for i, name := range []string{"access.log", "sample.har", "sample.gor", "sample.jsonl"} {
		data, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, uint16(len(data)/2), uint8(i), uint8(64))
	}
	formats := []Format{FormatNginx, FormatHAR, FormatGoReplay, FormatJSONL}
	f.Fuzz(func(t *testing.T, data []byte, cut uint16, format, flush uint8) {
		fm := formats[int(format)%len(formats)]
		gz := gzipFlushed(t, data, int(flush)+1)
		at := 10 + int(cut)%max(len(gz)-10, 1)
		whole, err := NewReader(bytes.NewReader(data), "fuzz", fm, WithMaxRecord(4096))
		if err != nil {
			t.Fatal(err)
		}
		full := readAll(t, whole)
		r, err := NewReader(bytes.NewReader(gz[:min(at, len(gz))]), "fuzz", fm, WithMaxRecord(4096))
		if err != nil {
			return // the gzip header itself is cut: nothing was read
		}
		checkReader(t, data, r)
		r, _ = NewReader(bytes.NewReader(gz[:min(at, len(gz))]), "fuzz", fm, WithMaxRecord(4096))
		recs := readAll(t, r)
		if len(recs) > len(full) {
			t.Fatalf("%d records from the cut file, %d from the whole", len(recs), len(full))
		}
		for i, rec := range recs {
			if w := full[i]; rec.Method != w.Method || rec.Path != w.Path || !rec.Time.Equal(w.Time) || rec.Source != w.Source {
				t.Fatalf("record %d is %s %s at %s, the whole file's is %s %s at %s", i, rec.Method, rec.Path, rec.Source, w.Method, w.Path, w.Source)
			}
		}
		// A reader that stops before the cut (a HAR document that ends,
		// or is no HAR) need not see it; then it lost nothing, or says
		// why it stopped.
		m := r.Malformed()
		c := m.Cut()
		if at < len(gz) && c == nil && len(recs) < len(full) && m.Count == 0 {
			t.Fatalf("cut at %d of %d bytes: %d of %d records and no problem reported", at, len(gz), len(recs), len(full))
		}
		if at >= len(gz) && c != nil {
			t.Fatalf("a whole stream reported cut: %s", c)
		}
	})
}
