package capacity

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"sigs.k8s.io/yaml"

	"github.com/loadcap/loadcap/test/testkit"
)

func TestTargetQPSPerPod(t *testing.T) {
	tests := []struct {
		name string
		safe float64
		want float64
	}{
		{name: "rounded down to whole requests", safe: 1750, want: 1590}, // 1750/1.1 = 1590.9
		{name: "cart", safe: 568.75, want: 517},                          // 568.75/1.1 = 517.05
		{name: "exact despite floating point", safe: 110, want: 100},     // 110/1.1 = 99.99999999999999 in float64
		{name: "small rates keep thousandths", safe: 5, want: 4.545},     // 5/1.1 = 4.5454
		{name: "tiny", safe: 0.0011, want: 0.001},                        // 0.0011/1.1 = 0.001
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := TargetQPSPerPod(&ServicePlan{SafeQPSPerReplica: tt.safe}); got != tt.want {
				t.Errorf("TargetQPSPerPod(safe %v) = %v, want %v", tt.safe, got, tt.want)
			}
		})
	}
}

// loadHPAs writes the HPAs of a plan, compares them with the golden files
// and reads them back into the Kubernetes types, rejecting unknown fields.
func loadHPAs(t *testing.T, plan, golden string) map[string]*autoscalingv2.HorizontalPodAutoscaler {
	t.Helper()
	r := planCompute(t, plan)
	dir := filepath.Join(t.TempDir(), "deploy", "hpa")
	paths, err := WriteHPA(dir, r)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*autoscalingv2.HorizontalPodAutoscaler{}
	if len(paths) != len(r.Services) {
		t.Fatalf("paths = %q", paths)
	}
	for i, path := range paths {
		if want := filepath.Join(dir, r.Services[i].Name+".yaml"); path != want {
			t.Errorf("path %d = %s, want %s", i, path, want)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		testkit.Golden(t, filepath.Join(planGoldenDir, golden, filepath.Base(path)), data)
		var h autoscalingv2.HorizontalPodAutoscaler
		if err := yaml.UnmarshalStrict(data, &h); err != nil {
			t.Fatalf("%s does not load as an autoscaling/v2 HPA: %v", path, err)
		}
		out[r.Services[i].Name] = &h
	}
	return out
}

func TestWriteHPA(t *testing.T) {
	hpas := loadHPAs(t, "testdata/plan/presale.yaml", "hpa")
	tests := []struct {
		name, namespace, deployment, metric, target string
		min, max                                    int32
		restore                                     string
	}{
		// safe 2500·0.7 = 1750, ÷1.1 = 1590; plan 11 replicas, budget 200
		{"gateway", "", "gateway", DefaultHPAMetric, "1590", 11, 200, "2"},
		// safe 568.75, ÷1.1 = 517; plan 80 over the budget 60 → max 80
		{"cart", "", "cart", DefaultHPAMetric, "517", 80, 80, "20"},
		// safe 630, ÷1.1 = 572
		{"order", "shop", "order-svc", "orders_http_rps", "572", 39, 200, "8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := hpas[tt.name]
			if h == nil {
				t.Fatal("no HPA")
			}
			if h.APIVersion != "autoscaling/v2" || h.Kind != "HorizontalPodAutoscaler" || h.Name != tt.name || h.Namespace != tt.namespace {
				t.Errorf("object %s %s %s/%s", h.APIVersion, h.Kind, h.Namespace, h.Name)
			}
			ref := h.Spec.ScaleTargetRef
			if ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" || ref.Name != tt.deployment {
				t.Errorf("scaleTargetRef = %+v", ref)
			}
			if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas != tt.min || h.Spec.MaxReplicas != tt.max {
				t.Errorf("replicas %v..%d, want %d..%d", h.Spec.MinReplicas, h.Spec.MaxReplicas, tt.min, tt.max)
			}
			if len(h.Spec.Metrics) != 1 || h.Spec.Metrics[0].Type != autoscalingv2.PodsMetricSourceType || h.Spec.Metrics[0].Pods == nil {
				t.Fatalf("metrics = %+v", h.Spec.Metrics)
			}
			m := h.Spec.Metrics[0].Pods
			if m.Metric.Name != tt.metric || m.Target.Type != autoscalingv2.AverageValueMetricType || m.Target.AverageValue == nil || m.Target.AverageValue.String() != tt.target {
				t.Errorf("metric %s target %s %v, want %s %s", m.Metric.Name, m.Target.Type, m.Target.AverageValue, tt.metric, tt.target)
			}
			b := h.Spec.Behavior
			up, down := b.ScaleUp, b.ScaleDown
			if *up.StabilizationWindowSeconds != 0 || up.Policies[0] != (autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15}) {
				t.Errorf("scale-up = %+v", up)
			}
			if *down.StabilizationWindowSeconds != 300 || len(down.Policies) != 1 || down.Policies[0] != (autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PercentScalingPolicy, Value: 10, PeriodSeconds: 60}) {
				t.Errorf("scale-down = %+v", down)
			}
			a := h.Annotations
			if a["loadcap.io/restore-min-replicas"] != tt.restore ||
				a["loadcap.io/sale-window"] != "2026-11-11T00:00:00+08:00/2026-11-11T02:00:00+08:00 Asia/Shanghai" ||
				!strings.Contains(a["loadcap.io/note"], "set it back to "+tt.restore+" after 2026-11-11T02:00:00+08:00") {
				t.Errorf("annotations = %q", a)
			}
		})
	}
}

