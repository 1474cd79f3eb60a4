package reports

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/loadcap/loadcap/capacity"
	"github.com/loadcap/loadcap/capacity/drill"
	"github.com/loadcap/loadcap/internal/audit"
	"github.com/loadcap/loadcap/scenarios"
	"github.com/loadcap/loadcap/scenarios/slo"
)

// drillStages are the synthetic drill's plan: 20, 60 and 120 req/s, each
// after a 5 s ramp, 70 s in all.
var drillStages = []drill.StagePlan{
	{Name: "warm", RatePerSec: 20, Multiplier: 0.5, Ramp: 5 * time.Second, Hold: 15 * time.Second},
	{Name: "busy", RatePerSec: 60, Multiplier: 1.5, Ramp: 5 * time.Second, Hold: 20 * time.Second},
	{Name: "peak", RatePerSec: 120, Multiplier: 3, Ramp: 5 * time.Second, Hold: 20 * time.Second},
}

// plannedRate is the drill's planned rate at second t.
func plannedRate(t float64) float64 {
	at, prev := 0.0, 0.0
	for _, s := range drillStages {
		ramp, hold := s.Ramp.Seconds(), s.Hold.Seconds()
		if t < at+ramp {
			return prev + (s.RatePerSec-prev)*(t-at)/ramp
		}
		if t < at+ramp+hold {
			return s.RatePerSec
		}
		at, prev = at+ramp+hold, s.RatePerSec
	}
	return 0
}

