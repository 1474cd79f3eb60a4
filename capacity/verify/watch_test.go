package verify

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/loadcap/loadcap/internal/demo/shop"
)

// scriptedLoad answers a fixed rate per service.
type scriptedLoad map[string]float64

func (s scriptedLoad) Rate(_ context.Context, service string) (float64, error) {
	r, ok := s[service]
	if !ok {
		return 0, context.DeadlineExceeded
	}
	return r, nil
}

// The live loop scales the shop as the HPA would: 600 req/s at product
// (capacity 200 per replica, target 127 per pod) asks for 5 replicas,
// which the scale-up policy (double or +4 per 15 s) allows at once; the
// gateway at 600 of its 1000 per replica stays. The decision is logged
// with its reason and counted in the metrics; a dry run logs the same
// decision and scales nothing; a service whose load cannot be read is
// skipped and logged.
func TestWatchScalesTheShop(t *testing.T) {
	_, sc, _ := shopUnderTest(t)
	plan := productPlan(200, 4, 2)
	plan.Services[0].MaxReplicas, plan.Services[1].MaxReplicas = 10, 10
	for i := range plan.Services {
		plan.Services[i].SafeQPSPerReplica = plan.Services[i].CapacityQPS * 0.7
	}
	var log bytes.Buffer
	reg := prometheus.NewRegistry()
	ds, err := Watch(context.Background(), WatchConfig{
		Plan: plan, Load: scriptedLoad{shop.Product: 600, shop.Gateway: 600}, Scaler: sc,
		Sync: time.Second, Duration: 1500 * time.Millisecond, Log: &log, Registry: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", log.String())
	if len(ds) != 1 || ds[0].Service != shop.Product || ds[0].From != 1 || ds[0].To != 5 {
		t.Fatalf("decisions %+v, want product 1 → 5", ds)
	}
	if !strings.Contains(log.String(), "product: scale 1 → 5 at 600.0 req/s on 1 ready") {
		t.Errorf("log:\n%s", log.String())
	}
	if err := WaitReady(context.Background(), sc, map[string]int{shop.Product: 5, shop.Gateway: 1}, 5*time.Second, nil); err != nil {
		t.Errorf("the shop was not scaled: %v", err)
	}
	if got := testutil.CollectAndCount(reg, "loadcap_watch_decisions_total"); got != 1 {
		t.Errorf("%d decision series, want 1", got)
	}

	// A dry run from here: product is at 5 now, but the plan says 1 is
	// current, so the controller again wants 5: logged, not executed.
	sc.Scale(context.Background(), shop.Product, 2)
	WaitReady(context.Background(), sc, map[string]int{shop.Product: 2}, 5*time.Second, nil)
	log.Reset()
	ds, _ = Watch(context.Background(), WatchConfig{
		Plan: plan, Load: scriptedLoad{shop.Product: 600}, Scaler: sc, DryRun: true,
		Sync: time.Second, Duration: 500 * time.Millisecond, Log: &log,
	})
	if len(ds) != 1 || !ds[0].DryRun || !strings.Contains(log.String(), "product: would scale") {
		t.Errorf("dry run: %+v\n%s", ds, log.String())
	}
	if !strings.Contains(log.String(), "gateway: no decision: load:") {
		t.Errorf("the unreadable gateway was not logged:\n%s", log.String())
	}
	if n, _ := sc.Ready(context.Background(), shop.Product); n != 2 {
		t.Errorf("a dry run scaled product to %d", n)
	}
}
