package scenarios

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// planDir holds the find.json fixtures; plans in these tests "live" there.
const planDir = "testdata/plan"

var planFile = filepath.Join(planDir, "t.yaml")

// planErrors parses src as testdata/plan/t.yaml and returns its problems,
// one string each, with the directory cut from the file name.
func planErrors(t *testing.T, src string) []string {
	t.Helper()
	_, err := ParsePlan(planFile, []byte(src))
	if err == nil {
		return nil
	}
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("error is %T, want Errors: %v", err, err)
	}
	if !Invalid(err) {
		t.Errorf("Invalid(%v) = false", err)
	}
	var out []string
	for _, e := range es {
		out = append(out, strings.TrimPrefix(e.Error(), planDir+"/"))
	}
	return out
}

func mustPlan(t *testing.T, src string) *Plan {
	t.Helper()
	p, err := ParsePlan(planFile, []byte(src))
	if err != nil {
		t.Fatalf("ParsePlan:\n%v", err)
	}
	return p
}

const planPeak = "peak: {entry_qps: 1000}\n"

func TestParsePlan(t *testing.T) {
	p := mustPlan(t, `peak:
  entry_qps: 12000
  window: {start: "2026-11-11T00:00:00", end: 2026-11-11T02:00:00, timezone: Asia/Shanghai}
headroom: 25%
redundancy: ZONE
budget: {max_replicas: 200}
x-defaults: &svc {fanout: 1, zones: 3}
services:
  gateway: {<<: *svc, capacity: 2500, current: 4}
  cart:    {capacity: cart-find.json, fanout: 2.5, current: 6, zones: 3, max_replicas: 60}
  order:   {capacity: "900", current: 0, zones: 2, metric: http_requests_per_second, namespace: shop, deployment: order-svc}
`)
	if p.Path != planFile || p.Peak.EntryQPS != 12000 || p.Headroom != 0.25 || p.Redundancy != RedundancyZone || p.MaxReplicas != 200 {
		t.Errorf("plan = %+v", p)
	}
	if p.Peak.Pos != (Pos{Line: 2, Col: 14}) {
		t.Errorf("peak pos = %v", p.Peak.Pos)
	}
	w := p.Peak.Window
	shanghai, _ := time.LoadLocation("Asia/Shanghai")
	if w == nil || w.Timezone != "Asia/Shanghai" ||
		!w.Start.Equal(time.Date(2026, 11, 10, 16, 0, 0, 0, time.UTC)) ||
		!w.End.Equal(time.Date(2026, 11, 11, 0, 0, 0, 0, shanghai).Add(2*time.Hour)) ||
		w.Start.Location().String() != "Asia/Shanghai" {
		t.Errorf("window = %+v", w)
	}
	want := []PlanService{
		{Name: "gateway", CapacityQPS: 2500, Fanout: 1, Current: 4, Zones: 3, Pos: Pos{9, 3}},
		{Name: "cart", CapacityQPS: 812.5, CapacityFile: "cart-find.json", Fanout: 2.5, Current: 6, Zones: 3, MaxReplicas: 60, Pos: Pos{10, 3}},
		{Name: "order", CapacityQPS: 900, Fanout: 1, Current: 0, Zones: 2, Metric: "http_requests_per_second", Namespace: "shop", Deployment: "order-svc", Pos: Pos{11, 3}},
	}
	if len(p.Services) != len(want) {
		t.Fatalf("services = %+v", p.Services)
	}
	for i := range want {
		if p.Services[i] != want[i] {
			t.Errorf("service %d = %+v\nwant %+v", i, p.Services[i], want[i])
		}
	}
}

func TestParsePlanDefaults(t *testing.T) {
	p := mustPlan(t, planPeak+"services: {api: {capacity: 100, current: 2}}\n")
	if p.Headroom != DefaultHeadroom || p.Redundancy != RedundancyN1 || p.MaxReplicas != 0 || p.Peak.Window != nil {
		t.Errorf("defaults: %+v", p)
	}
	if s := p.Services[0]; s.Fanout != 1 || s.Zones != 1 || s.Metric != "" || s.Deployment != "" || s.Namespace != "" {
		t.Errorf("service defaults: %+v", s)
	}
}