// drillInput is a drill the guard stopped in its last stage, when the
// weak inventory service saturated and production p99 crossed its limit;
// the audit is clean and two manifests were written.
func drillInput() (HTMLInput, error) {
	const stopAt = 52
	run := synth{seconds: stopAt, names: []string{"checkout", "home"}, rps: []float64{10, 30}, medianMs: []float64{30, 5}, sigma: 0.4, seed: 11,
		rate: func(t int) float64 { return plannedRate(float64(t)+0.5) / 40 },
		slow: func(t int) float64 {
			if t >= 45 {
				return 1 + float64(t-44)*1.5
			}
			return 1
		},
		failShare: map[string]float64{"5xx": 0.003},
	}.build()
	run.Status, run.AbortCause = "aborted", drill.CauseGuard
	run.AbortReason = "guard: prod-p99: production p99 0.812 s > 0.5 s for 2 evaluations"
	run.Meta.File = "drills/presale.yaml"
	run.Thresholds = nil // a drill's pass/fail is its stages' SLO

	sl, err := slo.Parse("p(99)<500ms,error<1%")
	if err != nil {
		return HTMLInput{}, err
	}
	find := &capacity.FindResult{SLO: sl.Text}
	type row struct {
		offered, achieved, p50, p99, err float64
		gw, co, inv                      float64 // services' mean latency, ms
		fail                             string
	}
	rows := []row{
		{20, 19.9, 6, 48, 0.003, 2.1, 25, 3.0, ""},
		{60, 59.6, 6.5, 61, 0.003, 2.3, 27, 3.4, ""},
		{120, 96.2, 140, 850, 0.004, 9.8, 160, 41, "p(99)<500ms"},
	}
	for i, r := range rows {
		s := drillStages[i]
		st := capacity.Step{N: i + 1, Phase: s.Name, Offered: r.offered, Achieved: r.achieved, Concurrency: r.achieved * r.p50 / 1000 * 1.3,
			LittleOK: true, ErrorRate: r.err, Passed: r.fail == "", Reason: r.fail,
			LatencyMs: capacity.StepLatency{P50: r.p50, P90: r.p50 * 2, P99: r.p99, P999: r.p99 * 1.4, Mean: r.p50 * 1.3, Max: r.p99 * 2},
			Services: []capacity.ServiceStats{
				{Name: "gateway", RequestRate: r.achieved, MeanLatencyMs: r.gw, CPUCores: r.achieved / 300, FanOut: 1},
				{Name: "checkout <svc>", RequestRate: r.achieved / 4, MeanLatencyMs: r.co, CPUCores: r.achieved / 500, FanOut: 0.25},
				{Name: "inventory", RequestRate: 1.5 * r.achieved, MeanLatencyMs: r.inv, CPUCores: r.achieved / 200, FanOut: 1.5},
			}}
		for _, c := range sl.Clauses {
			v := r.p99
			if c.Agg == slo.Error {
				v = r.err
			}
			st.Clauses = append(st.Clauses, capacity.ClauseResult{Clause: c.Text, Value: v, Passed: v < c.Limit})
		}
		find.Steps = append(find.Steps, st)
		find.SaturationQPS = max(find.SaturationQPS, r.achieved)
		if st.Passed {
			find.MaxQPS = r.achieved
		}
	}
	find.FirstSaturated, find.FirstSaturatedStep = "inventory", 3
	find.USLError = "3 points: too few to fit"

	services := []capacity.ServiceMeasure{
		{Name: "gateway", CapacityQPS: 96.2, PerReplicaQPS: 48.1, Fanout: 1, Stage: "peak"},
		{Name: "checkout <svc>", CapacityQPS: 24.05, PerReplicaQPS: 24.05, Fanout: 0.25, Stage: "peak"},
		{Name: "inventory", CapacityQPS: 144.3, PerReplicaQPS: 72.15, Fanout: 1.5, Saturated: true, Stage: "peak"},
	}
	pp := &scenarios.Plan{Path: "drills/presale.yaml", Peak: scenarios.Peak{EntryQPS: 1000}, Headroom: 0.3, Redundancy: scenarios.RedundancyN1}
	for i, s := range services {
		pp.Services = append(pp.Services, scenarios.PlanService{Name: s.Name, CapacityQPS: s.PerReplicaQPS, Fanout: s.Fanout,
			Current: []int{2, 1, 2}[i], Zones: 1, LowerBound: !s.Saturated})
	}
	plan, err := capacity.Compute(pp)
	if err != nil {
		return HTMLInput{}, err
	}

	maxP99 := 0.5
	d := &drill.Report{
		ID: "presale-2026-11", Target: "http://127.0.0.1:8080", PlanFile: "drills/presale.yaml", Traffic: "replay of recordings/sale.lcap",
		RecordedPeakQPS: 40, Stages: drillStages,
		Guard: &drill.GuardPlan{Every: time.Second, Breaches: 2, Prometheus: "http://127.0.0.1:9090", SignalLoss: 10 * time.Second,
			HotSwitch: "file /tmp/stop-drill",
			Rules: []drill.RulePlan{
				{Name: "drill-p99", Kind: "traffic", Expr: "p(99)<500ms", Evaluations: 52},
				{Name: "drill-errors", Kind: "traffic", Expr: "error<1%", Breaches: 3, Evaluations: 52},
				{Name: "prod-p99", Kind: "promql", Expr: `histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{shadow=""}[30s])))`, Max: &maxP99,
					Evaluations: 53, NoData: 4, LastNoData: "query returned 1 series, none with a usable value (1 NaN, 0 infinite)"},
				{Name: "shop-health", Kind: "health", Expr: "http://127.0.0.1:8080/healthz", Evaluations: 53},
				{Name: "checkout-errors", Kind: "promql", Expr: "sum(rate(checkout_errors_total[1m]))", Max: &maxP99, OnNoData: "ignore"},
			}},
		Stop: &drill.Stop{Rule: "prod-p99", Kind: "promql", Reason: "prod-p99: production p99 0.812 s > 0.5 s for 2 evaluations",
			Value: 0.812, Limit: 0.5, Consecutive: 2, At: 52300 * time.Millisecond, Stage: "peak", LastHealthy: "busy"},
		Services:  services,
		PreFlight: &drill.PreFlight{Tables: []string{"orders", "payments"}},
		Audit:     &drill.Audit{Tables: []string{"orders", "payments", "shadow_orders", "shadow_payments"}},
		Manifests: []drill.Manifest{
			{Kind: "HorizontalPodAutoscaler", Service: "gateway", Path: "hpa/gateway.yaml",
				YAML: "# HorizontalPodAutoscaler for gateway <written by loadcap>\napiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: gateway\nspec:\n  minReplicas: 2\n  maxReplicas: 14\n"},
			{Kind: "ScaledObject", Service: "inventory", Path: "keda/inventory.yaml"},
		},
	}
	return HTMLInput{Run: run, Find: find, Plan: plan, Drill: d, ExitCode: 105, Title: "Drill presale-2026-11"}, nil
}