func TestWriteHPASteady(t *testing.T) {
	// 400/(150·0.8) = 3.33 → 4, n+2 → 6; no budget → max(12, 10) = 12;
	// target 120/1.1 = 109.
	h := loadHPAs(t, "testdata/plan/steady.yaml", "hpa-steady")["api"]
	if *h.Spec.MinReplicas != 6 || h.Spec.MaxReplicas != 12 || h.Spec.Metrics[0].Pods.Target.AverageValue.String() != "109" {
		t.Errorf("spec = %+v", h.Spec)
	}
	if _, ok := h.Annotations["loadcap.io/restore-min-replicas"]; ok {
		t.Errorf("a plan without a window has nothing to restore: %q", h.Annotations)
	}
}

// kedaCRD lists the fields of keda.sh/v1alpha1 ScaledObject (KEDA 2.x CRD,
// openAPIV3Schema) under the paths loadcap writes; "!" marks a field the
// CRD requires.
var kedaCRD = map[string][]string{
	"":              {"!apiVersion", "!kind", "!metadata", "!spec"},
	"spec":          {"advanced", "cooldownPeriod", "fallback", "idleReplicaCount", "initialCooldownPeriod", "maxReplicaCount", "minReplicaCount", "pollingInterval", "!scaleTargetRef", "!triggers"},
	"spec.advanced": {"horizontalPodAutoscalerConfig", "restoreToOriginalReplicaCount", "scalingModifiers"},
	"spec.advanced.horizontalPodAutoscalerConfig": {"behavior", "name"},
	"spec.scaleTargetRef":                         {"apiVersion", "envSourceContainerName", "kind", "!name"},
	"spec.triggers[]":                             {"authenticationRef", "!metadata", "metricType", "name", "!type", "useCachedMetrics"},
}

