package capacity

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/loadcap/loadcap/internal/cli"
)

// HPATolerance is the Kubernetes HPA's default tolerance: it changes
// nothing while usage/target is within 1 ± 0.1 (the controller manager's
// --horizontal-pod-autoscaler-tolerance). A target set to the safe rate
// would let pods run 10% past it before any scale-up, so autoscaler targets
// are the safe rate ÷ (1 + HPATolerance).
const HPATolerance = 0.1

// Defaults of the KEDA output.
const (
	// DefaultPrometheusAddress is written into the KEDA prometheus
	// trigger when KEDAOptions names no server. loadcap never contacts it.
	DefaultPrometheusAddress = "http://prometheus.monitoring:9090"
	// DefaultKEDAQuery is the PromQL of the prometheus trigger: the
	// service's total request rate over the last minute. KEDA divides it
	// by the replicas (metricType AverageValue) and compares it with the
	// per-pod threshold. {{service}} becomes the service name and
	// {{namespace}} its namespace.
	DefaultKEDAQuery = `sum(rate(http_requests_total{service="{{service}}"}[1m]))`
	// DefaultPrescaleLead is how long before the window the cron trigger
	// raises the replicas: new pods need time to be scheduled, pull their
	// image and become ready, and a sale's traffic arrives at once.
	DefaultPrescaleLead = 15 * time.Minute
)

// NoPrescaleLead (any negative PrescaleLead) starts the cron trigger with
// the window itself.
const NoPrescaleLead time.Duration = -1

// KEDAOptions configure the KEDA ScaledObjects. The zero value means the
// defaults.
type KEDAOptions struct {
	// PrometheusAddress is the Prometheus URL KEDA queries; written into
	// the manifest, never contacted. "" means DefaultPrometheusAddress.
	PrometheusAddress string
	// Query is the PromQL of the total request rate of a service, with
	// {{service}} and {{namespace}} placeholders. "" means DefaultKEDAQuery.
	Query string
	// PrescaleLead moves the cron trigger's start this much before the
	// window's start. 0 means DefaultPrescaleLead; NoPrescaleLead (or any
	// negative value) starts it with the window.
	PrescaleLead time.Duration
}

// DefaultKEDAOptions returns the options the zero KEDAOptions stands for.
func DefaultKEDAOptions() KEDAOptions {
	return KEDAOptions{PrometheusAddress: DefaultPrometheusAddress, Query: DefaultKEDAQuery, PrescaleLead: DefaultPrescaleLead}
}

// withDefaults fills the zero fields of o.
func (o KEDAOptions) withDefaults() KEDAOptions {
	if o.PrometheusAddress == "" {
		o.PrometheusAddress = DefaultPrometheusAddress
	}
	if o.Query == "" {
		o.Query = DefaultKEDAQuery
	}
	switch {
	case o.PrescaleLead == 0:
		o.PrescaleLead = DefaultPrescaleLead
	case o.PrescaleLead < 0:
		o.PrescaleLead = 0
	}
	return o
}

// Annotation keys on the autoscaler manifests.
const (
	annoPlan          = "loadcap.io/plan"
	annoWindow        = "loadcap.io/sale-window"
	annoRestore       = "loadcap.io/restore-min-replicas"
	annoNote          = "loadcap.io/note"
	annoSafeQPS       = "loadcap.io/safe-qps-per-pod"
	labelManagedBy    = "app.kubernetes.io/managed-by"
	managedByLoadcap  = "loadcap"
	k8sDeploymentKind = "Deployment"
	k8sAppsV1         = "apps/v1"
)

// TargetQPSPerPod is the per-pod request rate an autoscaler aims at for s:
// the safe rate capacity·(1−headroom) ÷ (1+HPATolerance), rounded down
// (to a whole request/s from 10 up, else to a thousandth).
func TargetQPSPerPod(s *ServicePlan) float64 {
	v := s.SafeQPSPerReplica / (1 + HPATolerance)
	if v >= 10 {
		return math.Floor(v * (1 + 1e-12))
	}
	return math.Floor(v*1000*(1+1e-12)) / 1000
}