func TestParsePlanHeadroom(t *testing.T) {
	tests := []struct {
		name, value string
		want        float64
	}{
		{name: "percent", value: "30%", want: 0.3},
		{name: "fraction", value: "0.3", want: 0.3},
		{name: "zero", value: "0", want: 0},
		{name: "spaced percent", value: `"12.5 %"`, want: 0.125},
		{name: "max", value: "95%", want: 0.95},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustPlan(t, planPeak+"headroom: "+tt.value+"\nservices: {api: {capacity: 100, current: 2}}\n")
			if d := p.Headroom - tt.want; d > 1e-12 || d < -1e-12 {
				t.Errorf("headroom %s = %v, want %v", tt.value, p.Headroom, tt.want)
			}
		})
	}
}

func TestParsePlanWindowForms(t *testing.T) {
	tests := []struct {
		name, window string
		start, end   time.Time
	}{
		{
			name:   "UTC by default",
			window: `{start: "2026-11-11 00:00", end: "2026-11-11 02:30"}`,
			start:  time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC),
			end:    time.Date(2026, 11, 11, 2, 30, 0, 0, time.UTC),
		},
		{
			name:   "RFC 3339 with an offset, shown in the zone",
			window: `{start: "2026-11-10T16:00:00Z", end: "2026-11-11T02:00:00+08:00", timezone: Asia/Shanghai}`,
			start:  time.Date(2026, 11, 10, 16, 0, 0, 0, time.UTC),
			end:    time.Date(2026, 11, 10, 18, 0, 0, 0, time.UTC),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustPlan(t, "peak: {entry_qps: 1, window: "+tt.window+"}\nservices: {api: {capacity: 100, current: 2}}\n")
			w := p.Peak.Window
			if !w.Start.Equal(tt.start) || !w.End.Equal(tt.end) || w.Start.Location() != w.Location {
				t.Errorf("window %v – %v in %v, want %v – %v", w.Start, w.End, w.Location, tt.start, tt.end)
			}
		})
	}
}

