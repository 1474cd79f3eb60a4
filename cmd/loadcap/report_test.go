package main

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loadcap/loadcap/loadgen/target"
	"github.com/loadcap/loadcap/reports"
)

// A run writes its report and JUnit straight away; report re-reads the
// run (with a baseline) into the same kinds of files.
func TestReportCommands(t *testing.T) {
	t.Parallel()
	url := testTarget(t, target.Config{ServiceTime: time.Millisecond})
	dir := t.TempDir()
	scen := writeFile(t, "s.yaml", `target: `+url+`
scenarios:
  s: {executor: constant-arrival-rate, rate: 100, duration: 1s, preAllocatedVUs: 5}
requests:
  - {name: home, path: /}
thresholds:
  http_req_duration: ["p(99)<1"]
  http_req_failed: ["rate<0.01"]
`)
	run, html, junit := filepath.Join(dir, "run.json"), filepath.Join(dir, "r.html"), filepath.Join(dir, "j.xml")
	res := loadcap(t, nil, false, "run", "-q", "--no-summary", scen, "--out", run, "--report", html, "--junit", junit)
	if res.code != 99 {
		t.Fatalf("run: exit %d, want 99 (p(99)<1ms cannot hold)\n%s", res.code, res.stderr)
	}
	checkReport(t, html, "home")
	for _, p := range []string{html, junit} {
		// A report is for other people to read: not private to its writer.
		if st, err := os.Stat(p); err != nil || st.Mode().Perm()&0o044 != 0o044 {
			t.Errorf("%s: %v, mode %v; want readable by group and others", p, err, st.Mode().Perm())
		}
	}
	suites := readJUnit(t, junit)
	if suites.Tests != 2 || suites.Failures != 1 || !strings.Contains(suites.Body, "p(99)&lt;1") {
		t.Errorf("junit: %d tests, %d failures, want 2 and 1 (the latency threshold)\n%s", suites.Tests, suites.Failures, suites.Body)
	}

	// report with a baseline: the run against itself does not regress.
	html2 := filepath.Join(dir, "r2.html")
	res = loadcap(t, nil, false, "report", run, run, "-o", html2, "--junit", junit)
	if res.code != 0 || !strings.Contains(res.stderr, html2) {
		t.Fatalf("report: exit %d\n%s", res.code, res.stderr)
	}
	checkReport(t, html2, "baseline")
	if s := readJUnit(t, junit); s.Tests <= 2 {
		t.Errorf("junit with a baseline has %d tests: the comparison limits are missing", s.Tests)
	}

	bad := writeFile(t, "x.json", `{"hello": 1}`)
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"report", run}, 2},               // nothing to write
		{[]string{"report", bad, "-o", html}, 104}, // not a result
		{[]string{"report", filepath.Join(dir, "no.json"), "-o", html}, 104},
		{[]string{"report", run, run, run, "-o", html}, 2}, // three runs
	} {
		if r := loadcap(t, nil, false, tc.args...); r.code != tc.code {
			t.Errorf("%v: exit %d, want %d\n%s", tc.args, r.code, tc.code, r.stderr)
		}
	}
}

func checkReport(t *testing.T, path, want string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data, err := reports.ReadHTMLData(strings.NewReader(string(b)))
	if err != nil || data.Run == nil {
		t.Fatalf("%s: embedded data %v, %v", path, data, err)
	}
	if !strings.Contains(string(b), want) {
		t.Errorf("%s does not mention %q", path, want)
	}
}

type junitSuites struct {
	Tests    int    `xml:"tests,attr"`
	Failures int    `xml:"failures,attr"`
	Body     string `xml:",innerxml"`
}

func readJUnit(t *testing.T, path string) junitSuites {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s junitSuites
	if err := xml.Unmarshal(b, &s); err != nil {
		t.Fatalf("%s: %v\n%s", path, err, b)
	}
	return s
}
