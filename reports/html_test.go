package reports

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/loadcap/loadcap/capacity"
	"github.com/loadcap/loadcap/scenarios"
	"github.com/loadcap/loadcap/scenarios/slo"

	"github.com/loadcap/loadcap/test/testkit"
)

// shopRun is a 90-second run of three request names with errors of two
// classes, a stall, dropped and late arrivals, and a failing threshold.
func shopRun() *Run {
	return synth{
		seconds: 90, names: []string{"checkout", "home", "search"}, rps: []float64{40, 120, 60}, medianMs: []float64{35, 4, 12},
		sigma: 0.5, seed: 42,
		slow:      func(t int) float64 { return map[bool]float64{true: 6, false: 1}[t >= 50 && t < 54] },
		failShare: map[string]float64{"5xx": 0.02, "timeout": 0.005},
		dropped:   func(t int) int64 { return map[bool]int64{true: 7, false: 0}[t >= 50 && t < 53] },
		late:      12, maxLagMs: 23.5,
	}.build()
}

// findResult is a capacity search of five ramp, two search and one soak
// step against two scraped services, with its USL fit.
func findResult() (*capacity.FindResult, error) {
	sl, err := slo.Parse("p(99)<200ms,error<1%")
	if err != nil {
		return nil, err
	}
	f := &capacity.FindResult{SLO: sl.Text, MaxQPS: 600, Confirmed: true}
	type row struct {
		phase            string
		offered, achieve float64
		n, p50, p99, err float64
		api, db          float64 // mean latency of the services, ms
	}
	rows := []row{
		{"ramp", 50, 50, 1.1, 20, 40, 0, 18, 2},
		{"ramp", 100, 100, 2.3, 21, 45, 0, 18, 2.1},
		{"ramp", 200, 199, 4.9, 23, 55, 0, 19, 2.4},
		{"ramp", 400, 398, 11, 26, 80, 0.001, 22, 3.5},
		{"ramp", 800, 690, 95, 130, 900, 0.02, 140, 9},
		{"search", 600, 597, 19, 31, 150, 0.002, 27, 4.4},
		{"search", 700, 672, 60, 70, 450, 0.01, 80, 7},
		{"soak", 600, 598, 20, 32, 160, 0.002, 28, 4.6},
	}
	for i, r := range rows {
		st := capacity.Step{N: i + 1, Phase: r.phase, Offered: r.offered, Achieved: r.achieve, Concurrency: r.n, LittleN: r.n,
			LittleOK: r.phase != "ramp" || r.offered < 800, ErrorRate: r.err,
			LatencyMs: capacity.StepLatency{P50: r.p50, P90: r.p50 * 2, P99: r.p99, P999: r.p99 * 1.5, Mean: r.p50 * 1.2, Max: r.p99 * 2},
			Services: []capacity.ServiceStats{
				{Name: "api", RequestRate: r.achieve, MeanLatencyMs: r.api, CPUCores: r.achieve / 400},
				{Name: "db <primary>", RequestRate: 3 * r.achieve, MeanLatencyMs: r.db, CPUCores: r.achieve / 900},
			}}
		for _, c := range sl.Clauses {
			v := r.p99
			if c.Agg == slo.Error {
				v = r.err
			}
			st.Clauses = append(st.Clauses, capacity.ClauseResult{Clause: c.Text, Value: v, Passed: v < c.Limit})
		}
		st.Passed = true
		for _, c := range st.Clauses {
			if !c.Passed {
				st.Passed, st.Reason = false, c.Clause
			}
		}
		if st.Achieved < 0.95*st.Offered {
			st.Passed, st.Reason = false, "achieved < 95% of offered"
		}
		f.Steps = append(f.Steps, st)
		f.SaturationQPS = max(f.SaturationQPS, st.Achieved)
	}
	f.Knee = &capacity.Knee{Throughput: 597, P99Ms: 150, Step: 6}
	f.FirstSaturated, f.FirstSaturatedStep = "api", 7
	var pts []capacity.Point
	for _, st := range f.Steps {
		pts = append(pts, capacity.Point{N: st.Concurrency, X: st.Achieved})
	}
	if f.USL, err = capacity.FitUSL(pts); err != nil {
		return nil, err
	}
	f.Notes = []string{"a note with <markup> & an ampersand"}
	return f, nil
}

