package live

import (
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/loadcap/loadcap/loadgen"
)

// intervals records what a small run would: checkout 3 requests of 2, 20
// and 300 ms (one of them a 503), home 1 of 1.5 s, over two intervals.
func intervals(t *testing.T) []loadgen.Interval {
	t.Helper()
	series := []loadgen.Series{{Scenario: "s", Name: "checkout"}, {Scenario: "s", Name: "home"}}
	r := loadgen.NewRecorder(series, 0)
	t0 := time.Now()
	r.Start(t0)
	r.Scheduled(5)
	for _, o := range []loadgen.Outcome{
		{Name: 0, Latency: 2 * time.Millisecond, Status: 200},
		{Name: 0, Latency: 20 * time.Millisecond, Status: 200},
	} {
		r.Sent(o.Name, 0, t0)
		r.Record(0, &o)
	}
	r.Dropped()
	var out []loadgen.Interval
	out = append(out, r.Rotate(t0.Add(time.Second)))
	r.Sent(0, 0, t0)
	r.Record(0, &loadgen.Outcome{Name: 0, Latency: 300 * time.Millisecond, Status: 503, Class: classOf(t, "5xx")})
	r.Sent(1, 0, t0)
	r.Record(0, &loadgen.Outcome{Name: 1, Latency: 1500 * time.Millisecond, Status: 200})
	r.Sent(1, 0, t0) // still in flight
	out = append(out, r.Rotate(t0.Add(2*time.Second)))
	return out
}

func classOf(t *testing.T, name string) uint8 {
	for c := range loadgen.NumClasses {
		if loadgen.ClassName(uint8(c)) == name {
			return uint8(c)
		}
	}
	t.Fatalf("no class %s", name)
	return 0
}

func scrape(t *testing.T, h http.Handler, accept string) *http.Response {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/metrics", nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestMetricsFromIntervals(t *testing.T) {
	m := New()
	for _, iv := range intervals(t) {
		m.Observe(iv)
	}
	m.Stage(2, "peak", 800)
	m.Rules([]Rule{{Name: "p99", State: "bad"}})
	b, _ := io.ReadAll(scrape(t, Handler(m.Registry()), "").Body)
	body := string(b)
	for _, want := range []string{
		`loadcap_requests_total{name="checkout"} 3`,
		`loadcap_requests_total{name="home"} 1`,
		`loadcap_request_failures_total{class="5xx"} 1`,
		`loadcap_requests_sent_total 5`,
		`loadcap_requests_in_flight 1`,
		`loadcap_arrivals_scheduled_total 5`,
		`loadcap_arrivals_dropped_total 1`,
		`loadcap_request_duration_seconds_bucket{name="checkout",le="0.0025"} 1`,
		`loadcap_request_duration_seconds_bucket{name="checkout",le="0.025"} 2`,
		`loadcap_request_duration_seconds_bucket{name="checkout",le="0.5"} 3`,
		`loadcap_request_duration_seconds_bucket{name="home",le="1"} 0`,
		`loadcap_request_duration_seconds_count{name="home"} 1`,
		`loadcap_run_elapsed_seconds 2`,
		`loadcap_drill_stage{stage="peak"} 2`,
		`loadcap_drill_stage_planned_requests_per_second 800`,
		`loadcap_guard_rule_state{rule="p99",state="bad"} 1`,
		`loadcap_guard_rule_state{rule="p99",state="ok"} 0`,
		`loadcap_generator_stall_seconds 0`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("scrape lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "loadcap_generator_steal_ratio") {
		t.Errorf("steal is unknown without a stall watch, yet exported:\n%s", body)
	}
	// The sum is the latencies' to HDR's 3 digits.
	if !strings.Contains(body, `loadcap_request_duration_seconds_sum{name="checkout"} 0.32`) {
		t.Errorf("checkout's latency sum is not 0.322 s:\n%s", body)
	}
}

// A scraper that negotiates protobuf gets native buckets beside the
// classic ones, holding every request at its latency.
func TestNativeHistogram(t *testing.T) {
	m := New()
	for _, iv := range intervals(t) {
		m.Observe(iv)
	}
	resp := scrape(t, Handler(m.Registry()), `application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited`)
	dec := expfmt.NewDecoder(resp.Body, expfmt.NewFormat(expfmt.TypeProtoDelim))
	var h *dto.Histogram
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); err != nil {
			break
		}
		if mf.GetName() != "loadcap_request_duration_seconds" {
			continue
		}
		for _, mm := range mf.GetMetric() {
			if mm.GetLabel()[0].GetValue() == "checkout" {
				h = mm.GetHistogram()
			}
		}
	}
	if h == nil {
		t.Fatal("no checkout latency histogram in the protobuf scrape")
	}
	if h.GetSchema() != NativeSchema || len(h.GetBucket()) != len(LatencyBuckets) {
		t.Fatalf("schema %d, %d classic buckets: want native schema %d beside the classic buckets", h.GetSchema(), len(h.GetBucket()), NativeSchema)
	}
	// Expand the spans and deltas into (upper bound, count).
	var got []float64
	var idx int32
	var count int64
	d := 0
	for _, s := range h.GetPositiveSpan() {
		idx += s.GetOffset()
		for range s.GetLength() {
			count += h.GetPositiveDelta()[d]
			d++
			for range count {
				got = append(got, math.Pow(2, float64(idx)/8))
			}
			idx++
		}
	}
	want := []float64{0.002, 0.020, 0.300}
	if len(got) != len(want) {
		t.Fatalf("native buckets hold %d requests, want %d", len(got), len(want))
	}
	for i, ub := range got {
		if ub < want[i] || ub/want[i] > math.Pow(2, 1.0/8) {
			t.Errorf("request %d (%v s) in the native bucket up to %v s", i, want[i], ub)
		}
	}
}

func TestNativeIndex(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    float64
		want int32
	}{
		{"one second", 1, 0},
		{"just above one", 1.0001, 1},
		{"two", 2, 8},
		{"half", 0.5, -8},
		{"a millisecond", 0.001, -79}, // 2^(-80/8) ≈ 0.000977 < 0.001 ≤ 2^(-79/8)
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := nativeIndex(tc.v); got != tc.want {
				t.Errorf("nativeIndex(%v) = %d, want %d", tc.v, got, tc.want)
			}
		})
	}
}

func TestNilMetricsIgnoreEverything(t *testing.T) {
	var m *Metrics
	m.Observe(loadgen.Interval{})
	m.Stage(1, "a", 1)
	m.Rules(nil)
	m.Agents(1, 1)
	m.Running(true)
	if m.Hook(nil) != nil {
		t.Error("a nil Metrics' hook of nil is not nil")
	}
}
