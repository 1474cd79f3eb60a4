package capacity

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loadcap/loadcap/scenarios"

	"github.com/loadcap/loadcap/test/testkit"
)

const planGoldenDir = "testdata/plan/golden"

func planCompute(t *testing.T, path string) *PlanResult {
	t.Helper()
	p, err := scenarios.LoadPlan(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Compute(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// planOf builds a one-service plan.
func planOf(entryQPS, headroom float64, red scenarios.Redundancy, s scenarios.PlanService) *scenarios.Plan {
	if s.Name == "" {
		s.Name = "api"
	}
	if s.Fanout == 0 {
		s.Fanout = 1
	}
	if s.Zones == 0 {
		s.Zones = 1
	}
	return &scenarios.Plan{Path: "t.yaml", Peak: scenarios.Peak{EntryQPS: entryQPS}, Headroom: headroom, Redundancy: red,
		Services: []scenarios.PlanService{s}}
}

func TestComputeReplicas(t *testing.T) {
	tests := []struct {
		name       string
		plan       *scenarios.Plan
		load, want int
	}{
		{
			// 1000·1 / (100·(1−0.3)) = 1000/70 = 14.29 → 15
			name: "none", load: 15, want: 15,
			plan: planOf(1000, 0.3, scenarios.RedundancyNone, scenarios.PlanService{CapacityQPS: 100}),
		},
		{
			// ⌈14.29⌉ + 1 = 16
			name: "n+1", load: 15, want: 16,
			plan: planOf(1000, 0.3, scenarios.RedundancyN1, scenarios.PlanService{CapacityQPS: 100}),
		},
		{
			// ⌈14.29⌉ + 2 = 17
			name: "n+2", load: 15, want: 17,
			plan: planOf(1000, 0.3, scenarios.RedundancyN2, scenarios.PlanService{CapacityQPS: 100}),
		},
		{
			// Z=3: ⌈14.29·3/2⌉ = ⌈21.43⌉ = 22; rounding first would give
			// ⌈15·1.5⌉ = 23.
			name: "zone loss, 3 zones", load: 15, want: 22,
			plan: planOf(1000, 0.3, scenarios.RedundancyZone, scenarios.PlanService{CapacityQPS: 100, Zones: 3}),
		},
		{
			// Z=2: ⌈14.29·2⌉ = ⌈28.57⌉ = 29
			name: "zone loss, 2 zones", load: 15, want: 29,
			plan: planOf(1000, 0.3, scenarios.RedundancyZone, scenarios.PlanService{CapacityQPS: 100, Zones: 2}),
		},
		{
			// Z=4: ⌈12000·2.5/(812.5·0.7)·4/3⌉ = ⌈52.75·1.333⌉ = ⌈70.33⌉ = 71
			name: "fanout and zones", load: 53, want: 71,
			plan: planOf(12000, 0.3, scenarios.RedundancyZone, scenarios.PlanService{CapacityQPS: 812.5, Fanout: 2.5, Zones: 4}),
		},
		{
			// 735/(350·0.7) = 735/245 = 3 exactly; in floating point
			// 3.0000000000000004, which must not become 4.
			name: "exact division", load: 3, want: 3,
			plan: planOf(735, 0.3, scenarios.RedundancyNone, scenarios.PlanService{CapacityQPS: 350}),
		},
		{
			// No headroom: 1000/100 = 10
			name: "no headroom", load: 10, want: 11,
			plan: planOf(1000, 0, scenarios.RedundancyN1, scenarios.PlanService{CapacityQPS: 100}),
		},
		{
			// 1/(1000·0.7) = 0.0014 → at least 1
			name: "at least one", load: 1, want: 1,
			plan: planOf(1, 0.3, scenarios.RedundancyNone, scenarios.PlanService{CapacityQPS: 1000}),
		},
		{
			// fanout 0.1: 1000·0.1/(50·0.5) = 100/25 = 4, +2
			name: "fanout below one", load: 4, want: 6,
			plan: planOf(1000, 0.5, scenarios.RedundancyN2, scenarios.PlanService{CapacityQPS: 50, Fanout: 0.1}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Compute(tt.plan)
			if err != nil {
				t.Fatal(err)
			}
			s := r.Services[0]
			if s.LoadReplicas != tt.load || s.Replicas != tt.want {
				t.Errorf("load %d, replicas %d; want %d, %d", s.LoadReplicas, s.Replicas, tt.load, tt.want)
			}
			if row := r.Sensitivity[2]; row.ChangePct != 0 || row.Replicas["api"] != tt.want {
				t.Errorf("sensitivity at +0%% = %+v, want %d replicas", row, tt.want)
			}
		})
	}
}

// The golden plan (testdata/plan/presale.yaml), computed by hand: peak
// 12000, headroom 30%, redundancy zone.
func TestComputePresale(t *testing.T) {
	r := planCompute(t, "testdata/plan/presale.yaml")
	want := []struct {
		name                   string
		load, replicas, delta  int
		max                    int
		over                   bool
		safe, satNow, satPlan  float64
		metric, ns, deployment string
	}{
		// 12000/(2500·0.7) = 6.857 → load 7; ·3/2 = 10.29 → 11; 11−2 = +9
		// saturates 2500·2/1 = 5000 now, 2500·11 = 27500 planned
		{"gateway", 7, 11, 9, 200, false, 1750, 5000, 27500, DefaultHPAMetric, "", "gateway"},
		// 12000·2.5/(812.5·0.7) = 30000/568.75 = 52.75 → 53; ·1.5 = 79.12 → 80;
		// over its budget of 60, so its autoscalers get 80.
		// saturates 812.5·20/2.5 = 6500 now, 812.5·80/2.5 = 26000 planned
		{"cart", 53, 80, 60, 80, true, 568.75, 6500, 26000, DefaultHPAMetric, "", "cart"},
		// 12000/(900·0.7) = 19.05 → 20; Z=2: ·2 = 38.1 → 39
		// saturates 900·8 = 7200 now, 900·39 = 35100 planned
		{"order", 20, 39, 31, 200, false, 630, 7200, 35100, "orders_http_rps", "shop", "order-svc"},
	}
	if len(r.Services) != len(want) {
		t.Fatalf("services: %+v", r.Services)
	}
	for i, w := range want {
		s := r.Services[i]
		if s.Name != w.name || s.LoadReplicas != w.load || s.Replicas != w.replicas || s.Delta != w.delta ||
			s.MaxReplicas != w.max || s.OverBudget != w.over || s.SafeQPSPerReplica != w.safe ||
			s.SaturatesAtCurrentQPS != w.satNow || s.SaturatesAtPlannedQPS != w.satPlan ||
			s.Metric != w.metric || s.Namespace != w.ns || s.Deployment != w.deployment {
			t.Errorf("service %d = %+v\nwant %+v", i, s, w)
		}
	}
	if r.Totals != (PlanTotals{Current: 30, Replicas: 130, Delta: 100}) {
		t.Errorf("totals = %+v", r.Totals)
	}
	// capacity/fanout: gateway 2500, cart 325, order 900 → cart.
	if r.Bottleneck != (Bottleneck{Service: "cart", EntryQPSPerReplica: 325, SaturatesAtCurrentQPS: 6500}) {
		t.Errorf("bottleneck = %+v", r.Bottleneck)
	}
	// Today: gateway 5000, cart 6500, order 7200 → gateway runs out first.
	if r.FirstToSaturate != (Saturation{Service: "gateway", EntryQPS: 5000}) {
		t.Errorf("first to saturate = %+v", r.FirstToSaturate)
	}
	if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "cart needs 80 replicas at the peak, more than its budget of 60") {
		t.Errorf("warnings = %q", r.Warnings)
	}
}

func TestComputeSensitivity(t *testing.T) {
	r := planCompute(t, "testdata/plan/presale.yaml")
	// gateway: ⌈e/1750·1.5⌉, cart: ⌈e·2.5/568.75·1.5⌉, order: ⌈e/630·2⌉
	want := []SensitivityRow{
		// 9600: 8.23 → 9, 63.30 → 64, 30.48 → 31
		{ChangePct: -20, EntryQPS: 9600, Replicas: map[string]int{"gateway": 9, "cart": 64, "order": 31}, Total: 104},
		// 10800: 9.26 → 10, 71.21 → 72, 34.29 → 35
		{ChangePct: -10, EntryQPS: 10800, Replicas: map[string]int{"gateway": 10, "cart": 72, "order": 35}, Total: 117},
		{ChangePct: 0, EntryQPS: 12000, Replicas: map[string]int{"gateway": 11, "cart": 80, "order": 39}, Total: 130},
		// 13200: 11.31 → 12, 87.03 → 88, 41.90 → 42
		{ChangePct: 10, EntryQPS: 13200, Replicas: map[string]int{"gateway": 12, "cart": 88, "order": 42}, Total: 142},
		// 14400: 12.34 → 13, 94.95 → 95, 45.71 → 46
		{ChangePct: 20, EntryQPS: 14400, Replicas: map[string]int{"gateway": 13, "cart": 95, "order": 46}, Total: 154},
		// 15600: 13.37 → 14, 102.86 → 103, 49.52 → 50
		{ChangePct: 30, EntryQPS: 15600, Replicas: map[string]int{"gateway": 14, "cart": 103, "order": 50}, Total: 167},
		// 18000: 15.43 → 16, 118.68 → 119, 57.14 → 58
		{ChangePct: 50, EntryQPS: 18000, Replicas: map[string]int{"gateway": 16, "cart": 119, "order": 58}, Total: 193},
	}
	got, _ := json.Marshal(r.Sensitivity)
	exp, _ := json.Marshal(want)
	if !bytes.Equal(got, exp) {
		t.Errorf("sensitivity:\n%s\nwant:\n%s", got, exp)
	}
}

func TestComputeBudget(t *testing.T) {
	tests := []struct {
		name         string
		planMax, own int
		replicas     int
		wantMax      int
		wantOver     bool
	}{
		// 1000/(100·0.7) = 14.29 → 15 + 1 = 16 replicas throughout.
		{name: "no budget: twice the plan", replicas: 16, wantMax: 32},
		{name: "plan budget", planMax: 50, replicas: 16, wantMax: 50},
		{name: "service budget wins", planMax: 50, own: 20, replicas: 16, wantMax: 20},
		{name: "over budget: raised to the plan", planMax: 10, replicas: 16, wantMax: 16, wantOver: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := planOf(1000, 0.3, scenarios.RedundancyN1, scenarios.PlanService{CapacityQPS: 100, MaxReplicas: tt.own})
			p.MaxReplicas = tt.planMax
			r, err := Compute(p)
			if err != nil {
				t.Fatal(err)
			}
			s := r.Services[0]
			if s.Replicas != tt.replicas || s.MaxReplicas != tt.wantMax || s.OverBudget != tt.wantOver || (len(r.Warnings) > 0) != tt.wantOver {
				t.Errorf("replicas %d, max %d, over %v, warnings %q; want %d, %d, %v", s.Replicas, s.MaxReplicas, s.OverBudget, r.Warnings, tt.replicas, tt.wantMax, tt.wantOver)
			}
		})
	}
	// A small service gets room for 4 more: 1 replica → max(2, 5) = 5.
	r, err := Compute(planOf(1, 0, scenarios.RedundancyNone, scenarios.PlanService{CapacityQPS: 100}))
	if err != nil {
		t.Fatal(err)
	}
	if s := r.Services[0]; s.Replicas != 1 || s.MaxReplicas != 5 {
		t.Errorf("small service: replicas %d, max %d; want 1, 5", s.Replicas, s.MaxReplicas)
	}
}

func TestComputeErrors(t *testing.T) {
	huge := planOf(1e12, 0.3, scenarios.RedundancyN1, scenarios.PlanService{CapacityQPS: 1, Pos: scenarios.Pos{Line: 7, Col: 3}})
	_, err := Compute(huge)
	if !scenarios.Invalid(err) || err.Error() != "t.yaml:7:3: services.api: needs more than 2147483647 replicas at the peak: check peak.entry_qps, fanout and capacity" {
		t.Errorf("overflow: %v", err)
	}
	// Fits at the peak (1.2e9/0.7 = 1.71e9), not at +50% (1.8e9/0.7 = 2.57e9).
	edge := planOf(1.2e9, 0.3, scenarios.RedundancyN1, scenarios.PlanService{CapacityQPS: 1})
	if _, err := Compute(edge); !scenarios.Invalid(err) || !strings.Contains(err.Error(), "at the peak +50%") {
		t.Errorf("overflow in the sensitivity: %v", err)
	}
	inf := planOf(1e-300, 0, scenarios.RedundancyNone, scenarios.PlanService{CapacityQPS: 1e300, Current: 1 << 30, Pos: scenarios.Pos{Line: 2, Col: 3}})
	if _, err := Compute(inf); !scenarios.Invalid(err) || err.Error() != "t.yaml:2:3: services.api: capacity, fanout and replicas multiply beyond any rate: check them" {
		t.Errorf("infinite saturation: %v", err)
	}
	if _, err := Compute(&scenarios.Plan{}); err == nil || scenarios.Invalid(err) {
		t.Errorf("empty plan: %v", err)
	}
}

func TestPlanTableGolden(t *testing.T) {
	for _, name := range []string{"presale", "steady"} {
		t.Run(name, func(t *testing.T) {
			r := planCompute(t, "testdata/plan/"+name+".yaml")
			var table, js bytes.Buffer
			if err := r.WriteTable(&table); err != nil {
				t.Fatal(err)
			}
			if err := r.WriteJSON(&js); err != nil {
				t.Fatal(err)
			}
			testkit.Golden(t, filepath.Join(planGoldenDir, name+".txt"), table.Bytes())
			testkit.Golden(t, filepath.Join(planGoldenDir, name+".json"), js.Bytes())
			for _, line := range strings.Split(table.String(), "\n") {
				if strings.TrimRight(line, " ") != line {
					t.Errorf("trailing spaces: %q", line)
				}
			}
		})
	}
}

// plan.json is a complete input for the manifests: decoded, it writes the
// same files as the result it came from.
func TestPlanJSONRoundTrip(t *testing.T) {
	r := planCompute(t, "testdata/plan/presale.yaml")
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back PlanResult
	dec := json.NewDecoder(&buf)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&back); err != nil {
		t.Fatal(err)
	}
	a, b := t.TempDir(), t.TempDir()
	for _, dir := range []string{a, b} {
		res := r
		if dir == b {
			res = &back
		}
		if _, err := WriteHPA(filepath.Join(dir, "hpa"), res); err != nil {
			t.Fatal(err)
		}
		if _, err := WriteKEDA(filepath.Join(dir, "keda"), res, DefaultKEDAOptions()); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range r.Services {
		for _, kind := range []string{"hpa", "keda"} {
			x, _ := os.ReadFile(filepath.Join(a, kind, s.Name+".yaml"))
			y, _ := os.ReadFile(filepath.Join(b, kind, s.Name+".yaml"))
			if len(x) == 0 || !bytes.Equal(x, y) {
				t.Errorf("%s/%s.yaml differs after a JSON round trip:\n%s\n---\n%s", kind, s.Name, x, y)
			}
		}
	}
}

// FuzzPlanCompute checks that whatever ParsePlan accepts, Compute either
// plans or reports Errors, and that a plan is consistent and yields valid
// manifests.
func FuzzPlanCompute(f *testing.F) {
	for _, glob := range []string{"testdata/plan/*.yaml", "../scenarios/examples/*-plan.yaml"} {
		paths, _ := filepath.Glob(glob)
		for _, p := range paths {
			if data, err := os.ReadFile(p); err == nil {
				f.Add(data)
			}
		}
	}
	f.Add([]byte("peak: {entry_qps: 1e308}\nheadroom: 95%\nservices: {api: {capacity: 4.9e-324, fanout: 1e308, current: 1}}\n"))
	f.Add([]byte("peak: {entry_qps: 1e-300}\nredundancy: zone\nservices: {api: {capacity: 1e300, current: 2147483647, zones: 2147483647}}\n"))
	const name = "testdata/plan/fuzz.yaml"
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := scenarios.ParsePlan(name, data)
		if err != nil {
			return
		}
		r, err := Compute(p)
		if err != nil {
			if !scenarios.Invalid(err) {
				t.Fatalf("Compute of a parsed plan: %v", err)
			}
			return
		}
		if len(r.Sensitivity) != len(SensitivityChanges) || len(r.Services) != len(p.Services) {
			t.Fatalf("result shape: %+v", r)
		}
		for i := range r.Services {
			s := &r.Services[i]
			if s.LoadReplicas < 1 || s.Replicas < s.LoadReplicas || s.MaxReplicas < s.Replicas || s.Delta != s.Replicas-s.Current {
				t.Fatalf("service %+v", s)
			}
			prev := 0
			for _, row := range r.Sensitivity {
				n := row.Replicas[s.Name]
				if n < prev || n < 1 {
					t.Fatalf("sensitivity of %s not monotone: %+v", s.Name, r.Sensitivity)
				}
				prev = n
			}
			h := HPA(r, s)
			if *h.Spec.MinReplicas > h.Spec.MaxReplicas || *h.Spec.MinReplicas < 1 {
				t.Fatalf("HPA replicas %d..%d", *h.Spec.MinReplicas, h.Spec.MaxReplicas)
			}
			if _, err := k8sYAML(h); err != nil {
				t.Fatal(err)
			}
			so, err := ScaledObjectFor(r, s, KEDAOptions{})
			if err != nil {
				// Only a window within the lead and a minute of a year has
				// no cron form once its end is rounded up to the minute.
				if w := r.Window; w == nil || w.End.Sub(w.Start) < 365*24*time.Hour-DefaultPrescaleLead-time.Minute {
					t.Fatal(err)
				}
				continue
			}
			if _, err := k8sYAML(so); err != nil {
				t.Fatal(err)
			}
		}
		var table bytes.Buffer
		if err := r.WriteTable(&table); err != nil {
			t.Fatal(err)
		}
		if err := r.WriteJSON(&table); err != nil {
			t.Fatal(err)
		}
	})
}