func planResult() (*capacity.PlanResult, error) {
	loc := time.UTC
	p := &scenarios.Plan{
		Path: "plans/<double-eleven>.yaml",
		Peak: scenarios.Peak{EntryQPS: 12000, Window: &scenarios.Window{
			Start: time.Date(2026, 11, 11, 0, 0, 0, 0, loc), End: time.Date(2026, 11, 11, 2, 0, 0, 0, loc), Location: loc, Timezone: "UTC"}},
		Headroom: 0.3, Redundancy: scenarios.RedundancyN1, MaxReplicas: 60,
		Services: []scenarios.PlanService{
			{Name: "gateway", CapacityQPS: 2500, Fanout: 1, Current: 6, Zones: 1},
			{Name: "checkout", CapacityQPS: 600, Fanout: 0.2, Current: 4, Zones: 1},
			{Name: "inventory", CapacityQPS: 900, Fanout: 1.5, Current: 10, Zones: 1, MaxReplicas: 20},
		},
	}
	return capacity.Compute(p)
}

// inputs are the golden cases: a run that failed its thresholds, a
// capacity search with a plan and no run, a run against a baseline, a
// drill the guard stopped, and the smallest run there is. They are built once; tests must not modify
// them.
func inputs(t testing.TB) map[string]HTMLInput {
	t.Helper()
	fixtures.once.Do(func() { fixtures.in, fixtures.err = buildInputs() })
	if fixtures.err != nil {
		t.Fatal(fixtures.err)
	}
	return fixtures.in
}

var fixtures struct {
	once sync.Once
	in   map[string]HTMLInput
	err  error
}

func buildInputs() (map[string]HTMLInput, error) {
	run := shopRun()
	base := synth{seconds: 60, names: []string{"checkout", "home", "search"}, rps: []float64{40, 120, 60}, medianMs: []float64{30, 4, 10},
		sigma: 0.45, seed: 7}.build()
	allow, err := slo.ParseAllowances(slo.DefaultMaxRegression)
	if err != nil {
		return nil, err
	}
	cmp, err := Compare(base, run, allow, Resamples(200))
	if err != nil {
		return nil, err
	}
	find, err := findResult()
	if err != nil {
		return nil, err
	}
	plan, err := planResult()
	if err != nil {
		return nil, err
	}
	drill, err := drillInput()
	if err != nil {
		return nil, err
	}
	return map[string]HTMLInput{
		"drill":    drill,
		"run":      {Run: run, ExitCode: 99},
		"capacity": {Find: find, Plan: plan},
		"compare":  {Run: run, Baseline: base, Comparison: cmp, ExitCode: 110},
		"minimal":  {Run: NewRun(sample(), Meta{Version: "test"}), ExitCode: 0, Title: "a <tiny> run"},
	}, nil
}

func writeHTML(t testing.TB, in HTMLInput) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := WriteHTML(&b, in); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestHTMLGolden(t *testing.T) {
	for name, in := range inputs(t) {
		t.Run(name, func(t *testing.T) {
			a, b := writeHTML(t, in), writeHTML(t, in)
			if !bytes.Equal(a, b) {
				t.Fatal("two reports of the same input differ")
			}
			testkit.Golden(t, "testdata/"+name+".golden.html", a)
		})
	}
}

// TestHTMLSelfContained parses every report and fails on anything that
// would load from elsewhere.
func TestHTMLSelfContained(t *testing.T) {
	for name, in := range inputs(t) {
		t.Run(name, func(t *testing.T) {
			doc, err := html.Parse(bytes.NewReader(writeHTML(t, in)))
			if err != nil {
				t.Fatal(err)
			}
			var walk func(n *html.Node)
			walk = func(n *html.Node) {
				if n.Type == html.ElementNode {
					switch n.Data {
					case "link", "img", "iframe", "object", "embed", "base", "image", "use", "audio", "video", "source":
						t.Errorf("<%s> element", n.Data)
					}
					for _, a := range n.Attr {
						switch {
						case a.Key == "src" || a.Key == "srcset" || a.Key == "xlink:href" || a.Key == "action":
							t.Errorf("<%s %s=%q>", n.Data, a.Key, a.Val)
						case a.Key == "href" && !strings.HasPrefix(a.Val, "#"):
							t.Errorf("<%s href=%q> leaves the page", n.Data, a.Val)
						case a.Key == "style" && strings.Contains(a.Val, "url("):
							t.Errorf("<%s style=%q> loads a resource", n.Data, a.Val)
						}
					}
					if n.Data == "style" && n.FirstChild != nil && (strings.Contains(n.FirstChild.Data, "url(") || strings.Contains(n.FirstChild.Data, "@import")) {
						t.Error("the style sheet loads a resource")
					}
				}
				for c := n.FirstChild; c != nil; c = c.NextSibling {
					walk(c)
				}
			}
			walk(doc)
		})
	}
}