func TestDrillSections(t *testing.T) {
	out := string(writeHTML(t, inputs(t)["drill"]))
	header := out[strings.Index(out, "<header"):strings.Index(out, "</header>")]
	for _, w := range []string{
		"<strong>FAIL</strong> exit code 105: aborted",
		"<strong>STOPPED by the guard in stage peak:</strong> prod-p99: production p99 0.812 s &gt; 0.5 s for 2 evaluations",
		"<dt>rule</dt><dd>prod-p99 (promql)</dd>", "<dt>value</dt><dd>0.812</dd>", "<dt>limit</dt><dd>0.5</dd>",
		"<dt>at</dt><dd>52.3s since the start</dd>", "<dt>last healthy stage</dt><dd>busy</dd>",
		"2 of 3 passed", "stopped in peak", "bottleneck", "inventory", "isolation audit", "clean",
	} {
		if !strings.Contains(header, w) {
			t.Errorf("verdict header lacks %q", w)
		}
	}
	for _, w := range []string{
		`<a href="#drill">Drill</a>`, `<a href="#guard">Guard</a>`, `<a href="#services">Services</a>`, `<a href="#isolation">Isolation</a>`,
		`<a href="#manifests">Manifests</a>`, `<a href="#capacity">Stages</a>`, `id="fig-drill-timeline"`,
		// the stages, each with its plan and verdict
		`<td>warm</td><td class="num">0s – 20s</td><td class="num">5s</td><td class="num">15s</td><td class="num">20.0 req/s (0.5× the recorded peak)</td><td class="num">19.9 req/s</td><td class="num">48.0ms</td><td>passed</td>`,
		`<tr class="bad"><th scope="row" class="num">3</th><td>peak</td>`, "<td>STOPPED by the guard · FAILED: p(99)&lt;500ms</td>",
		// the guard's rules, the one that stopped the drill marked
		`<tr class="stopped"><th scope="row">prod-p99 <span class="tag bad">stopped the drill</span></th><td>promql</td>`,
		"<td>≤ 0.5</td>", `<td class="num">3</td>`, "file /tmp/stop-drill",
		// evaluations without data, counted per rule
		`<td class="bad">4 of 53 (last: query returned 1 series, none with a usable value (1 NaN, 0 infinite))</td>`,
		`<td class="num">2</td><td>0 of 52</td></tr>`, "<td>ignored by the rule (on_no_data: ignore)</td>",
		"a PromQL rule without data (Prometheus not answering, no series, only NaN) for over 10s stops the drill (fail safe)",
		// the services, the bottleneck highlighted, lower bounds marked
		`<tr class="bottleneck"><th scope="row">inventory <span class="tag">bottleneck</span></th><td class="num">144 req/s</td><td class="num">72.2 req/s</td><td class="num">1.5</td><td>saturated: its capacity</td>`,
		`<th scope="row">checkout &lt;svc&gt;</th><td class="num">≥ 24.1 req/s</td>`, "≥ lower bound",
		// isolation
		"OK: 2 tables have a proper shadow twin (orders, payments)", "clean: no leaked row in the 4 tables scanned",
		// the manifests, the YAML escaped
		"<code>hpa/gateway.yaml</code>", "<code>keda/inventory.yaml</code>", "# HorizontalPodAutoscaler for gateway &lt;written by loadcap&gt;",
		"<h2>Stages, measured</h2>", `<th scope="col">stage</th>`,
	} {
		if !strings.Contains(out, w) {
			t.Errorf("page lacks %q", w)
		}
	}
	if strings.Count(out, `class="bottleneck"`) < 2 {
		t.Error("the drill's and the plan's bottleneck rows are not both highlighted")
	}
}

