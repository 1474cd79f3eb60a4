package verify

import (
	"context"
	"testing"

	"github.com/loadcap/loadcap/capacity"
)

// fixedScaler reports fixed ready replicas and counts the scalings asked.
type fixedScaler struct {
	ready  map[string]int
	scaled int
}

func (f *fixedScaler) Scale(context.Context, string, int) error { f.scaled++; return nil }
func (f *fixedScaler) Ready(_ context.Context, s string) (int, error) {
	return f.ready[s], nil
}

// AsIs checks the replicas running: nothing is scaled, no redundancy
// check runs, and the prediction is made for the ready replicas (here 1
// product replica: 300 req/s predicted at 150% of its capacity).
func TestVerifyAsIs(t *testing.T) {
	sc := &fixedScaler{ready: map[string]int{"gateway": 1, "product": 1}}
	plan := &capacity.PlanResult{Plan: "p.yaml", EntryQPS: 300, Headroom: 0.3, Services: []capacity.ServicePlan{
		{Name: "gateway", CapacityQPS: 1000, Fanout: 1, Current: 1, Replicas: 2},
		{Name: "product", CapacityQPS: 200, Fanout: 1, Current: 1, Replicas: 4},
	}}
	var driven []string
	res, err := Run(context.Background(), Config{Plan: plan, Scaler: sc, AsIs: true, Redundancy: true,
		Drive: func(_ context.Context, check string, entry float64) (*capacity.Step, error) {
			driven = append(driven, check)
			return &capacity.Step{Offered: entry, Achieved: entry, Passed: true, Services: []capacity.ServiceStats{
				{Name: "gateway", GoodRate: entry, RequestRate: entry}, {Name: "product", GoodRate: entry, RequestRate: entry}}}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if sc.scaled != 0 || len(driven) != 1 || !res.AsIs {
		t.Fatalf("scaled %d times, drove %v, as_is %v; want no scaling and the peak alone", sc.scaled, driven, res.AsIs)
	}
	for _, s := range res.Checks[0].Services {
		if s.Replicas != 1 {
			t.Errorf("%s judged on %d replicas, want the 1 ready", s.Name, s.Replicas)
		}
		if s.Name == "product" && (s.PredictedUtil != 1.5 || s.Utilization != 1.5) {
			t.Errorf("product: predicted %v, measured %v of capacity; want 1.5 on 1 replica", s.PredictedUtil, s.Utilization)
		}
	}
	if res.Held || res.PredictedBottleneck != "product" {
		t.Errorf("held %v, predicted bottleneck %q; want not held (product past its capacity), product", res.Held, res.PredictedBottleneck)
	}
}
