package capacity

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The KEDA types below are our own: KEDA's Go module
// (github.com/kedacore/keda/v2/apis/keda/v1alpha1) pulls in
// controller-runtime, client-go and about 60 other modules for a handful of
// structs. Field names and JSON tags follow keda.sh/v1alpha1 ScaledObject;
// the tests check the encoded fields against the CRD's.

// ScaledObject is a KEDA keda.sh/v1alpha1 ScaledObject, the parts loadcap
// writes.
type ScaledObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ScaledObjectSpec `json:"spec"`
}

// ScaledObjectSpec is the spec of a ScaledObject.
type ScaledObjectSpec struct {
	ScaleTargetRef  *ScaleTarget    `json:"scaleTargetRef"`
	PollingInterval *int32          `json:"pollingInterval,omitempty"` // seconds
	CooldownPeriod  *int32          `json:"cooldownPeriod,omitempty"`  // seconds
	MinReplicaCount *int32          `json:"minReplicaCount,omitempty"`
	MaxReplicaCount *int32          `json:"maxReplicaCount,omitempty"`
	Advanced        *AdvancedConfig `json:"advanced,omitempty"`
	Triggers        []ScaleTrigger  `json:"triggers"`
}

// ScaleTarget names the workload a ScaledObject scales.
type ScaleTarget struct {
	Name       string `json:"name"`
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty"`
}

// AdvancedConfig holds the settings of the HPA that KEDA creates.
type AdvancedConfig struct {
	HorizontalPodAutoscalerConfig *HorizontalPodAutoscalerConfig `json:"horizontalPodAutoscalerConfig,omitempty"`
}

// HorizontalPodAutoscalerConfig is the name and behavior of KEDA's HPA.
type HorizontalPodAutoscalerConfig struct {
	Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior,omitempty"`
	Name     string                                         `json:"name,omitempty"`
}

// ScaleTrigger is one scaler of a ScaledObject; Metadata is the scaler's
// configuration, every value a string.
type ScaleTrigger struct {
	Type       string                         `json:"type"`
	Name       string                         `json:"name,omitempty"`
	Metadata   map[string]string              `json:"metadata"`
	MetricType autoscalingv2.MetricTargetType `json:"metricType,omitempty"`
}

// kedaMinReplicas is minReplicaCount: with a sale window the cron trigger
// raises the replicas for the window, so outside it the service keeps its
// current replicas (at least 1: 0 would let KEDA scale it to zero when the
// rate is 0); without a window it is the plan's replicas, as for the HPA.
func kedaMinReplicas(r *PlanResult, s *ServicePlan) int {
	if r.Window == nil {
		return s.Replicas
	}
	return max(s.Current, 1)
}

// ScaledObjectFor builds the KEDA ScaledObject of one service of r: a
// prometheus trigger on the service's request rate with a per-pod
// threshold of TargetQPSPerPod (KEDA scales through an HPA, which has the
// same 10% tolerance), and, when the plan has a window, a cron trigger that
// holds the plan's replicas from PrescaleLead before the window to its end.
func ScaledObjectFor(r *PlanResult, s *ServicePlan, o KEDAOptions) (*ScaledObject, error) {
	o = o.withDefaults()
	i32 := func(v int) *int32 { n := int32(v); return &n }
	query := strings.NewReplacer("{{service}}", s.Name, "{{namespace}}", s.Namespace).Replace(o.Query)
	triggers := []ScaleTrigger{{
		Type:       "prometheus",
		Name:       "request-rate",
		MetricType: autoscalingv2.AverageValueMetricType,
		Metadata: map[string]string{
			"serverAddress": o.PrometheusAddress,
			"query":         query,
			"threshold":     strconv.FormatFloat(TargetQPSPerPod(s), 'f', -1, 64),
		},
	}}
	if w := r.Window; w != nil {
		start, end, err := kedaCron(w, o.PrescaleLead)
		if err != nil {
			return nil, fmt.Errorf("KEDA cron trigger of %s: %w", s.Name, err)
		}
		triggers = append(triggers, ScaleTrigger{
			Type: "cron",
			Name: "sale-window",
			Metadata: map[string]string{
				"timezone":        w.Timezone,
				"start":           start,
				"end":             end,
				"desiredReplicas": strconv.Itoa(s.Replicas),
			},
		})
	}
	return &ScaledObject{
		TypeMeta: metav1.TypeMeta{APIVersion: "keda.sh/v1alpha1", Kind: "ScaledObject"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        s.Name,
			Namespace:   s.Namespace,
			Labels:      map[string]string{labelManagedBy: managedByLoadcap},
			Annotations: k8sAnnotations(r, s, false),
		},
		Spec: ScaledObjectSpec{
			ScaleTargetRef:  &ScaleTarget{APIVersion: k8sAppsV1, Kind: k8sDeploymentKind, Name: s.Deployment},
			MinReplicaCount: i32(kedaMinReplicas(r, s)),
			MaxReplicaCount: i32(s.MaxReplicas),
			Advanced: &AdvancedConfig{HorizontalPodAutoscalerConfig: &HorizontalPodAutoscalerConfig{
				Behavior: k8sBehavior(),
			}},
			Triggers: triggers,
		},
	}, nil
}

