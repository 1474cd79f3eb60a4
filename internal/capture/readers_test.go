package capture

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/loadcap/loadcap/scenarios"
	"github.com/loadcap/loadcap/test/israce"
)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm.UTC()
}

// one reads the single record of a one-line log.
func one(t *testing.T, r Reader) Record {
	t.Helper()
	recs := readAll(t, r)
	if len(recs) != 1 {
		t.Fatalf("read %d records, want 1; malformed: %v", len(recs), r.Malformed().Err())
	}
	return recs[0]
}

func TestCombinedFields(t *testing.T) {
	tests := []struct {
		name string
		line string
		want Record
	}{
		{
			name: "offset to UTC",
			line: `1.2.3.4 - - [01/Jan/2026:00:30:00 +0530] "GET /x?a=1 HTTP/1.1" 200 5 "-" "-"`,
			want: Record{Time: mustTime(t, "2025-12-31T19:00:00Z"), Method: "GET", Path: "/x?a=1", Status: 200},
		},
		{
			name: "negative offset and leap-year day",
			line: `1.2.3.4 - - [29/Feb/2028:23:59:59 -0800] "GET / HTTP/1.0" 500 0 "-" "-"`,
			want: Record{Time: mustTime(t, "2028-03-01T07:59:59Z"), Method: "GET", Path: "/", Status: 500},
		},
		{
			name: "HTTP/0.9 request without protocol, dash size",
			line: `::1 - - [11/Nov/2026:10:00:00 +0000] "GET /old" 200 - "-" "-"`,
			want: Record{Time: mustTime(t, "2026-11-11T10:00:00Z"), Method: "GET", Path: "/old", Status: 200},
		},
		{
			name: "Apache escapes in the request and the agent",
			line: `1.2.3.4 - bob [11/Nov/2026:10:00:00 +0000] "GET /q?s=\"x\" HTTP/1.1" 200 1 "-" "a \\ b \"c\""`,
			want: Record{Time: mustTime(t, "2026-11-11T10:00:00Z"), Method: "GET", Path: `/q?s="x"`, Status: 200,
				Header: []Header{{"User-Agent", `a \ b "c"`}}},
		},
		{
			name: "nginx hex escapes, invalid UTF-8 in the agent",
			line: `1.2.3.4 - - [11/Nov/2026:10:00:00 +0000] "GET /caf\xC3\xA9 HTTP/1.1" 200 1 "-" "bad \xFF byte"`,
			want: Record{Time: mustTime(t, "2026-11-11T10:00:00Z"), Method: "GET", Path: "/caf%C3%A9", Status: 200,
				Header: []Header{{"User-Agent", "bad \ufffd byte"}}},
		},
		{
			name: "absolute-form target",
			line: `1.2.3.4 - - [11/Nov/2026:10:00:00 +0000] "GET https://user@api.example:8443 HTTP/1.1" 200 1 "https://r.example/" "-" "extra" "fields"`,
			want: Record{Time: mustTime(t, "2026-11-11T10:00:00Z"), Method: "GET", Scheme: "https", Host: "api.example:8443", Path: "/", Status: 200,
				Header: []Header{{"Referer", "https://r.example/"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := one(t, NewLogReader(strings.NewReader(tt.line+"\n"), "a.log", nil))
			tt.want.Source = Source{"a.log", 1}
			if !recordsEqual(got, tt.want) {
				t.Errorf("got  %s\nwant %s", got.AppendJSON(nil), tt.want.AppendJSON(nil))
			}
		})
	}
}

func TestLogFormatVariables(t *testing.T) {
	tests := []struct {
		name   string
		format string
		line   string
		want   Record
	}{
		{
			name:   "msec, method and uri, braces, host fallback",
			format: `${msec} $request_method $request_uri $host "$http_x_forwarded_for" $upstream_addr`,
			line:   `1794387600.125 POST /api/x?y=1 shop.example.com "10.0.0.1, 10.0.0.2" 127.0.0.1:9000`,
			want: Record{Time: mustTime(t, "2026-11-11T09:00:00.125Z"), Method: "POST", Host: "shop.example.com", Path: "/api/x?y=1",
				Header: []Header{{"X-Forwarded-For", "10.0.0.1, 10.0.0.2"}}},
		},
		{
			name:   "http_host wins over host; dashes are empty",
			format: `[$time_local] $host $http_host "$request" $status "$http_referer" $request_time`,
			line:   `[11/Nov/2026:10:00:00 +0000] shop.example.com shop.example.com:8080 "GET / HTTP/1.1" 499 "-" -`,
			want:   Record{Time: mustTime(t, "2026-11-11T10:00:00Z"), Method: "GET", Host: "shop.example.com:8080", Path: "/", Status: 499},
		},
		{
			name:   "connection and content-length headers are not kept",
			format: `$time_iso8601 "$request" "$http_connection" "$http_content_length" "$http_x_api_key"`,
			line:   `2026-11-11T10:00:00Z "POST /a HTTP/1.1" "keep-alive" "12" "k-1"`,
			want: Record{Time: mustTime(t, "2026-11-11T10:00:00Z"), Method: "POST", Path: "/a",
				Header: []Header{{"X-Api-Key", "k-1"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := CompileLogFormat(tt.format)
			if err != nil {
				t.Fatal(err)
			}
			got := one(t, NewLogReader(strings.NewReader(tt.line), "a.log", f))
			tt.want.Source = Source{"a.log", 1}
			if !recordsEqual(got, tt.want) {
				t.Errorf("got  %s\nwant %s", got.AppendJSON(nil), tt.want.AppendJSON(nil))
			}
		})
	}
}

func TestCompileLogFormat(t *testing.T) {
	tests := []struct {
		name    string
		format  string
		wantErr string // "" = valid
		wantSrc string // the joined format, when valid
	}{
		{name: "combined", format: CombinedLogFormat, wantSrc: CombinedLogFormat},
		{
			name: "nginx.conf directive with escape=",
			format: "log_format  main escape=default '$remote_addr [$time_local] '\n" +
				"    '\"$request\" $status';",
			wantSrc: `$remote_addr [$time_local] "$request" $status`,
		},
		{name: "single-quoted pieces", format: `'$time_local ' '"$request"'`, wantSrc: `$time_local "$request"`},
		{name: "a double-quoted raw format is taken as written", format: `"$request" [$time_local]`, wantSrc: `"$request" [$time_local]`},
		{name: "no variables", format: "just text", wantErr: "the format has no variables"},
		{name: "adjacent variables", format: `$time_local$request`, wantErr: "1:12: log_format: $request follows $time_local with nothing between them"},
		{name: "no time", format: `"$request" $status`, wantErr: "needs a time"},
		{name: "no request", format: `[$time_local] $status`, wantErr: "needs $request"},
		{name: "unclosed brace", format: `[$time_local] ${request`, wantErr: "1:15: log_format: ${request is not closed"},
		{name: "lone dollar", format: `[$time_local] $ "$request"`, wantErr: "1:15: log_format: $ is not followed by a variable name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := CompileLogFormat(tt.format)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !scenarios.Invalid(err) {
					t.Fatalf("err = %v, want an invalid-input error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.String() != tt.wantSrc {
				t.Errorf("format = %q, want %q", f.String(), tt.wantSrc)
			}
		})
	}
}

// TestLongRecords: a record over the size bound is skipped as malformed,
// and the lines after it keep their numbers.
func TestLongRecords(t *testing.T) {
	const max = 1 << 10
	long := strings.Repeat("x", 100<<10) // longer than the bufio buffer too
	good := `1.2.3.4 - - [11/Nov/2026:10:00:00 +0000] "GET /ok HTTP/1.1" 200 1 "-" "-"`
	mid := `1.2.3.4 - - [11/Nov/2026:10:00:00 +0000] "GET /` + strings.Repeat("m", 900) + ` HTTP/1.1" 200 1 "-" "-"`
	jl := `{"time":"2026-11-11T10:00:00Z","method":"GET","path":"/ok"}`
	gorReq := func(id, path string) string {
		return "1 " + id + " 1794387600000000000 0\nGET " + path + " HTTP/1.1\r\nHost: h\r\n\r\n"
	}
	tests := []struct {
		name   string
		format Format
		input  string
		paths  []string
		line   int // of the long record
	}{
		{"log", FormatNginx, good + "\n" + long + "\n" + mid + "\n" + good + "\n", []string{"/ok", "/" + strings.Repeat("m", 900), "/ok"}, 2},
		{"jsonl", FormatJSONL, jl + "\n\n" + long + "\n" + jl + "\n", []string{"/ok", "/ok"}, 3},
		{"goreplay", FormatGoReplay, gorReq("a1", "/one") + "\n🐵🙈🙉\n" + gorReq("a2", "/"+long) + "\n🐵🙈🙉\n" + gorReq("a3", "/three"), []string{"/one", "/three"}, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewReader(strings.NewReader(tt.input), "in", tt.format, WithMaxRecord(max))
			if err != nil {
				t.Fatal(err)
			}
			var paths []string
			for _, rec := range readAll(t, r) {
				paths = append(paths, rec.Path)
			}
			if fmt.Sprint(paths) != fmt.Sprint(tt.paths) {
				t.Errorf("paths %.80q, want %.80q", paths, tt.paths)
			}
			m := r.Malformed()
			if m.Count != 1 || m.First[0].Source.Line != tt.line || !strings.Contains(m.First[0].Reason, "longer than 1024 bytes") {
				t.Errorf("malformed = %+v, want one at line %d", m, tt.line)
			}
		})
	}
}

func TestGzipInput(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	io.WriteString(zw, `1.2.3.4 - - [11/Nov/2026:10:00:00 +0000] "GET /gz HTTP/1.1" 200 1 "-" "-"`+"\n")
	zw.Close()
	r, err := NewReader(&buf, "a.log.gz", "")
	if err != nil {
		t.Fatal(err)
	}
	if rec := one(t, r); rec.Path != "/gz" {
		t.Errorf("path %q, want /gz", rec.Path)
	}
}

func TestHARBroken(t *testing.T) {
	entry := `{"startedDateTime":"2026-11-11T10:00:00Z","request":{"method":"GET","url":"http://h/a","headers":[]}}`
	tests := []struct {
		name    string
		doc     string
		records int
		line    int
		reason  string
	}{
		{"truncated after an entry", "{\"log\":{\"entries\":[\n" + entry + ",\n" + entry + ",\n{\"startedDate", 2, 4, "ends in the middle"},
		{"syntax error in an entry", "{\"log\":{\"entries\":[\n" + entry + ",\n{\"request\": ]}\n]}}", 1, 3, "invalid JSON"},
		{"no log", `{"version":"1.2"}`, 0, 1, "not a HAR file: no log"},
		{"entries not a list", "{\"log\":{\n\"entries\":{}}}", 0, 2, "log.entries is not a list"},
		{"not JSON", "GET / HTTP/1.1", 0, 1, "invalid JSON"},
		{"empty", "", 0, 1, "ends in the middle"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewHARReader(strings.NewReader(tt.doc), "x.har")
			if recs := readAll(t, r); len(recs) != tt.records {
				t.Errorf("read %d records, want %d", len(recs), tt.records)
			}
			m := r.Malformed()
			if m.Count != 1 || m.First[0].Source.Line != tt.line || !strings.Contains(m.First[0].Reason, tt.reason) {
				t.Errorf("malformed = %+v, want one at line %d with %q", m.First, tt.line, tt.reason)
			}
		})
	}
}

// TestGoReplayLookahead: a response fills its request's status when it
// comes within the look-ahead; records keep file order either way.
func TestGoReplayLookahead(t *testing.T) {
	var b strings.Builder
	req := func(id string, i int) {
		fmt.Fprintf(&b, "1 %s %d 0\nGET /r/%d HTTP/1.1\r\nHost: h\r\n\r\n\n🐵🙈🙉\n", id, 1794387600000000000+int64(i), i)
	}
	resp := func(id string, code int) {
		fmt.Fprintf(&b, "2 %s 1794387700000000000 1000\nHTTP/1.1 %d X\r\n\r\n\n🐵🙈🙉\n", id, code)
	}
	req("aa", 0)
	req("bb", 1)
	resp("bb", 404) // answers the second request, while the first waits
	for i := 2; i < DefaultGoReplayLookahead+5; i++ {
		req(fmt.Sprintf("%x", 0x100+i), i)
	}
	resp("aa", 503) // too late: the first request has been returned
	recs := readAll(t, NewGoReplayReader(strings.NewReader(b.String()), "x.gor"))
	if len(recs) != DefaultGoReplayLookahead+5 {
		t.Fatalf("read %d records", len(recs))
	}
	for i, rec := range recs {
		if want := fmt.Sprintf("/r/%d", i); rec.Path != want {
			t.Fatalf("record %d is %s, want %s", i, rec.Path, want)
		}
	}
	if recs[0].Status != 0 || recs[1].Status != 404 {
		t.Errorf("statuses %d, %d; want 0 (answer came too late), 404", recs[0].Status, recs[1].Status)
	}
}

// TestParseFormat: the CLI's --format names map to formats; a bad one is
// invalid input.
func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"nginx": FormatNginx, "Combined": FormatNginx, "har": FormatHAR, "gor": FormatGoReplay, "jsonl": FormatJSONL} {
		if got, err := ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseFormat("csv"); !scenarios.Invalid(err) {
		t.Errorf("ParseFormat(csv) = %v, want an invalid-input error", err)
	}
}