// k8sBehavior is the scaling behavior of every autoscaler. Scale-up is
// fast: no stabilization, doubling or +4 pods every 15 s, whichever is more
// (the Kubernetes default scale-up, written out so the plan does not depend
// on it). Scale-down is slow: the highest recommendation of the last 5
// minutes, at most 10% of the pods a minute, so a dip in the sale's traffic
// does not throw away warm pods.
func k8sBehavior() *autoscalingv2.HorizontalPodAutoscalerBehavior {
	i32 := func(v int32) *int32 { return &v }
	maxPolicy := autoscalingv2.MaxChangePolicySelect
	return &autoscalingv2.HorizontalPodAutoscalerBehavior{
		ScaleUp: &autoscalingv2.HPAScalingRules{
			StabilizationWindowSeconds: i32(0),
			SelectPolicy:               &maxPolicy,
			Policies: []autoscalingv2.HPAScalingPolicy{
				{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
				{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 15},
			},
		},
		ScaleDown: &autoscalingv2.HPAScalingRules{
			StabilizationWindowSeconds: i32(300),
			Policies: []autoscalingv2.HPAScalingPolicy{
				{Type: autoscalingv2.PercentScalingPolicy, Value: 10, PeriodSeconds: 60},
			},
		},
	}
}

// HPA builds the autoscaling/v2 HorizontalPodAutoscaler of one service of
// r: a Pods metric (the service's request rate per pod) with an
// AverageValue target of TargetQPSPerPod, minReplicas the plan's replicas
// (for the sale: the annotations say when to restore them), maxReplicas
// s.MaxReplicas.
func HPA(r *PlanResult, s *ServicePlan) *autoscalingv2.HorizontalPodAutoscaler {
	minReplicas := int32(s.Replicas)
	target := k8sQuantity(TargetQPSPerPod(s))
	return &autoscalingv2.HorizontalPodAutoscaler{
		TypeMeta: metav1.TypeMeta{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        s.Name,
			Namespace:   s.Namespace,
			Labels:      map[string]string{labelManagedBy: managedByLoadcap},
			Annotations: k8sAnnotations(r, s, true),
		},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{
				APIVersion: k8sAppsV1, Kind: k8sDeploymentKind, Name: s.Deployment,
			},
			MinReplicas: &minReplicas,
			MaxReplicas: int32(s.MaxReplicas),
			Metrics: []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.PodsMetricSourceType,
				Pods: &autoscalingv2.PodsMetricSource{
					Metric: autoscalingv2.MetricIdentifier{Name: s.Metric},
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: &target},
				},
			}},
			Behavior: k8sBehavior(),
		},
	}
}