func TestDrillStageVerdicts(t *testing.T) {
	in := inputs(t)["drill"]
	find := in.Find
	oneStep, twoSteps := &capacity.FindResult{Steps: find.Steps[:1]}, &capacity.FindResult{Steps: find.Steps[:2]}
	tests := []struct {
		name  string
		stop  *drill.Stop
		find  *capacity.FindResult
		want  []string
		class []string
	}{
		{"ran to the end", nil, find, []string{"passed", "passed", "FAILED: p(99)<500ms"}, []string{"ok", "ok", "bad"}},
		{"guard stop in the middle", &drill.Stop{Kind: "switch", Stage: "busy"}, oneStep,
			[]string{"passed", "STOPPED by the guard", "not run"}, []string{"ok", "bad", ""}},
		{"an interrupt", &drill.Stop{Stage: "busy", Reason: "interrupted"}, twoSteps,
			[]string{"passed", "STOPPED · passed", "not run"}, []string{"ok", "bad", ""}},
		{"no stage measured", nil, &capacity.FindResult{}, []string{"not measured (no full second of hold)", "not measured (no full second of hold)", "not measured (no full second of hold)"},
			[]string{"warn", "warn", "warn"}},
		{"no find result", nil, nil, []string{"", "", ""}, []string{"", "", ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, c := stageVerdicts(&drill.Report{Stages: drillStages, Stop: tc.stop}, tc.find)
			if strings.Join(v, "|") != strings.Join(tc.want, "|") || strings.Join(c, "|") != strings.Join(tc.class, "|") {
				t.Errorf("verdicts %q classes %q, want %q %q", v, c, tc.want, tc.class)
			}
		})
	}
}

// drillOnly is a drill with no run: the pre-flight failed, so nothing was
// sent.
func drillOnly(mod func(d *drill.Report)) HTMLInput {
	d := &drill.Report{ID: "d1", Target: "http://127.0.0.1:1", Stages: drillStages}
	mod(d)
	return HTMLInput{Drill: d, ExitCode: 106}
}