// genReader produces n generated records of a format without holding them:
// a stand-in for a multi-gigabyte file.
type genReader struct {
	n, i       int
	head, tail string
	rec        func(i int) string
	buf        []byte
}

func (g *genReader) Read(p []byte) (int, error) {
	for len(g.buf) == 0 {
		switch {
		case g.i == 0 && g.head != "":
			g.buf = append(g.buf, g.head...)
			g.head = ""
		case g.i < g.n:
			g.buf = append(g.buf, g.rec(g.i)...)
			g.i++
		case g.tail != "":
			g.buf = append(g.buf, g.tail...)
			g.tail = ""
		default:
			return 0, io.EOF
		}
	}
	n := copy(p, g.buf)
	g.buf = g.buf[n:]
	return n, nil
}

// TestFlatMemory streams over a hundred megabytes through each reader and
// checks that the heap stays small: readers never hold the file.
func TestFlatMemory(t *testing.T) {
	if testing.Short() || israce.Enabled {
		// Single-goroutine code: nothing for the race detector, which
		// would only make it ten times slower.
		t.Skip("streams over a hundred megabytes")
	}
	body := strings.Repeat("z", 2000)
	tests := []struct {
		name   string
		format Format
		gen    *genReader
	}{
		{"combined", FormatNginx, &genReader{n: 60_000, rec: func(i int) string {
			return fmt.Sprintf(`10.0.0.1 - - [11/Nov/2026:10:00:00 +0000] "GET /p/%d?%s HTTP/1.1" 200 1 "-" "-"`+"\n", i, body)
		}}},
		{"har", FormatHAR, &genReader{n: 30_000, head: `{"log":{"version":"1.2","entries":[`, tail: "]}}", rec: func(i int) string {
			sep := ","
			if i == 0 {
				sep = ""
			}
			return sep + fmt.Sprintf(`{"startedDateTime":"2026-11-11T10:00:00Z","request":{"method":"POST","url":"http://h/p/%d","headers":[],"postData":{"text":"%s"}},"response":{"status":200,"content":{"text":"%s"}}}`, i, body, body) + "\n"
		}}},
		{"goreplay", FormatGoReplay, &genReader{n: 60_000, rec: func(i int) string {
			return fmt.Sprintf("1 %x 1794387600000000000 0\nPOST /p/%d HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s\n🐵🙈🙉\n", i+1, i, len(body), body)
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewReader(tt.gen, "big", tt.format)
			if err != nil {
				t.Fatal(err)
			}
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			before := ms.HeapInuse
			var n int
			var peak uint64
			for {
				_, err := r.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if n++; n%5_000 == 0 {
					runtime.ReadMemStats(&ms)
					peak = max(peak, ms.HeapInuse)
				}
			}
			if n != tt.gen.n || r.Malformed().Count != 0 {
				t.Fatalf("read %d records (malformed %v), want %d", n, r.Malformed().Err(), tt.gen.n)
			}
			t.Logf("heap grew by %.1f MiB over %d records", float64(int64(peak)-int64(before))/(1<<20), n)
			// The input is 120+ MB; a reader that kept records would show it.
			if grow := int64(peak) - int64(before); grow > 24<<20 {
				t.Errorf("heap grew by %d MiB while streaming", grow>>20)
			}
		})
	}
}

// recordsEqual compares records, nil and empty slices alike.
func recordsEqual(a, b Record) bool {
	return bytes.Equal(a.AppendJSON(nil), b.AppendJSON(nil)) && a.Time.Equal(b.Time)
}

// TestByteOrderMark: a UTF-8 BOM (Fiddler's HAR export, some Windows logs)
// is skipped by every reader.
func TestByteOrderMark(t *testing.T) {
	const bom = "\xef\xbb\xbf"
	inputs := map[Format]string{
		FormatNginx:    `1.2.3.4 - - [11/Nov/2026:10:00:00 +0000] "GET /bom HTTP/1.1" 200 1 "-" "-"`,
		FormatHAR:      `{"log":{"entries":[{"startedDateTime":"2026-11-11T10:00:00Z","request":{"method":"GET","url":"http://h/bom","headers":[]}}]}}`,
		FormatGoReplay: "1 a 1794387600000000000 0\nGET /bom HTTP/1.1\r\n\r\n",
		FormatJSONL:    `{"time":"2026-11-11T10:00:00Z","method":"GET","path":"/bom"}`,
	}
	for f, in := range inputs {
		t.Run(string(f), func(t *testing.T) {
			for _, detect := range []Format{f, ""} {
				r, err := NewReader(strings.NewReader(bom+in), "x", detect)
				if err != nil {
					t.Fatal(err)
				}
				if rec := one(t, r); rec.Path != "/bom" || rec.Source.Line != 1 {
					t.Errorf("format %q: path %q at line %d", detect, rec.Path, rec.Source.Line)
				}
			}
		})
	}
}

// gzipFlushed compresses data flushing every n bytes, as a writer that
// was killed mid-file leaves it: whole deflate blocks up to the cut.
func gzipFlushed(t testing.TB, data []byte, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	for len(data) > 0 {
		k := min(n, len(data))
		if _, err := zw.Write(data[:k]); err != nil {
			t.Fatal(err)
		}
		if err := zw.Flush(); err != nil {
			t.Fatal(err)
		}
		data = data[k:]
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestGzipCut: a gzip recording cut anywhere (a copy interrupted, a disk
// that filled) still gives the records before the cut, in every format,
// and its problems say where it breaks, as invalid input for --strict.
func TestGzipCut(t *testing.T) {
	for _, name := range []string{"access.log", "sample.har", "sample.gor", "sample.jsonl"} {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile("testdata/" + name)
			if err != nil {
				t.Fatal(err)
			}
			whole, err := NewReader(bytes.NewReader(data), name, "")
			if err != nil {
				t.Fatal(err)
			}
			full := readAll(t, whole)
			gz := gzipFlushed(t, data, 128)
			kept := map[int]bool{}
			for cut := 20; cut < len(gz); cut++ {
				gzName := name + ".gz"
				r, err := NewReader(bytes.NewReader(gz[:cut]), gzName, "")
				if err != nil {
					t.Fatalf("cut at %d: %v", cut, err)
				}
				recs := readAll(t, r)
				if len(recs) > len(full) {
					t.Fatalf("cut at %d: %d records, more than the whole file's %d", cut, len(recs), len(full))
				}
				for i, rec := range recs {
					if w := full[i]; rec.Method != w.Method || rec.Path != w.Path || !rec.Time.Equal(w.Time) || rec.Source.Line != w.Source.Line {
						t.Fatalf("cut at %d: record %d is %s %s (line %d), want %s %s (line %d)", cut, i, rec.Method, rec.Path, rec.Source.Line, w.Method, w.Path, w.Source.Line)
					}
				}
				m := r.Malformed()
				c := m.Cut()
				if c == nil {
					t.Fatalf("cut at %d: no cut reported; problems: %v", cut, m.Err())
				}
				if c.Source.File != gzName || c.Source.Line < 1 || !strings.Contains(c.Reason, fmt.Sprintf("the %d records before it are kept", len(recs))) {
					t.Fatalf("cut at %d: reported as %s", cut, c)
				}
				if err := m.Err(); !scenarios.Invalid(err) || !strings.Contains(err.Error(), gzName+":") || !strings.Contains(err.Error(), "cut short") {
					t.Fatalf("cut at %d: problems %v", cut, err)
				}
				kept[len(recs)] = true
			}
			if len(kept) < 2 {
				t.Errorf("every cut kept the same number of records (%v): the records before a cut are lost", kept)
			}
		})
	}
}