// kedaCheckCRD reports fields of doc that the CRD does not know, and
// required fields that are missing.
func kedaCheckCRD(t *testing.T, path string, doc any) {
	t.Helper()
	fields, known := kedaCRD[path]
	if !known {
		return // metadata, behavior (checked by the typed decode), trigger metadata
	}
	switch v := doc.(type) {
	case []any:
		for _, e := range v {
			kedaCheckCRD(t, path+"[]", e)
		}
		if len(v) == 0 {
			t.Errorf("%s is empty", path)
		}
	case map[string]any:
		allowed := map[string]bool{}
		for _, f := range fields {
			name := strings.TrimPrefix(f, "!")
			allowed[name] = true
			if _, ok := v[name]; !ok && f[0] == '!' {
				t.Errorf("%s: required field %s is missing", path, name)
			}
		}
		for k, e := range v {
			if !allowed[k] {
				t.Errorf("%s: field %s is not in the ScaledObject CRD", path, k)
			}
			sub := k
			if path != "" {
				sub = path + "." + k
			}
			if _, isList := e.([]any); isList {
				kedaCheckCRD(t, sub, e)
			} else {
				kedaCheckCRD(t, sub, e)
			}
		}
	default:
		t.Errorf("%s: got %T", path, doc)
	}
}

func loadScaledObjects(t *testing.T, plan, golden string, o KEDAOptions) map[string]*ScaledObject {
	t.Helper()
	r := planCompute(t, plan)
	dir := filepath.Join(t.TempDir(), "keda")
	paths, err := WriteKEDA(dir, r, o)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*ScaledObject{}
	for i, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if golden != "" {
			testkit.Golden(t, filepath.Join(planGoldenDir, golden, filepath.Base(path)), data)
		}
		var so ScaledObject
		if err := yaml.UnmarshalStrict(data, &so); err != nil {
			t.Fatalf("%s does not load as a ScaledObject: %v", path, err)
		}
		var doc any
		if err := yaml.Unmarshal(data, &doc); err != nil {
			t.Fatal(err)
		}
		kedaCheckCRD(t, "", doc)
		out[r.Services[i].Name] = &so
	}
	return out
}

func kedaTrigger(so *ScaledObject, typ string) *ScaleTrigger {
	for i := range so.Spec.Triggers {
		if so.Spec.Triggers[i].Type == typ {
			return &so.Spec.Triggers[i]
		}
	}
	return nil
}

func TestWriteKEDA(t *testing.T) {
	sos := loadScaledObjects(t, "testdata/plan/presale.yaml", "keda", DefaultKEDAOptions())
	tests := []struct {
		name, namespace, deployment, threshold string
		min, max, desired                      int32
	}{
		{"gateway", "", "gateway", "1590", 2, 200, 11},
		{"cart", "", "cart", "517", 20, 80, 80},
		{"order", "shop", "order-svc", "572", 8, 200, 39},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			so := sos[tt.name]
			if so.APIVersion != "keda.sh/v1alpha1" || so.Kind != "ScaledObject" || so.Name != tt.name || so.Namespace != tt.namespace {
				t.Errorf("object %s %s %s/%s", so.APIVersion, so.Kind, so.Namespace, so.Name)
			}
			sp := so.Spec
			if sp.ScaleTargetRef.Name != tt.deployment || sp.ScaleTargetRef.Kind != "Deployment" {
				t.Errorf("scaleTargetRef = %+v", sp.ScaleTargetRef)
			}
			if *sp.MinReplicaCount != tt.min || *sp.MaxReplicaCount != tt.max {
				t.Errorf("replicas %d..%d, want %d..%d", *sp.MinReplicaCount, *sp.MaxReplicaCount, tt.min, tt.max)
			}
			if b := sp.Advanced.HorizontalPodAutoscalerConfig.Behavior; *b.ScaleDown.StabilizationWindowSeconds != 300 || *b.ScaleUp.StabilizationWindowSeconds != 0 {
				t.Errorf("behavior = %+v", b)
			}
			prom := kedaTrigger(so, "prometheus")
			if prom == nil || prom.MetricType != autoscalingv2.AverageValueMetricType ||
				prom.Metadata["threshold"] != tt.threshold ||
				prom.Metadata["serverAddress"] != "http://prometheus.monitoring:9090" ||
				prom.Metadata["query"] != `sum(rate(http_requests_total{service="`+tt.name+`"}[1m]))` {
				t.Errorf("prometheus trigger = %+v", prom)
			}
			cron := kedaTrigger(so, "cron")
			// 00:00 less the 15 minute lead is 23:45 the day before.
			if cron == nil || cron.Metadata["timezone"] != "Asia/Shanghai" || cron.Metadata["start"] != "45 23 10 11 *" ||
				cron.Metadata["end"] != "0 2 11 11 *" || cron.Metadata["desiredReplicas"] != strconv.Itoa(int(tt.desired)) {
				t.Errorf("cron trigger = %+v", cron)
			}
			if cron != nil && tt.desired > *sp.MaxReplicaCount {
				t.Errorf("cron wants %d replicas, above maxReplicaCount %d", tt.desired, *sp.MaxReplicaCount)
			}
		})
	}
}