func TestParsePlanErrors(t *testing.T) {
	const svc = "services: {api: {capacity: 100, current: 2}}\n"
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{
			name: "empty file",
			src:  "",
			want: []string{"t.yaml: the file is empty"},
		},
		{
			name: "empty mapping",
			src:  "{}\n",
			want: []string{"t.yaml:1:1: the file is empty: a plan needs at least peak and services"},
		},
		{
			name: "no peak, no services",
			src:  "headroom: 30%\n",
			want: []string{
				"t.yaml:1:1: peak: is required: the entry_qps the plan is for",
				"t.yaml:1:1: services: is required: at least one service with its capacity",
			},
		},
		{
			name: "no services",
			src:  planPeak + "services: {}\n",
			want: []string{"t.yaml:2:1: services: needs at least one service"},
		},
		{
			name: "unknown keys everywhere",
			src: `peek: {}
peak: {entry_qps: 1000, windw: {}}
budget: {max_replica: 3}
services:
  api: {capacty: 100, current: 2, fan_out: 2}
`,
			want: []string{
				`t.yaml:1:1: peek: unknown key (did you mean "peak"?); expected one of: peak, headroom, redundancy, budget, services`,
				`t.yaml:2:25: peak.windw: unknown key (did you mean "window"?); expected one of: entry_qps, window`,
				`t.yaml:3:10: budget.max_replica: unknown key (did you mean "max_replicas"?); expected one of: max_replicas`,
				"t.yaml:5:3: services.api.capacity: is required: the requests/s one replica sustains, or a find.json to read it from",
				`t.yaml:5:9: services.api.capacty: unknown key (did you mean "capacity"?); expected one of: capacity, fanout, current, zones, max_replicas, metric, namespace, deployment`,
				`t.yaml:5:35: services.api.fan_out: unknown key (did you mean "fanout"?); expected one of: capacity, fanout, current, zones, max_replicas, metric, namespace, deployment`,
			},
		},
		{
			name: "peak without entry_qps, entry_qps not positive",
			src:  "peak: {window: {start: 2026-11-11T00:00:00, end: 2026-11-11T01:00:00}}\n" + svc,
			want: []string{"t.yaml:1:7: peak.entry_qps: is required: the peak rate at the entry, in requests/s"},
		},
		{
			name: "entry_qps zero",
			src:  "peak: {entry_qps: 0}\n" + svc,
			want: []string{"t.yaml:1:19: peak.entry_qps: must be more than 0 requests/s, got 0"},
		},
		{
			name: "capacity, fanout, current, zones out of range",
			src: planPeak + `services:
  api:
    capacity: 0
    fanout: -1
    current: -2
    zones: 0
    max_replicas: 0
`,
			want: []string{
				"t.yaml:4:15: services.api.capacity: must be more than 0 requests/s per replica, got 0",
				"t.yaml:5:13: services.api.fanout: must be more than 0 (requests to this service per entry request), got -1",
				"t.yaml:6:14: services.api.current: must be 0 or more, got -2",
				"t.yaml:7:12: services.api.zones: must be 1 or more, got 0",
				"t.yaml:8:19: services.api.max_replicas: must be 1 or more, got 0",
			},
		},
		{
			name: "wrong types",
			src:  planPeak + "services:\n  api: {capacity: [1], fanout: fast, current: 1.5, zones: three}\n",
			want: []string{
				"t.yaml:3:19: services.api.capacity: must be a string, got a list",
				`t.yaml:3:32: services.api.fanout: must be a number, got "fast"`,
				"t.yaml:3:47: services.api.current: must be an integer, got \"1.5\"",
				`t.yaml:3:59: services.api.zones: must be an integer, got "three"`,
			},
		},
		{
			name: "service missing current, not a mapping",
			src:  planPeak + "services:\n  api: {capacity: 100}\n  web: 5\n",
			want: []string{
				"t.yaml:3:3: services.api.current: is required: the replicas running now",
				`t.yaml:4:8: services.web: must be a mapping, got "5"`,
			},
		},
		{
			name: "headroom out of range",
			src:  planPeak + "headroom: 96%\n" + svc,
			want: []string{"t.yaml:2:11: headroom: must be between 0 and 0.95 (0%–95%), got 96%"},
		},
		{
			name: "headroom written as a bare percentage",
			src:  planPeak + "headroom: 30\n" + svc,
			want: []string{"t.yaml:2:11: headroom: must be between 0 and 0.95 (0%–95%), got 30 (for a percentage write 30%)"},
		},
		{
			name: "headroom negative and not a number",
			src:  planPeak + "headroom: -0.1\nx-other: {headroom: lots%}\n" + svc,
			want: []string{"t.yaml:2:11: headroom: must be between 0 and 0.95 (0%–95%), got -0.1"},
		},
		{
			name: "headroom garbage",
			src:  planPeak + "headroom: lots%\n" + svc,
			want: []string{`t.yaml:2:11: headroom: must be a percentage such as 30% or a fraction such as 0.3, got "lots%"`},
		},
		{
			name: "unknown redundancy",
			src:  planPeak + "redundancy: n+3\n" + svc,
			want: []string{`t.yaml:2:13: redundancy: unknown redundancy "n+3" (did you mean "n+1"?); expected one of: none, n+1, n+2, zone`},
		},
		{
			name: "zone redundancy needs zones",
			src: planPeak + `redundancy: zone
services:
  api: {capacity: 100, current: 2}
  web: {capacity: 100, current: 2, zones: 1}
  db:  {capacity: 100, current: 2, zones: 2}
`,
			want: []string{
				"t.yaml:4:3: services.api.zones: is required with redundancy zone: the number of zones (2 or more) the replicas are spread over",
				"t.yaml:5:43: services.web.zones: redundancy zone needs a service spread over at least 2 zones, got 1",
			},
		},
		{
			name: "window end not after start",
			src: `peak:
  entry_qps: 10
  window: {start: "2026-11-11T02:00:00", end: "2026-11-11T02:00:00"}
` + svc,
			want: []string{`t.yaml:3:47: peak.window.end: must be after start (2026-11-11T02:00:00Z)`},
		},
		{
			name: "unknown timezone",
			src: `peak:
  entry_qps: 10
  window: {start: "2026-11-11T00:00:00", end: "2026-11-11T02:00:00", timezone: Asia/Shangai}
` + svc,
			want: []string{`t.yaml:3:80: peak.window.timezone: unknown time zone "Asia/Shangai": use an IANA name such as Asia/Shanghai, Europe/Berlin or UTC`},
		},
		{
			name: "Local timezone",
			src:  "peak:\n  entry_qps: 10\n  window: {start: 2026-11-11 00:00, end: 2026-11-11 02:00, timezone: Local}\n" + svc,
			want: []string{`t.yaml:3:70: peak.window.timezone: "Local" depends on the machine: name the zone, such as Asia/Shanghai or UTC`},
		},
		{
			name: "window times missing and malformed",
			src:  "peak:\n  entry_qps: 10\n  window: {start: 11/11/2026}\n" + svc,
			want: []string{
				`t.yaml:3:3: peak.window.end: is required`,
				`t.yaml:3:19: peak.window.start: "11/11/2026" is not a time: write it as 2026-11-11T00:00:00 (in the window's timezone)`,
			},
		},
		{
			name: "window of a year",
			src:  "peak:\n  entry_qps: 10\n  window: {start: 2026-11-11 00:00, end: 2027-11-11 00:00}\n" + svc,
			want: []string{`t.yaml:3:42: peak.window.end: the window must be shorter than a year (the pre-scaling cron repeats yearly)`},
		},
		{
			name: "empty window",
			src:  "peak:\n  entry_qps: 10\n  window:\n" + svc,
			want: []string{`t.yaml:3:3: peak.window: needs start and end`},
		},
		{
			name: "kubernetes names",
			src: planPeak + `services:
  Cart_Svc: {capacity: 100, current: 2}
  api: {capacity: 100, current: 2, namespace: Shop, deployment: "api svc", metric: "1bad metric"}
`,
			want: []string{
				`t.yaml:3:3: services.Cart_Svc: "Cart_Svc": a service name becomes a Kubernetes object name: lowercase letters, digits and -, at most 63, starting and ending with a letter or digit`,
				`t.yaml:4:47: services.api.namespace: "Shop" is not a Kubernetes namespace: lowercase letters, digits and -, at most 63`,
				`t.yaml:4:65: services.api.deployment: "api svc" is not a Kubernetes object name: lowercase letters, digits, - and .`,
				`t.yaml:4:84: services.api.metric: "1bad metric" is not a metric name: letters, digits and _ : . / -, starting with a letter, _ or :`,
			},
		},
		{
			name: "two services scale one deployment",
			src: planPeak + `services:
  api: {capacity: 100, current: 2}
  api-v2: {capacity: 100, current: 2, deployment: api}
  other: {capacity: 100, current: 2, deployment: api, namespace: shop}
`,
			want: []string{"t.yaml:4:3: services.api-v2: scales the same deployment as the service at line 3: two autoscalers on one deployment fight each other"},
		},
		{
			name: "duplicate service",
			src:  planPeak + "services:\n  api: {capacity: 100, current: 2}\n  api: {capacity: 100, current: 2}\n",
			want: []string{"t.yaml:4:3: services.api: duplicate key (first defined at line 3)"},
		},
		{
			name: "replicas over int32",
			src:  planPeak + "budget: {max_replicas: 3000000000}\n" + svc,
			want: []string{"t.yaml:2:24: budget.max_replicas: must be at most 2147483647 (Kubernetes counts replicas in int32), got 3000000000"},
		},
		{
			name: "every problem at once",
			src: `peak: {entry_qps: -5}
headroom: 2
redundancy: [n+1]
services:
  api: {capacity: -1, fanout: 0, current: 1}
`,
			want: []string{
				"t.yaml:1:19: peak.entry_qps: must be more than 0 requests/s, got -5",
				"t.yaml:2:11: headroom: must be between 0 and 0.95 (0%–95%), got 2 (for a percentage write 2%)",
				"t.yaml:3:13: redundancy: must be a string, got a list",
				"t.yaml:5:19: services.api.capacity: must be more than 0 requests/s per replica, got -1",
				"t.yaml:5:31: services.api.fanout: must be more than 0 (requests to this service per entry request), got 0",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := planErrors(t, tt.src)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// A capacity read from a find.json: every broken file is reported at the
// capacity: key, naming the file.
func TestParsePlanFindJSON(t *testing.T) {
	tests := []struct {
		name, file string
		want       string // the error, or "" for capacity 812.5
	}{
		{name: "good", file: "cart-find.json"},
		{name: "good, relative path with dirs", file: "../plan/cart-find.json"},
		{name: "missing", file: "nope.json", want: "t.yaml:3:9: services.api.capacity: find.json nope.json: does not exist"},
		{name: "max_qps 0", file: "zero-find.json", want: "t.yaml:3:9: services.api.capacity: find.json zero-find.json: \"max_qps\" is 0: no step of the search met the SLO, so there is no capacity to plan with"},
		{name: "broken JSON", file: "broken-find.json", want: "t.yaml:3:9: services.api.capacity: find.json broken-find.json: is not valid find output (JSON): unexpected EOF"},
		{name: "no max_qps", file: "nomax-find.json", want: `t.yaml:3:9: services.api.capacity: find.json nomax-find.json: has no "max_qps": is it the --out of capacity find?`},
		{name: "max_qps a string", file: "string-find.json", want: `t.yaml:3:9: services.api.capacity: find.json string-find.json: "max_qps" must be a number, got "fast"`},
		{name: "a directory", file: ".", want: "t.yaml:3:9: services.api.capacity: find.json .: is not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := planPeak + "services:\n  api: {capacity: " + tt.file + ", current: 1}\n"
			if tt.want == "" {
				p := mustPlan(t, src)
				if s := p.Services[0]; s.CapacityQPS != 812.5 || s.CapacityFile != tt.file {
					t.Errorf("capacity %v from %q", s.CapacityQPS, s.CapacityFile)
				}
				return
			}
			got := planErrors(t, src)
			if len(got) != 1 || got[0] != tt.want {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), tt.want)
			}
		})
	}
}

