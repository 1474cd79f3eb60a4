package reports

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/loadcap/loadcap/scenarios"
)

// runJSON is a valid run result with 30 one-second intervals, as a map to
// corrupt.
func runJSON(t testing.TB) map[string]any {
	t.Helper()
	var b bytes.Buffer
	if err := steady(30, 7).build().WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func writeRunJSON(t *testing.T, m map[string]any) string {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "run.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func obj(m map[string]any, keys ...string) map[string]any {
	for _, k := range keys {
		m = m[k].(map[string]any)
	}
	return m
}

// TestReadFileValidates: a run result that breaks a promise its readers
// rely on is refused as invalid input, naming the file and the field,
// instead of being reported or compared on wrong figures.
func TestReadFileValidates(t *testing.T) {
	for _, tc := range []struct {
		name    string
		corrupt func(m map[string]any)
		want    []string // in the one error, beside the file's path
	}{
		{"valid", func(map[string]any) {}, nil},
		{"per-second histogram", func(m map[string]any) {
			obj(m["intervals"].([]any)[12].(map[string]any), "histograms")["api"] = "HISTfwAAAAB4nJNpmSzMwMDAxQABzFCaEUzOmgBhAQBXoANl"
		}, []string{`intervals[12].histograms["api"]: not a histogram`}},
		{"overall histogram", func(m map[string]any) { obj(m, "histograms")["api"] = "not base64!" },
			[]string{`histograms["api"]: not a histogram`}},
		{"histogram missing", func(m map[string]any) { delete(obj(m, "histograms"), "api") },
			[]string{`histograms["api"]: missing`}},
		{"negative counts", func(m map[string]any) {
			obj(m, "totals")["failed"] = -200
			obj(m, "totals")["completed"] = obj(m, "totals")["completed"].(float64) + 200
		}, []string{"totals.failed: -200 is negative"}},
		{"unbalanced totals", func(m map[string]any) { obj(m, "totals")["dropped"] = 5 },
			[]string{"totals.scheduled: ", " + dropped 5"}},
		{"a lost share balances the totals", func(m map[string]any) {
			obj(m, "totals")["scheduled"] = obj(m, "totals")["scheduled"].(float64) + 40
			obj(m, "totals")["lost"] = 40
		}, nil},
		{"request totals", func(m map[string]any) { obj(m, "requests", "api", "totals")["inflight_at_stop"] = 3 },
			[]string{`requests["api"].totals.sent`}},
		{"seconds out of order", func(m map[string]any) { m["intervals"].([]any)[4].(map[string]any)["t"] = 2 },
			[]string{"intervals[4].t: 2 after 3"}},
		{"seconds add up to more", func(m map[string]any) { m["intervals"].([]any)[0].(map[string]any)["sent"] = 1e6 },
			[]string{"intervals: the seconds add up to"}},
		{"missing field", func(m map[string]any) { delete(m, "intervals"); delete(obj(m, "totals"), "sent") },
			[]string{"intervals: missing", "totals.sent: missing"}},
		{"status", func(m map[string]any) { m["status"] = "great" }, []string{`status: "great"`}},
		{"other schema", func(m map[string]any) { m["schema"] = "loadcap.run/v9" }, []string{`schema: schema "loadcap.run/v9"`}},
		{"wrong type", func(m map[string]any) { obj(m, "totals")["sent"] = "many" }, []string{"totals.sent: string where int64 is wanted"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := runJSON(t)
			tc.corrupt(m)
			path := writeRunJSON(t, m)
			r, err := ReadFile(path)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("a valid run result refused: %v", err)
				}
				if len(r.Intervals) != 30 {
					t.Errorf("%d intervals read, want 30", len(r.Intervals))
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if !scenarios.Invalid(err) {
				t.Errorf("%v: not invalid input (exit 104)", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), path+": "+w) && !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, path+":") {
					t.Errorf("problem %q does not name the file", line)
				}
			}
		})
	}
}

// TestParseRunPositions: broken JSON is placed by line and column.
func TestParseRunPositions(t *testing.T) {
	_, err := ParseRun("run.json", []byte("{\n  \"schema\": \"loadcap.run/v1\",\n  \"totals\": {\"sent\": 1,}\n}"))
	if err == nil || !strings.HasPrefix(err.Error(), "run.json:3:") {
		t.Errorf("err = %v, want run.json:3:…", err)
	}
	_, err = ParseRun("run.json", []byte(`[1, 2]`))
	if err == nil || !strings.Contains(err.Error(), "not an object") {
		t.Errorf("err = %v, want not an object", err)
	}
}

// TestCountsLen: the bound the validator puts on a histogram's buckets is
// hdrhistogram-go's own, so no valid histogram is refused.
func TestCountsLen(t *testing.T) {
	for _, g := range []struct{ lo, hi, digits int64 }{
		{1, 60_000_000, 3}, {1, 2, 0}, {1, 3_600_000_000, 2}, {1000, 1 << 40, 5}, {7, 1 << 62, 4}, {1, 1<<63 - 1, 3},
	} {
		h := hdr.New(g.lo, g.hi, int(g.digits))
		_ = h.RecordValue(g.hi)
		enc, err := h.Encode(hdr.V2CompressedEncodingCookieBase)
		if err != nil {
			t.Fatal(err)
		}
		var hr hdrReader
		geom, err := hr.read(string(enc))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := geom.countsLen(), int64(len(h.Export().Counts)); got != want {
			t.Errorf("%+v: countsLen %d, hdrhistogram-go has %d", g, got, want)
		}
		v := &runCheck{}
		v.histogram("h", string(enc))
		if len(v.errs) > 0 {
			t.Errorf("%+v: valid histogram refused: %v", g, v.errs)
		}
	}
}
