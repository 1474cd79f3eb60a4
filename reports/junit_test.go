package reports

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"github.com/loadcap/loadcap/test/testkit"
)

// Parsed JUnit, attributes as strings so that a missing one shows as "".
type (
	xSuites struct {
		XMLName  xml.Name `xml:"testsuites"`
		Name     string   `xml:"name,attr"`
		Tests    string   `xml:"tests,attr"`
		Failures string   `xml:"failures,attr"`
		Errors   string   `xml:"errors,attr"`
		Skipped  string   `xml:"skipped,attr"`
		Time     string   `xml:"time,attr"`
		Suites   []xSuite `xml:"testsuite"`
	}
	xSuite struct {
		Name      string `xml:"name,attr"`
		Tests     string `xml:"tests,attr"`
		Failures  string `xml:"failures,attr"`
		Errors    string `xml:"errors,attr"`
		Skipped   string `xml:"skipped,attr"`
		Time      string `xml:"time,attr"`
		Timestamp string `xml:"timestamp,attr"`
		Props     []struct {
			Name  string `xml:"name,attr"`
			Value string `xml:"value,attr"`
		} `xml:"properties>property"`
		Cases []xCase `xml:"testcase"`
	}
	xCase struct {
		Name      string    `xml:"name,attr"`
		Classname string    `xml:"classname,attr"`
		Time      string    `xml:"time,attr"`
		Failure   *xProblem `xml:"failure"`
		Error     *xProblem `xml:"error"`
		Skipped   *xProblem `xml:"skipped"`
		Out       string    `xml:"system-out"`
	}
	xProblem struct {
		Message string `xml:"message,attr"`
		Type    string `xml:"type,attr"`
	}
)

func junit(t *testing.T, in JUnitInput) (xSuites, []byte) {
	t.Helper()
	var b bytes.Buffer
	if err := WriteJUnit(&b, in); err != nil {
		t.Fatal(err)
	}
	var doc xSuites
	dec := xml.NewDecoder(bytes.NewReader(b.Bytes()))
	dec.Strict = true
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	return doc, b.Bytes()
}

func TestJUnit(t *testing.T) {
	in := inputs(t)
	aborted := *in["minimal"].Run
	aborted.Status, aborted.AbortReason = "aborted", "threshold http_req_duration p(99)<200 <crossed>"
	find := *in["capacity"].Find
	find.MaxQPS, find.Confirmed = 0, false
	tests := []struct {
		name string
		in   JUnitInput
		// per suite: name prefix, tests, failures, errors, skipped
		suites [][5]string
		// failure or error messages that must appear
		messages []string
	}{
		{"failed thresholds", JUnitInput{Run: in["run"].Run},
			[][5]string{{"loadcap.run scenarios/shop <checkout>.yaml", "3", "1", "0", "0"}},
			[]string{"http_req_duration p(99)<70: value 116.7"}},
		{"aborted run", JUnitInput{Run: &aborted},
			[][5]string{{"loadcap.run", "4", "2", "1", "0"}},
			[]string{"run aborted: threshold http_req_duration p(99)<200 <crossed>", "http_req_duration p(99)<200: value 250", "http_reqs count>0: value no data"}},
		{"capacity found", JUnitInput{Find: in["capacity"].Find, Time: time.Date(2026, 11, 11, 8, 0, 0, 0, time.UTC)},
			[][5]string{{"loadcap.capacity", "4", "0", "0", "0"}}, nil},
		{"no capacity", JUnitInput{Find: &find},
			[][5]string{{"loadcap.capacity", "4", "1", "0", "0"}},
			[]string{"no rate met the SLO p(99)<200ms,error<1%"}},
		{"run, search and comparison", JUnitInput{Run: in["compare"].Run, Find: in["capacity"].Find, Comparison: in["compare"].Comparison},
			[][5]string{{"loadcap.run", "3", "1", "0", "0"}, {"loadcap.capacity", "4", "0", "0", "0"}, {"loadcap.compare", "12", "6", "0", "0"}},
			[]string{"all p(99)+10%: baseline 64.6ms, run 116.7ms, change +80.8%, 95% interval +16.5% … +270.3%",
				"checkout error_rate+0.1pp: baseline 0.000%, run 2.688%, change +2.69pp (noise not assessed: no failure counts per second for one request)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc, raw := junit(t, tc.in)
			if doc.Name != "loadcap" || doc.Tests == "" || doc.Failures == "" || doc.Errors == "" || doc.Skipped == "" || doc.Time == "" {
				t.Errorf("<testsuites> attributes %+v", doc)
			}
			if len(doc.Suites) != len(tc.suites) {
				t.Fatalf("%d suites, want %d:\n%s", len(doc.Suites), len(tc.suites), raw)
			}
			var messages []string
			for i, s := range doc.Suites {
				want := tc.suites[i]
				if !strings.HasPrefix(s.Name, want[0]) || s.Tests != want[1] || s.Failures != want[2] || s.Errors != want[3] || s.Skipped != want[4] {
					t.Errorf("suite %q tests %s failures %s errors %s skipped %s, want %v", s.Name, s.Tests, s.Failures, s.Errors, s.Skipped, want)
				}
				if s.Time == "" || (tc.in.Run != nil || !tc.in.Time.IsZero()) && s.Timestamp == "" {
					t.Errorf("suite %q time %q timestamp %q", s.Name, s.Time, s.Timestamp)
				}
				if len(s.Cases) == 0 {
					t.Errorf("suite %q has no test case", s.Name)
				}
				for _, c := range s.Cases {
					if c.Name == "" || c.Classname == "" || c.Time == "" {
						t.Errorf("test case %+v lacks name, classname or time", c)
					}
					for _, p := range []*xProblem{c.Failure, c.Error} {
						if p != nil {
							if p.Message == "" || p.Type == "" {
								t.Errorf("%s: failure without message or type", c.Name)
							}
							messages = append(messages, p.Message)
						}
					}
				}
			}
			all := strings.Join(messages, "\n")
			for _, m := range tc.messages {
				if !strings.Contains(all, m) {
					t.Errorf("no failure says %q; they are:\n%s", m, all)
				}
			}
		})
	}
}

func TestJUnitGolden(t *testing.T) {
	in := inputs(t)
	_, a := junit(t, JUnitInput{Run: in["compare"].Run, Find: in["capacity"].Find, Comparison: in["compare"].Comparison})
	_, b := junit(t, JUnitInput{Run: in["compare"].Run, Find: in["capacity"].Find, Comparison: in["compare"].Comparison})
	if !bytes.Equal(a, b) {
		t.Fatal("two JUnit files of the same input differ")
	}
	testkit.Golden(t, "testdata/"+"junit.golden.xml", a)
}

func TestJUnitNeedsInput(t *testing.T) {
	if err := WriteJUnit(&bytes.Buffer{}, JUnitInput{}); err == nil {
		t.Error("JUnit of nothing must fail")
	}
}