func TestLoadPlan(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "find.json"), []byte(`{"max_qps": 250}`), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "plan.yaml")
	if err := os.WriteFile(path, []byte(planPeak+"services: {api: {capacity: find.json, current: 1}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := LoadPlan(path)
	if err != nil {
		t.Fatal(err)
	}
	if p.Services[0].CapacityQPS != 250 {
		t.Errorf("capacity = %v, want 250 from the find.json next to the plan", p.Services[0].CapacityQPS)
	}
	if _, err := LoadPlan(filepath.Join(dir, "missing.yaml")); err == nil || Invalid(err) {
		t.Errorf("missing plan: err = %v, want a tool error (not invalid input)", err)
	}
}

// FuzzParsePlan checks that ParsePlan never panics, that a failure is
// always Errors with positions inside the input, and that what it accepts
// is within the documented ranges. The seed corpus is
// testdata/fuzz/FuzzParsePlan plus the example plans.
func FuzzParsePlan(f *testing.F) {
	paths, _ := filepath.Glob("examples/*-plan.yaml")
	for _, p := range paths {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	// The file "lives" in examples/, so cart-find.json resolves.
	const name = "examples/fuzz-plan.yaml"
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePlan(name, data)
		if err != nil {
			checkErrors(t, name, data, err)
			return
		}
		if !(p.Peak.EntryQPS > 0) || p.Headroom < 0 || p.Headroom > MaxHeadroom || len(p.Services) == 0 || p.MaxReplicas < 0 {
			t.Fatalf("accepted plan out of range: %+v", p)
		}
		if w := p.Peak.Window; w != nil && (!w.End.After(w.Start) || w.Location == nil) {
			t.Fatalf("accepted window %+v", w)
		}
		for _, s := range p.Services {
			if !(s.CapacityQPS > 0) || !(s.Fanout > 0) || s.Current < 0 || s.Zones < 1 || s.MaxReplicas < 0 ||
				(p.Redundancy == RedundancyZone && s.Zones < 2) || !planDNSLabel.MatchString(s.Name) {
				t.Fatalf("accepted service out of range: %+v", s)
			}
		}
	})
}

// FuzzPlanFindJSON checks the find.json a plan reads its capacity from
// (capacity: find.json): never a panic, a refusal reported at the capacity
// key naming the file, and an accepted file giving a finite, positive
// capacity. Seed corpus: testdata/plan's find results.
//
//	go test ./scenarios -run '^$' -fuzz FuzzPlanFindJSON -fuzztime 30s
func FuzzPlanFindJSON(f *testing.F) {
	paths, _ := filepath.Glob("testdata/plan/*-find.json")
	for _, p := range paths {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "find.json"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		name := filepath.Join(dir, "plan.yaml")
		src := []byte(planPeak + "services:\n  api: {capacity: find.json, current: 1}\n")
		p, err := ParsePlan(name, src)
		if err != nil {
			checkErrors(t, name, src, err)
			if !strings.Contains(err.Error(), "find.json find.json: ") {
				t.Fatalf("the refusal does not name the find.json: %v", err)
			}
			return
		}
		if c := p.Services[0].CapacityQPS; !(c > 0) || math.IsInf(c, 0) {
			t.Fatalf("capacity %v accepted", c)
		}
	})
}