func TestHTMLEscapesUserStrings(t *testing.T) {
	run := shopRun()
	evil := `<script>alert("x")</script>`
	q := run.Requests["checkout"]
	q.ErrorSamples["5xx"] = evil + ` </script><b>`
	delete(run.Requests, "checkout")
	run.Requests[evil] = q
	run.Histograms[evil] = run.Histograms["checkout"]
	run.Meta.Target = `http://127.0.0.1/?a=1&b=<i>`
	out := string(writeHTML(t, HTMLInput{Run: run}))
	if strings.Contains(out, evil) || strings.Contains(out, "<b>") || strings.Contains(out, "<i>") {
		t.Error("a user string reached the page unescaped")
	}
	if !strings.Contains(out, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") {
		t.Error("the request name is not shown escaped")
	}
	// The embedded JSON keeps the strings exactly.
	d, err := ReadHTMLData(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if d.Run.Requests[evil].ErrorSamples["5xx"] != evil+` </script><b>` || d.Run.Meta.Target != run.Meta.Target {
		t.Errorf("embedded strings changed: %q", d.Run.Requests[evil].ErrorSamples["5xx"])
	}
}

func TestHTMLDataRoundTrip(t *testing.T) {
	in := inputs(t)
	for _, name := range []string{"capacity", "compare", "drill"} {
		t.Run(name, func(t *testing.T) {
			in := in[name]
			d, err := ReadHTMLData(bytes.NewReader(writeHTML(t, in)))
			if err != nil {
				t.Fatal(err)
			}
			if d.ExitCode != in.ExitCode || len(d.Omitted) != 0 {
				t.Errorf("exit code %d omitted %v", d.ExitCode, d.Omitted)
			}
			same := func(what string, a, b any) {
				ja, _ := json.Marshal(a)
				jb, _ := json.Marshal(b)
				if !bytes.Equal(ja, jb) {
					t.Errorf("%s does not survive the page", what)
				}
			}
			same("run", in.Run, d.Run)
			same("baseline", in.Baseline, d.Baseline)
			same("find", in.Find, d.Find)
			same("plan", in.Plan, d.Plan)
			same("comparison", in.Comparison, d.Comparison)
			same("drill", in.Drill, d.Drill)
			if in.Run != nil {
				// Re-reported exactly: the histograms decode to the same figures.
				h, err := d.Run.Histogram("checkout")
				if err != nil || h.ValueAtPercentile(99.9) == 0 {
					t.Errorf("histogram: %v", err)
				}
			}
		})
	}
}

// TestHTMLPercentilesFromHistograms tampers with the summary figures of the
// run: the page must show what the histograms say.
func TestHTMLPercentilesFromHistograms(t *testing.T) {
	run := shopRun()
	h, err := run.Histogram("home")
	if err != nil {
		t.Fatal(err)
	}
	want := ms(float64(h.ValueAtPercentile(99)) / 1000)
	q := run.Requests["home"]
	q.LatencyMs.P99 = 123456
	run.Requests["home"] = q
	out := string(writeHTML(t, HTMLInput{Run: run}))
	out = out[:strings.Index(out, `<script type="application/json"`)] // what the page shows
	row := out[strings.Index(out, "<th scope=\"row\">home</th>"):]
	row = row[:strings.Index(row, "</tr>")]
	cells := strings.Split(row, "<td class=\"num\">")
	// count, req/s, errors, error %, p50, p90, p95, p99
	if len(cells) < 9 || !strings.HasPrefix(cells[8], want+"<") {
		t.Errorf("home p99 cell %q, want %s from the histogram", cells[min(8, len(cells)-1)], want)
	}
	if strings.Contains(out, "123456") || strings.Contains(out, "123.46s") {
		t.Error("the page shows the tampered summary")
	}
}

func TestHTMLSections(t *testing.T) {
	in := inputs(t)
	tests := []struct {
		name      string
		want, not []string
	}{
		{"run", []string{`<strong>FAIL</strong> exit code 99: thresholds or SLO failed`, `id="latency"`, `id="fig-latency-all"`, `id="fig-latency-by-request"`,
			`id="fig-traffic-rate"`, `id="fig-traffic-inflight"`, `id="fig-errors-by-class"`, `id="fig-distribution"`, `id="quality"`,
			"arrivals were sent over 10 ms late", "were never sent", "FAILED"},
			[]string{`id="capacity"`, `id="plan"`, `id="compare"`}},
		{"capacity", []string{`<strong>PASS</strong> exit code 0: ok`, "max QPS at SLO", "replicas for the peak", `id="fig-find-throughput"`,
			`id="fig-find-hockey"`, `id="fig-find-steps"`, `id="fig-find-usl"`, `id="fig-find-services"`, `class="bottleneck"`, "saturates first",
			"db &lt;primary&gt;", "&lt;markup&gt; &amp; an ampersand", "R²", "Sensitivity"},
			[]string{`id="run"`, `id="compare"`}},
		{"compare", []string{`<strong>FAIL</strong> exit code 110: regression against the baseline`, "Regression against the baseline",
			`id="fig-compare-distribution"`, `id="fig-compare-time"`, "95% interval", "REGRESSED", "Key figures"},
			[]string{`id="capacity"`}},
		{"minimal", []string{"<title>a &lt;tiny&gt; run</title>", "no per-second data", `id="fig-distribution"`, "5xx", "POST /checkout: HTTP 503"},
			[]string{`id="latency"`, `id="traffic"`, `id="fig-errors-by-class"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := string(writeHTML(t, in[tc.name]))
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(out, w) {
					t.Errorf("page has %q", w)
				}
			}
		})
	}
}

func TestHTMLNeedsSomethingToShow(t *testing.T) {
	if err := WriteHTML(&bytes.Buffer{}, HTMLInput{Baseline: shopRun()}); err == nil {
		t.Error("a report of nothing must fail")
	}
}

func TestHTMLBrokenHistogram(t *testing.T) {
	run := shopRun()
	run.Histograms["home"] = "not a histogram"
	err := WriteHTML(&bytes.Buffer{}, HTMLInput{Run: run})
	if err == nil || !strings.Contains(err.Error(), `"home"`) {
		t.Errorf("err = %v, want one naming the request", err)
	}
}

func TestReadHTMLDataRejects(t *testing.T) {
	for name, page := range map[string]string{
		"no data":      "<html><body>hi</body></html>",
		"other schema": `<script type="application/json" id="loadcap-data">{"schema":"x/v9"}</script>`,
		"bad json":     `<script type="application/json" id="loadcap-data">{"schema":</script>`,
	} {
		if _, err := ReadHTMLData(strings.NewReader(page)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// The smallest sanity check of the exactness helper against the library.
func TestExact(t *testing.T) {
	h := hist(1000, 2000, 3000, 250000)
	l := exact(h)
	if l.P50 != float64(h.ValueAtPercentile(50))/1000 || l.Max != float64(h.Max())/1000 || math.Abs(l.Mean-h.Mean()/1000) > 1e-9 {
		t.Errorf("%+v", l)
	}
}

// TestHTMLEdgeInputs renders inputs with little in them: none may fail.
func TestHTMLEdgeInputs(t *testing.T) {
	empty := &Run{Schema: Schema, Status: "passed", Requests: map[string]Request{}, Histograms: map[string]string{}}
	noSteps := &capacity.FindResult{SLO: "p(99)<100ms", Notes: []string{"even the lowest rate failed the SLO"}}
	in := inputs(t)
	tests := []struct {
		name string
		in   HTMLInput
		want string
	}{
		{"a run without requests", HTMLInput{Run: empty}, "no data"},
		{"a search without steps", HTMLInput{Find: noSteps, ExitCode: 99}, "even the lowest rate failed the SLO"},
		{"a plan alone", HTMLInput{Plan: in["capacity"].Plan}, "Capacity plan"},
		{"a comparison without its baseline", HTMLInput{Run: in["compare"].Run, Comparison: in["compare"].Comparison, ExitCode: 110}, "Allowances checked"},
		{"a baseline without requests", HTMLInput{Run: in["run"].Run, Baseline: empty}, "Key figures"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := string(writeHTML(t, tc.in))
			if !strings.Contains(out, tc.want) {
				t.Errorf("page lacks %q", tc.want)
			}
			if _, err := ReadHTMLData(strings.NewReader(out)); err != nil {
				t.Error(err)
			}
		})
	}
}