func TestDrillIsolation(t *testing.T) {
	tests := []struct {
		name      string
		in        HTMLInput
		want, not []string
	}{
		{"leaks, some not listed", drillOnly(func(d *drill.Report) {
			d.Audit = &drill.Audit{Tables: []string{"orders", "shadow_orders"}, Counts: map[string]int{"orders": 12, "shadow_orders": 0},
				Leaks:     []audit.Leak{{Table: "orders", Key: `7<script>`, Why: "tagged presale in production"}, {Table: "orders", Key: "9", Why: "shadow ID in production"}},
				Unchecked: []audit.Problem{{Table: "payments", Column: "shadow_tag", What: "no such column"}}}
		}), []string{"LEAKED: 12 rows in 1 of the 2 tables scanned", "12 leaking rows, 2 listed", "<code>7&lt;script&gt;</code>",
			"tagged presale in production", "not checked: payments.shadow_tag: no such column", `<dd class="value">LEAKED</dd>`},
			[]string{"shadow_orders</th>"}},
		{"leaks without counts", drillOnly(func(d *drill.Report) {
			d.Audit = &drill.Audit{Tables: []string{"orders"}, Leaks: []audit.Leak{{Table: "orders", Why: "row without a key"}}}
		}), []string{"LEAKED: 1 rows in 1 of the 1 tables scanned", "1 leaking rows</td>", "<code>-</code>"}, []string{"listed"}},
		{"the audit failed", drillOnly(func(d *drill.Report) {
			d.Audit = &drill.Audit{Error: "connect: refused"}
		}), []string{"the audit could not run: isolation is unknown", "connect: refused", `<dd class="value">not run</dd>`}, []string{"clean"}},
		{"clean but one table unchecked", drillOnly(func(d *drill.Report) {
			d.Audit = &drill.Audit{Tables: []string{"orders"}, Unchecked: []audit.Problem{{Table: "stock", What: "no such table"}}}
		}), []string{"no leak in 1 tables scanned; 1 could not be checked", `<li class="warn">not checked: stock: no such table</li>`}, nil},
		{"pre-flight failed", drillOnly(func(d *drill.Report) {
			d.PreFlight = &drill.PreFlight{Tables: []string{"orders"}, Problems: []audit.Problem{{Table: "orders", Column: "total", What: "shadow twin has type TEXT, production INTEGER"}},
				Signals: []string{"GET http://127.0.0.1:9090/api/v1/query?query=1: connection refused"}}
		}), []string{"FAILED: 1 problems in 1 tables checked, 1 signals unreachable", "orders.total: shadow twin has type TEXT, production INTEGER",
			"signal unreachable: GET http://127.0.0.1:9090/api/v1/query?query=1: connection refused"}, []string{"clean"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := string(writeHTML(t, tc.in))
			page := out[:strings.Index(out, `<script type="application/json"`)]
			for _, w := range tc.want {
				if !strings.Contains(page, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(page, w) {
					t.Errorf("page has %q", w)
				}
			}
		})
	}
}

func TestDrillStopHeadline(t *testing.T) {
	tests := []struct {
		name string
		stop drill.Stop
		want []string
		not  []string
	}{
		{"latency clause", drill.Stop{Rule: "drill-p99", Kind: "traffic", Reason: "r", Value: 812.5, Limit: 500, Unit: "ms", Consecutive: 2, Stage: "peak"},
			[]string{"STOPPED by the guard in stage peak:", "<dd>812.5ms</dd>", "<dd>500.0ms</dd>", "2 evaluations in a row", "<dt>last healthy stage</dt><dd>none</dd>"}, nil},
		{"error rate", drill.Stop{Rule: "drill-errors", Kind: "traffic", Value: 0.034, Limit: 0.01, Unit: "ratio", Stage: "warm"},
			[]string{"<dd>3.40%</dd>", "<dd>1.00%</dd>"}, []string{"in a row"}},
		{"health", drill.Stop{Rule: "shop-health", Kind: "health", Value: 0, Unit: "status", Stage: "busy", LastHealthy: "warm"},
			[]string{"<dt>value</dt><dd>no answer</dd>", "<dt>last healthy stage</dt><dd>warm</dd>"}, []string{"<dt>limit</dt>"}},
		{"signal loss", drill.Stop{Rule: "prod-p99", Kind: "signal", Value: 12, Limit: 10, Unit: "s", Stage: "busy", Consecutive: 24,
			Reason: `signal lost: no data from rule "prod-p99" for 12.0s (grace 10s; 24 evaluations without data): query returned no series`},
			[]string{"<dd>12 s</dd>", "<dd>10 s</dd>", "<dt>without data</dt><dd>24 evaluations in a row</dd>",
				"no data from rule &#34;prod-p99&#34; for 12.0s"}, []string{"<dt>breached</dt>"}},
		{"infinite quantile", drill.Stop{Rule: "prod-p99", Kind: "promql", Value: math.Inf(1), Limit: 0.5, Stage: "peak"},
			[]string{"<dt>value</dt><dd>&#43;Inf</dd>"}, nil},
		{"hot switch", drill.Stop{Rule: "hot switch", Kind: "switch", Reason: "an operator flipped the hot switch", Stage: "busy", At: 1500 * time.Millisecond},
			[]string{"STOPPED by the guard in stage busy:", "<dd>hot switch (switch)</dd>", "<dd>1.5s since the start</dd>"}, []string{"<dt>value</dt>", "<dt>limit</dt>"}},
		{"interrupt", drill.Stop{Reason: "interrupted (SIGINT)", Stage: "warm"},
			[]string{"<strong>STOPPED in stage warm:</strong> interrupted (SIGINT)"}, []string{"by the guard", "<dt>rule</dt>", "<dt>value</dt>"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stop := tc.stop
			out := string(writeHTML(t, drillOnly(func(d *drill.Report) { d.Stop = &stop })))
			header := out[strings.Index(out, "<header"):strings.Index(out, "</header>")]
			for _, w := range tc.want {
				if !strings.Contains(header, w) {
					t.Errorf("header lacks %q", w)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(header, w) {
					t.Errorf("header has %q", w)
				}
			}
			d, err := ReadHTMLData(strings.NewReader(out))
			if err != nil {
				t.Fatal(err)
			}
			if got := d.Drill.Stop; got == nil || got.Value != stop.Value && !(math.IsNaN(got.Value) && math.IsNaN(stop.Value)) || got.Limit != stop.Limit {
				t.Errorf("embedded stop %+v, want %+v", got, stop)
			}
		})
	}
}

func TestDrillStopJSON(t *testing.T) {
	for _, v := range []float64{math.Inf(1), math.Inf(-1), math.NaN(), 0.25} {
		b, err := json.Marshal(drill.Stop{Rule: "r", Value: v, Limit: 1, At: time.Second})
		if err != nil {
			t.Fatalf("%v: %v", v, err)
		}
		var s drill.Stop
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if s.Rule != "r" || s.Limit != 1 || s.At != time.Second || !(s.Value == v || math.IsNaN(v) && math.IsNaN(s.Value)) {
			t.Errorf("%s reads back as %+v", b, s)
		}
	}
	var s drill.Stop
	if err := json.Unmarshal([]byte(`{"value":"lots"}`), &s); err == nil {
		t.Error("a value that is no number must fail")
	}
}

func TestDrillEscapes(t *testing.T) {
	evil := `<script>alert(1)</script>`
	in := drillOnly(func(d *drill.Report) {
		d.ID, d.Target, d.Traffic = evil, "http://127.0.0.1/?a=<i>", evil
		d.Stages = []drill.StagePlan{{Name: evil, RatePerSec: 5, Hold: time.Second}}
		d.Guard = &drill.GuardPlan{Rules: []drill.RulePlan{{Name: evil, Kind: "promql", Expr: `up{job="</code><b>"}`}}}
		d.Stop = &drill.Stop{Rule: evil, Kind: "promql", Reason: evil, Stage: evil}
		d.Services = []capacity.ServiceMeasure{{Name: evil, Stage: evil, Saturated: true}}
		d.PlanError = evil
		d.Manifests = []drill.Manifest{{Kind: evil, Service: evil, Path: evil, YAML: "</pre></details><u>" + evil}}
	})
	in.Title = ""
	out := string(writeHTML(t, in))
	page := out[:strings.Index(out, `<script type="application/json"`)]
	for _, bad := range []string{evil, "<b>", "<i>", "<u>"} {
		if i := strings.Index(page, bad); i >= 0 {
			t.Errorf("a drill string reached the page unescaped: %q", page[max(0, i-200):i+len(bad)])
		}
	}
	if !strings.Contains(page, "<title>loadcap drill &lt;script&gt;alert(1)&lt;/script&gt;</title>") {
		t.Error("the title is not named after the escaped drill id")
	}
	d, err := ReadHTMLData(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if d.Drill.ID != evil || d.Drill.Manifests[0].YAML != "</pre></details><u>"+evil {
		t.Errorf("embedded strings changed: %q", d.Drill.ID)
	}
}

// TestDrillAlone: a drill that sent nothing (its pre-flight failed) still
// gets a report.
func TestDrillAlone(t *testing.T) {
	out := string(writeHTML(t, drillOnly(func(d *drill.Report) {
		d.PreFlight = &drill.PreFlight{Error: "open db: no such file"}
	})))
	for _, w := range []string{`<strong>FAIL</strong> exit code 106: isolation violated`, "the pre-flight check could not run", "open db: no such file",
		`id="fig-drill-timeline"`, `<td>-</td></tr>`} {
		if !strings.Contains(out, w) {
			t.Errorf("page lacks %q", w)
		}
	}
	for _, w := range []string{`id="run"`, `id="capacity"`, `id="guard"`, `id="services"`, `id="manifests"`} {
		if strings.Contains(out, w) {
			t.Errorf("page has %q", w)
		}
	}
	var b bytes.Buffer
	if err := WriteHTML(&b, HTMLInput{Drill: &drill.Report{}}); err != nil {
		t.Errorf("an empty drill: %v", err)
	}
}
