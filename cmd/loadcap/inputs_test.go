package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loadcap/loadcap/loadgen/target"
)

// TestCorruptRunResults: report and compare refuse a run.json that breaks
// its promises with 104, naming the file and the field, where they used to
// drop a confidence interval, fail with exit 1 or print a -200% change.
func TestCorruptRunResults(t *testing.T) {
	t.Parallel()
	url := testTarget(t, target.Config{ServiceTime: time.Millisecond})
	dir := t.TempDir()
	scen := writeFile(t, "s.yaml", `target: `+url+`
scenarios:
  s: {executor: constant-arrival-rate, rate: 50, duration: 2s, preAllocatedVUs: 5}
requests:
  - {name: home, path: /}
`)
	run := filepath.Join(dir, "run.json")
	if res := loadcap(t, nil, false, "run", "-q", "--no-summary", scen, "--out", run); res.code != 0 {
		t.Fatalf("run: exit %d\n%s", res.code, res.stderr)
	}
	if res := loadcap(t, nil, false, "compare", run, run); res.code != 0 {
		t.Fatalf("compare of a valid run with itself: exit %d\n%s", res.code, res.stderr)
	}
	corrupt := func(name string, edit func(m map[string]any)) string {
		b, err := os.ReadFile(run)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		out, _ := json.Marshal(m)
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, out, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	perSecond := corrupt("second.json", func(m map[string]any) {
		iv := m["intervals"].([]any)[1].(map[string]any)
		iv["histograms"].(map[string]any)["home"] = "HISTFAAAAB4nJNpmSzMwMDAxQABzFC"
	})
	overall := corrupt("overall.json", func(m map[string]any) { m["histograms"].(map[string]any)["home"] = "broken" })
	negative := corrupt("negative.json", func(m map[string]any) {
		tt := m["totals"].(map[string]any)
		tt["failed"] = -200.0
		tt["completed"] = tt["completed"].(float64) + 200
	})
	html := filepath.Join(dir, "r.html")
	for _, tc := range []struct {
		args  []string
		field string
	}{
		{[]string{"compare", run, perSecond}, perSecond + `: intervals[1].histograms["home"]`},
		{[]string{"report", overall, "-o", html}, overall + `: histograms["home"]`},
		{[]string{"compare", negative, run}, negative + ": totals.failed: -200 is negative"},
		{[]string{"report", run, negative, "-o", html}, negative + ": totals.failed"},
		{[]string{"merge", run, perSecond, "--out", html}, perSecond + `: intervals[1].histograms["home"]`},
	} {
		res := loadcap(t, nil, false, tc.args...)
		if res.code != 104 || !strings.Contains(res.stderr, tc.field) {
			t.Errorf("%v: exit %d, want 104 naming %q\n%s", tc.args, res.code, tc.field, res.stderr)
		}
		if strings.Contains(res.stdout, "REGRESSED") {
			t.Errorf("%v: compared corrupt figures:\n%s", tc.args, res.stdout)
		}
	}
	if _, err := os.Stat(html); err == nil {
		t.Errorf("report or merge wrote %s from a corrupt run result", html)
	}
}

// TestImportCutRecording: a gzip recording cut short imports the records
// before the cut with a warning naming where it breaks; with --strict it is
// refused (104) and the previous output stays as it was.
func TestImportCutRecording(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var log bytes.Buffer
	for i := range 2000 {
		log.WriteString(`10.0.0.1 - - [11/Nov/2026:10:00:00 +0000] "GET /orders/` + strings.Repeat("x", i%7) + ` HTTP/1.1" 200 12 "-" "app/1.0"` + "\n")
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(log.Bytes())
	zw.Close()
	cut := filepath.Join(dir, "access.log.gz")
	if err := os.WriteFile(cut, gz.Bytes()[:gz.Len()*3/4], 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "traffic.jsonl")
	res := loadcap(t, nil, false, "shadow", "import", cut, "--out", out)
	if res.code != 0 || !strings.Contains(res.stderr, cut+" is cut short at line") || !strings.Contains(res.stderr, cut+":") {
		t.Fatalf("import of a cut recording: exit %d, want 0 with a warning naming where it breaks\n%s", res.code, res.stderr)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	n := bytes.Count(b, []byte("\n"))
	if n == 0 || n >= 2000 {
		t.Errorf("imported %d records from a recording cut at 3/4 of 2000", n)
	}
	res = loadcap(t, nil, false, "shadow", "import", cut, "--out", out, "--strict")
	if res.code != 104 || !strings.Contains(res.stderr, "cut short") {
		t.Errorf("--strict: exit %d, want 104\n%s", res.code, res.stderr)
	}
	if again, _ := os.ReadFile(out); !bytes.Equal(again, b) {
		t.Errorf("--strict changed %s", out)
	}
}

// TestMergeJudgesTheWhole: merge judges thresholds on the merged figures
// and exits as one run over all the parts would: two parts of 100
// requests each fail "count>150" alone (exit 99) and pass it together
// (exit 0); "count>250" fails the merged run too, with 99 naming the
// threshold, and the merged file is written all the same for the report.
func TestMergeJudgesTheWhole(t *testing.T) {
	t.Parallel()
	url := testTarget(t, target.Config{ServiceTime: time.Millisecond})
	dir := t.TempDir()
	part := func(name, threshold string) string {
		scen := writeFile(t, name+".yaml", `target: `+url+`
scenarios:
  s: {executor: constant-arrival-rate, rate: 100, duration: 1s, preAllocatedVUs: 5}
requests:
  - {name: home, path: /}
thresholds:
  http_reqs: ["`+threshold+`"]
`)
		out := filepath.Join(dir, name+".json")
		if res := loadcap(t, nil, false, "run", "-q", "--no-summary", scen, "--out", out); res.code != 99 {
			t.Fatalf("a part of 100 requests under %q: exit %d, want 99\n%s", threshold, res.code, res.stderr)
		}
		return out
	}
	a, b := part("a", "count>150"), part("b", "count>150")
	both := filepath.Join(dir, "both.json")
	if res := loadcap(t, nil, false, "merge", a, b, "--out", both); res.code != 0 {
		t.Fatalf("merge of two parts that pass count>150 together: exit %d, want 0\n%s", res.code, res.stderr)
	}
	c, d := part("c", "count>250"), part("d", "count>250")
	fail := filepath.Join(dir, "fail.json")
	res := loadcap(t, nil, false, "merge", c, d, "--out", fail)
	if res.code != 99 || !strings.Contains(res.stderr, "http_reqs count>250") {
		t.Fatalf("merge of 200 requests under count>250: exit %d, want 99 naming the threshold\n%s", res.code, res.stderr)
	}
	if _, err := os.Stat(fail); err != nil {
		t.Errorf("a merge that failed its thresholds wrote no file: %v", err)
	}
}