// kedaCron turns a window into the start and end of a KEDA cron trigger
// ("minute hour day month weekday", in the window's zone): the start
// rounded down to the minute after moving it lead earlier, the end rounded
// up. Cron has no year, so the trigger fires again on the same date every
// year until the ScaledObject is removed.
func kedaCron(w *PlanWindow, lead time.Duration) (start, end string, err error) {
	loc, lerr := time.LoadLocation(w.Timezone)
	if lerr != nil {
		loc = w.Start.Location()
	}
	s := w.Start.In(loc).Add(-lead).Truncate(time.Minute)
	e := w.End.In(loc)
	if t := e.Truncate(time.Minute); !t.Equal(e) {
		e = t.Add(time.Minute)
	}
	if !e.After(s) || e.Sub(s) >= 365*24*time.Hour {
		return "", "", fmt.Errorf("the window from %s to %s (with a lead of %v) has no yearly cron form", s.Format(time.RFC3339), e.Format(time.RFC3339), lead)
	}
	cron := func(t time.Time) string {
		return fmt.Sprintf("%d %d %d %d *", t.Minute(), t.Hour(), t.Day(), int(t.Month()))
	}
	return cron(s), cron(e), nil
}

// WriteKEDA writes one KEDA ScaledObject manifest per service of r into dir
// (created if needed), as dir/NAME.yaml, and returns the paths in the plan's
// order. The output is deterministic.
func WriteKEDA(dir string, r *PlanResult, o KEDAOptions) ([]string, error) {
	if r == nil || len(r.Services) == 0 {
		return nil, fmt.Errorf("write manifests: the plan has no services")
	}
	objs := make([]*ScaledObject, len(r.Services))
	for i := range r.Services {
		so, err := ScaledObjectFor(r, &r.Services[i], o)
		if err != nil {
			return nil, err
		}
		objs[i] = so
	}
	i := 0
	return k8sWriteAll(dir, r, func(s *ServicePlan) (any, string) {
		so := objs[i]
		i++
		return so, kedaHeader(r, s, so, o.withDefaults().PrescaleLead)
	})
}

func kedaHeader(r *PlanResult, s *ServicePlan, so *ScaledObject, lead time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# KEDA ScaledObject for %s, written by loadcap capacity plan from %s.\n", s.Name, filepath.Base(r.Plan))
	fmt.Fprintf(&b, "# Threshold %s req/s per pod = the safe %s req/s (capacity %s × (1 − headroom %s%%)) ÷ %s:\n",
		k8sNum(TargetQPSPerPod(s)), k8sNum(s.SafeQPSPerReplica), k8sNum(s.CapacityQPS), k8sNum(planRound(r.Headroom*100)), k8sNum(1+HPATolerance))
	fmt.Fprintf(&b, "# KEDA scales through an HPA, which ignores usage within %s%% of its target.\n", planNum(HPATolerance*100))
	b.WriteString("# The Prometheus server address is configuration only; check the query matches your metrics.\n")
	if w := r.Window; w != nil {
		for _, t := range so.Spec.Triggers {
			if t.Type == "cron" {
				fmt.Fprintf(&b, "# The cron trigger holds %s replicas from %q to %q (%s): the sale window\n",
					t.Metadata["desiredReplicas"], t.Metadata["start"], t.Metadata["end"], w.Timezone)
				early := ""
				if lead > 0 {
					early = fmt.Sprintf(", starting %v early so new pods are ready when it opens", lead)
				}
				fmt.Fprintf(&b, "# %s to %s%s.\n", w.Start.Format(time.RFC3339), w.End.Format(time.RFC3339), early)
				b.WriteString("# Cron has no year: remove this ScaledObject after the sale.\n")
			}
		}
	}
	fmt.Fprintf(&b, "# Apply this ScaledObject or the HPA for %s, never both: two autoscalers on one Deployment fight.\n", s.Name)
	return b.String()
}