func TestWriteKEDAOptions(t *testing.T) {
	o := KEDAOptions{
		PrometheusAddress: "http://prom.example:9090",
		Query:             `sum(rate(requests_total{app="{{service}}",ns="{{namespace}}"}[2m]))`,
		PrescaleLead:      NoPrescaleLead,
	}
	so := loadScaledObjects(t, "testdata/plan/presale.yaml", "", o)["order"]
	prom := kedaTrigger(so, "prometheus")
	if prom.Metadata["serverAddress"] != o.PrometheusAddress || prom.Metadata["query"] != `sum(rate(requests_total{app="order",ns="shop"}[2m]))` {
		t.Errorf("prometheus trigger = %+v", prom.Metadata)
	}
	if c := kedaTrigger(so, "cron"); c.Metadata["start"] != "0 0 11 11 *" {
		t.Errorf("no lead: cron starts %q, want the window's start", c.Metadata["start"])
	}
	// The zero options are the defaults.
	zero := loadScaledObjects(t, "testdata/plan/presale.yaml", "", KEDAOptions{})["order"]
	def := loadScaledObjects(t, "testdata/plan/presale.yaml", "", DefaultKEDAOptions())["order"]
	a, _ := yaml.Marshal(zero)
	b, _ := yaml.Marshal(def)
	if !bytes.Equal(a, b) {
		t.Errorf("zero options:\n%s\ndefaults:\n%s", a, b)
	}
}

func TestWriteKEDASteady(t *testing.T) {
	so := loadScaledObjects(t, "testdata/plan/steady.yaml", "keda-steady", DefaultKEDAOptions())["api"]
	// Without a window nothing pre-scales: the minimum is the plan.
	if kedaTrigger(so, "cron") != nil || *so.Spec.MinReplicaCount != 6 || *so.Spec.MaxReplicaCount != 12 || len(so.Spec.Triggers) != 1 {
		t.Errorf("spec = %+v", so.Spec)
	}
}

func TestKEDACron(t *testing.T) {
	shanghai, _ := time.LoadLocation("Asia/Shanghai")
	berlin, _ := time.LoadLocation("Europe/Berlin")
	tests := []struct {
		name       string
		start, end time.Time
		tz         string
		lead       time.Duration
		wantStart  string
		wantEnd    string
	}{
		{
			name:  "no lead",
			start: time.Date(2026, 11, 11, 0, 0, 0, 0, shanghai), end: time.Date(2026, 11, 11, 2, 0, 0, 0, shanghai),
			tz: "Asia/Shanghai", wantStart: "0 0 11 11 *", wantEnd: "0 2 11 11 *",
		},
		{
			name:  "lead across the new year",
			start: time.Date(2027, 1, 1, 0, 10, 0, 0, berlin), end: time.Date(2027, 1, 1, 6, 0, 0, 0, berlin),
			tz: "Europe/Berlin", lead: 30 * time.Minute, wantStart: "40 23 31 12 *", wantEnd: "0 6 1 1 *",
		},
		{
			name:  "seconds: start rounds down, end up",
			start: time.Date(2026, 6, 18, 20, 0, 30, 0, time.UTC), end: time.Date(2026, 6, 18, 21, 59, 1, 0, time.UTC),
			tz: "UTC", wantStart: "0 20 18 6 *", wantEnd: "0 22 18 6 *",
		},
		{
			name:  "times given in another zone",
			start: time.Date(2026, 11, 10, 16, 0, 0, 0, time.UTC), end: time.Date(2026, 11, 10, 18, 0, 0, 0, time.UTC),
			tz: "Asia/Shanghai", lead: time.Hour, wantStart: "0 23 10 11 *", wantEnd: "0 2 11 11 *",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, e, err := kedaCron(&PlanWindow{Start: tt.start, End: tt.end, Timezone: tt.tz}, tt.lead)
			if err != nil || s != tt.wantStart || e != tt.wantEnd {
				t.Errorf("cron %q – %q (%v), want %q – %q", s, e, err, tt.wantStart, tt.wantEnd)
			}
		})
	}
	year := &PlanWindow{Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 12, 31, 23, 50, 0, 0, time.UTC), Timezone: "UTC"}
	if _, _, err := kedaCron(year, time.Hour); err == nil {
		t.Error("a window of a year (with the lead) got a cron form")
	}
}

