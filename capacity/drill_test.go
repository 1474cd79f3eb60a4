package capacity

import (
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/loadcap/loadcap/scenarios"
)

// svcStats is one service's figures over a window of secs seconds, as
// serviceDelta would compute them: rate req/s, mean latency ms, and (when
// workers > 0) utilization u of that many workers.
func svcStats(name string, secs, rate, latencyMs, workers, u float64) ServiceStats {
	s := ServiceStats{Name: name, RequestRate: rate, GoodRate: rate, Requests: rate * secs, MeanLatencyMs: latencyMs}
	if workers > 0 {
		s.Workers, s.Utilization, s.BusySeconds = workers, u, u*secs*workers
	}
	return s
}

// stage is a find step named phase whose services' fan-out is relative to
// the first.
func stage(n int, phase string, svcs ...ServiceStats) Step {
	for i := range svcs {
		svcs[i].FanOut = svcs[i].RequestRate / svcs[0].RequestRate
	}
	return Step{N: n, Phase: phase, Passed: true, Services: svcs}
}

func TestMeasureServices(t *testing.T) {
	type want struct {
		capacity float64 // all replicas, ±0.5%
		method   string
		stage    string
	}
	// A shop: gateway 4 workers x 4 ms = 1000/s, product 2 x 10 ms = 200/s
	// (the bottleneck), order 1 x 10 ms = 100/s at a few requests a second,
	// cart 8 x 2 ms = 4000/s nearly idle (a quarter of a percent busy).
	calm := func(n int, phase string, entry float64) Step {
		return stage(n, phase,
			svcStats("gateway", 6, entry, 12, 4, entry/1000),
			svcStats("product", 6, 0.7*entry, 10.5, 2, 0.7*entry/200),
			svcStats("order", 6, 0.09*entry, 30, 1, 0.09*entry/100),
			svcStats("cart", 6, 0.16*entry, 2.2, 8, 0.16*entry/4000))
	}
	for _, tc := range []struct {
		name     string
		steps    []Step
		replicas map[string]int
		first    string // FirstSaturated
		want     map[string]want
	}{
		{
			name: "utilization law pooled over the stages before the bottleneck's",
			steps: []Step{calm(1, "warm-up", 62), calm(2, "double", 124), stage(3, "peak",
				// The gateway and order wait on the product service; their
				// busy time in this stage is off (requests held across the
				// cut): it must not be used.
				svcStats("gateway", 4, 290, 130, 4, 0.5),
				svcStats("product", 4, 200, 180, 2, 1),
				svcStats("order", 4, 26, 190, 1, 0.9),
				svcStats("cart", 4, 46, 2.5, 8, 0.02))},
			first: "product",
			want: map[string]want{
				"gateway": {1000, "utilization", "warm-up, double"},
				"product": {200, "saturated", "peak"},
				// 0.09 x (62+124) x 6 s = 100.4 requests: just enough.
				"order": {100, "utilization", "warm-up, double"},
				"cart":  {4000, "utilization", "warm-up, double"},
			},
		},
		{
			name:  "too few requests for the law: a lower bound",
			steps: []Step{calm(1, "warm-up", 30), calm(2, "double", 60)},
			want: map[string]want{
				"gateway": {1000, "utilization", "warm-up, double"},
				"product": {200, "utilization", "warm-up, double"},
				// 0.09 x 90 x 6 = 48.6 requests; its best rate, 5.4/s.
				"order": {5.4, "lower bound", "double"},
				"cart":  {9.6, "lower bound", "double"},
			},
		},
		{
			name: "the latency of a service that waits grows most; the busy one is the bottleneck",
			steps: []Step{calm(1, "warm-up", 62), calm(2, "double", 124), stage(3, "peak",
				svcStats("gateway", 4, 290, 130, 4, 0.29),
				svcStats("product", 4, 196, 25, 2, 0.98),
				svcStats("order", 4, 26, 300, 1, 0.26),
				svcStats("cart", 4, 46, 2.5, 8, 0.0115))},
			first: "product",
			want: map[string]want{
				"gateway": {1000, "utilization", "warm-up, double"},
				// Its rate over its utilization: 196 / 0.98.
				"product": {200, "saturated", "peak"},
				"order":   {100, "utilization", "warm-up, double"},
				"cart":    {4000, "utilization", "warm-up, double"},
			},
		},
		{
			name: "no busy time exported: saturated at its rate, the others lower bounds",
			steps: []Step{
				stage(1, "one", svcStats("gateway", 6, 100, 12, 0, 0), svcStats("product", 6, 70, 10, 0, 0),
					svcStats("order", 6, 9, 30, 0, 0), svcStats("cart", 6, 16, 2, 0, 0)),
				stage(2, "two", svcStats("gateway", 6, 280, 200, 0, 0), svcStats("product", 6, 190, 150, 0, 0),
					svcStats("order", 6, 25, 60, 0, 0), svcStats("cart", 6, 45, 2, 0, 0)),
			},
			first: "gateway",
			want: map[string]want{
				"gateway": {280, "saturated", "two"},
				"product": {190, "lower bound", "two"},
				"order":   {25, "lower bound", "two"},
				"cart":    {45, "lower bound", "two"},
			},
		},
		{
			name:     "per replica: the capacity over the current replicas",
			steps:    []Step{calm(1, "warm-up", 62), calm(2, "double", 124)},
			replicas: map[string]int{"gateway": 2, "product": 2, "order": 2, "cart": 3},
			want: map[string]want{
				"gateway": {1000, "utilization", "warm-up, double"},
				"product": {200, "utilization", "warm-up, double"},
				"order":   {100, "utilization", "warm-up, double"},
				"cart":    {4000, "utilization", "warm-up, double"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &scenarios.Drill{}
			for _, name := range []string{"gateway", "product", "order", "cart"} {
				d.Services = append(d.Services, scenarios.DrillService{Name: name, Current: tc.replicas[name]})
			}
			res := &FindResult{Steps: tc.steps}
			got := MeasureServices(d, res)
			if res.FirstSaturated != tc.first {
				t.Errorf("first saturated %q, want %q", res.FirstSaturated, tc.first)
			}
			for _, m := range got {
				w := tc.want[m.Name]
				if math.Abs(m.CapacityQPS-w.capacity) > 0.005*w.capacity || m.Method != w.method || m.Stage != w.stage {
					t.Errorf("%s: %.2f req/s by %s in %q; want %.2f by %s in %q", m.Name, m.CapacityQPS, m.Method, m.Stage, w.capacity, w.method, w.stage)
				}
				if (m.Method == "lower bound") != (m.Requests == 0) || m.Method == "utilization" && m.Requests < MinLawRequests {
					t.Errorf("%s by %s rests on %.1f requests", m.Name, m.Method, m.Requests)
				}
				if m.Saturated != (m.Name == tc.first) {
					t.Errorf("%s: saturated %v", m.Name, m.Saturated)
				}
				if r := max(tc.replicas[m.Name], 1); math.Abs(m.PerReplicaQPS*float64(r)-m.CapacityQPS) > 1e-9 {
					t.Errorf("%s: per replica %.2f x %d replicas != %.2f", m.Name, m.PerReplicaQPS, r, m.CapacityQPS)
				}
			}
			if tc.name == "utilization law pooled over the stages before the bottleneck's" {
				// The pooled fan-out: order's requests over the gateway's.
				if f := got[2].Fanout; math.Abs(f-0.09) > 1e-9 {
					t.Errorf("order fan-out %.4f, want 0.09", f)
				}
			}
		})
	}
}

// serviceDelta reads the utilization law's inputs from a service's
// Prometheus text: the growth of its request and busy-time counters and
// its workers.
func TestServiceDeltaBusyTime(t *testing.T) {
	var scrapes atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n := scrapes.Add(1) - 1 // 0, then 1
		fmt.Fprintf(w, `# TYPE shop_requests_total counter
shop_requests_total{route="a"} %d
shop_requests_total{route="b"} %d
# TYPE shop_worker_busy_seconds_total counter
shop_worker_busy_seconds_total %g
# TYPE shop_capacity_workers gauge
shop_capacity_workers 4
`, 100+300*n, 50+100*n, 1+1.6*float64(n))
	}))
	defer srv.Close()
	srcs := []MetricsSource{{Name: "svc", URL: srv.URL}}
	var before, after []scrape
	for _, into := range []*[]scrape{&before, &after} {
		*into = make([]scrape, 1)
		(&scraper{srcs: srcs}).scrapeAll(*into)
	}
	st := serviceDelta(srcs, before, after, 2)[0]
	if st.Error != "" || st.Requests != 400 || st.RequestRate != 200 || st.Workers != 4 ||
		math.Abs(st.BusySeconds-1.6) > 1e-9 || math.Abs(st.Utilization-0.2) > 1e-9 {
		t.Fatalf("%+v; want 400 requests (200/s), 1.6 busy seconds of 4 workers (utilization 0.2)", st)
	}
	// 400 requests in 1.6/4 worker-seconds: 1000 req/s.
	if c := lawCapacity(st.Requests, st.BusySeconds/st.Workers); math.Abs(c-1000) > 1e-6 {
		t.Errorf("law capacity %.3f, want 1000", c)
	}
}