// k8sNum writes a number in full, for manifests.
func k8sNum(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// k8sQuantity writes a rate as a Kubernetes quantity: whole numbers as
// such ("1590"), fractions in thousandths ("6500m").
func k8sQuantity(v float64) resource.Quantity {
	if v == math.Trunc(v) && v < 1e15 {
		return *resource.NewQuantity(int64(v), resource.DecimalSI)
	}
	return *resource.NewMilliQuantity(int64(math.Floor(v*1000)), resource.DecimalSI)
}

// k8sAnnotations records where the manifest came from and, for a sale
// window, that the minimum is temporary. hpa selects the HPA's wording, else
// the ScaledObject's.
func k8sAnnotations(r *PlanResult, s *ServicePlan, hpa bool) map[string]string {
	a := map[string]string{
		annoPlan:    filepath.Base(r.Plan),
		annoSafeQPS: k8sNum(s.SafeQPSPerReplica),
	}
	kind, other, minField := "HPA", "KEDA ScaledObject", "minReplicas"
	if !hpa {
		kind, other, minField = "ScaledObject", "HPA", "minReplicaCount"
	}
	both := fmt.Sprintf(" Apply this %s or the %s for %s, never both.", kind, other, s.Name)
	w := r.Window
	switch {
	case w == nil:
		a[annoNote] = fmt.Sprintf("%s %d is the plan for a peak of %s entry req/s.", minField, s.Replicas, k8sNum(r.EntryQPS)) + both
	case hpa:
		a[annoWindow] = k8sWindowText(w)
		a[annoRestore] = strconv.Itoa(s.Current)
		a[annoNote] = fmt.Sprintf("%s %d is the sale plan: apply before %s and set it back to %d after %s.",
			minField, s.Replicas, w.Start.Format(time.RFC3339), s.Current, w.End.Format(time.RFC3339)) + both
	default:
		a[annoWindow] = k8sWindowText(w)
		a[annoNote] = fmt.Sprintf("The cron trigger holds %d replicas through the sale window; %s %d applies outside it. Remove this ScaledObject after the sale: the cron repeats every year.",
			s.Replicas, minField, kedaMinReplicas(r, s)) + both
	}
	return a
}

func k8sWindowText(w *PlanWindow) string {
	return fmt.Sprintf("%s/%s %s", w.Start.Format(time.RFC3339), w.End.Format(time.RFC3339), w.Timezone)
}

// WriteHPA writes one HorizontalPodAutoscaler manifest per service of r into
// dir (created if needed), as dir/NAME.yaml, and returns the paths in the
// plan's order. The output is deterministic.
func WriteHPA(dir string, r *PlanResult) ([]string, error) {
	return k8sWriteAll(dir, r, func(s *ServicePlan) (any, string) {
		return HPA(r, s), k8sHPAHeader(r, s)
	})
}

func k8sHPAHeader(r *PlanResult, s *ServicePlan) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# HorizontalPodAutoscaler for %s, written by loadcap capacity plan from %s.\n", s.Name, filepath.Base(r.Plan))
	fmt.Fprintf(&b, "# Target %s req/s per pod = the safe %s req/s (capacity %s × (1 − headroom %s%%)) ÷ %s:\n",
		k8sNum(TargetQPSPerPod(s)), k8sNum(s.SafeQPSPerReplica), k8sNum(s.CapacityQPS), k8sNum(planRound(r.Headroom*100)), k8sNum(1+HPATolerance))
	fmt.Fprintf(&b, "# the HPA ignores usage within %s%% of its target, so a target at the safe rate would let\n", planNum(HPATolerance*100))
	b.WriteString("# pods run that much past it before it adds any.\n")
	if w := r.Window; w != nil {
		fmt.Fprintf(&b, "# minReplicas %d is the sale plan: apply before %s and set it back to %d after %s (%s).\n",
			s.Replicas, w.Start.Format(time.RFC3339), s.Current, w.End.Format(time.RFC3339), w.Timezone)
	}
	fmt.Fprintf(&b, "# Apply this HPA or the KEDA ScaledObject for %s, never both: two autoscalers on one Deployment fight.\n", s.Name)
	return b.String()
}

// k8sWriteAll writes one manifest per service.
func k8sWriteAll(dir string, r *PlanResult, build func(*ServicePlan) (any, string)) ([]string, error) {
	if r == nil || len(r.Services) == 0 {
		return nil, fmt.Errorf("write manifests: the plan has no services")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("write manifests: %w", err)
	}
	var paths []string
	for i := range r.Services {
		s := &r.Services[i]
		obj, header := build(s)
		body, err := k8sYAML(obj)
		if err != nil {
			return paths, fmt.Errorf("encode manifest of %s: %w", s.Name, err)
		}
		path := filepath.Join(dir, s.Name+".yaml")
		if err := cli.WriteAtomic(path, func(w io.Writer) error {
			_, err := w.Write(append([]byte(header), body...))
			return err
		}); err != nil {
			return paths, fmt.Errorf("write manifest of %s: %w", s.Name, err)
		}
		paths = append(paths, path)
	}
	return paths, nil
}

// k8sYAML encodes a Kubernetes object as YAML with sorted keys, without the
// empty status and creationTimestamp that the Go types always carry.
func k8sYAML(obj any) ([]byte, error) {
	j, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	delete(m, "status")
	if meta, ok := m["metadata"].(map[string]any); ok {
		delete(meta, "creationTimestamp")
	}
	return yaml.Marshal(m)
}