// Two runs write the same bytes, and every service gets its own file.
func TestWriteManifestsDeterministic(t *testing.T) {
	r := planCompute(t, "testdata/plan/presale.yaml")
	read := func(dir string) []string {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range entries {
			b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
			out = append(out, e.Name()+"\n"+string(b))
		}
		sort.Strings(out)
		return out
	}
	var runs [2][]string
	for i := range runs {
		dir := t.TempDir()
		if _, err := WriteHPA(filepath.Join(dir, "hpa"), r); err != nil {
			t.Fatal(err)
		}
		if _, err := WriteKEDA(filepath.Join(dir, "keda"), r, DefaultKEDAOptions()); err != nil {
			t.Fatal(err)
		}
		runs[i] = append(read(filepath.Join(dir, "hpa")), read(filepath.Join(dir, "keda"))...)
	}
	if len(runs[0]) != 6 || strings.Join(runs[0], "\x00") != strings.Join(runs[1], "\x00") {
		t.Errorf("runs differ or miss files: %d files", len(runs[0]))
	}
	for _, f := range runs[0] {
		if bytes.Contains([]byte(f), []byte("status:")) || bytes.Contains([]byte(f), []byte("creationTimestamp")) {
			t.Errorf("manifest carries empty status or timestamp:\n%s", f)
		}
	}
	if _, err := WriteHPA(t.TempDir(), &PlanResult{}); err == nil {
		t.Error("WriteHPA of an empty plan succeeded")
	}
}

// A manifest is replaced, never rewritten in place: whoever reads the
// previous one as it is replaced (kubectl apply, a GitOps sync) reads it
// whole, and a failed write leaves it as it was.
func TestWriteManifestsReplaceAtomically(t *testing.T) {
	r := planCompute(t, "testdata/plan/presale.yaml")
	for name, write := range map[string]func(string) error{
		"hpa":  func(dir string) error { _, err := WriteHPA(dir, r); return err },
		"keda": func(dir string) error { _, err := WriteKEDA(dir, r, DefaultKEDAOptions()); return err },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, r.Services[0].Name+".yaml")
			before := []byte("# the previous manifest\n")
			if err := os.WriteFile(path, before, 0o644); err != nil {
				t.Fatal(err)
			}
			reader, err := os.Open(path) // a reader of the previous manifest
			if err != nil {
				t.Fatal(err)
			}
			defer reader.Close()
			if err := write(dir); err != nil {
				t.Fatal(err)
			}
			if got, _ := io.ReadAll(reader); !bytes.Equal(got, before) {
				t.Errorf("a reader of the previous manifest read %.60q: it was rewritten in place", got)
			}
			if now, _ := os.ReadFile(path); bytes.Equal(now, before) {
				t.Error("the manifest was not replaced")
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != len(r.Services) {
				t.Errorf("files in %s: %v", dir, entries)
			}
		})
	}
}
