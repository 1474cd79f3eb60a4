package reports

import (
	"bytes"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/loadcap/loadcap/loadgen"
)

func hist(values ...int64) *hdr.Histogram {
	h := hdr.New(1, 60_000_000, 3)
	for _, v := range values {
		_ = h.RecordValue(v)
	}
	return h
}

func sample() *loadgen.Result {
	start := time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)
	checkout := hist(1000, 2000, 3000, 250000)
	home := hist(500, 600)
	all := hist()
	all.Merge(checkout)
	all.Merge(home)
	return &loadgen.Result{
		Started: start, Ended: start.Add(2 * time.Second), Duration: 2 * time.Second,
		Status: loadgen.StatusFailed,
		Totals: loadgen.Totals{Scheduled: 8, Sent: 7, Dropped: 1, Completed: 5, Failed: 1, InflightAtStop: 1, BytesSent: 700, BytesRecv: 2048,
			Late: 2, MaxLag: 15 * time.Millisecond},
		Requests: []*loadgen.RequestStats{
			{Name: "checkout", Sent: 5, Completed: 3, Failed: 1, Latency: checkout, Service: checkout,
				StatusCodes: map[int]int64{200: 3, 503: 1}, Errors: map[string]int64{"5xx": 1},
				ErrorSamples: map[string]string{"5xx": "POST /checkout: HTTP 503"}},
			{Name: "home", Sent: 2, Completed: 2, Latency: home, Service: home, StatusCodes: map[int]int64{200: 2}},
		},
		Latency: all, Service: all,
		Thresholds: []loadgen.ThresholdResult{
			{Metric: "http_req_duration", Expr: "p(99)<200", Passed: false, Value: 250},
			{Metric: "http_req_duration{name:home}", Expr: "p(99)<200", Passed: true, Value: 0.6},
			{Metric: "http_reqs", Expr: "count>0", Passed: false, Value: math.NaN()},
		},
		MaxVUs: 3,
	}
}

func TestRunRoundTrip(t *testing.T) {
	run := NewRun(sample(), Meta{Version: "test", File: "s.yaml"})
	path := filepath.Join(t.TempDir(), "run.json")
	if err := run.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Totals != run.Totals || got.Totals.RPS != 3 {
		t.Errorf("totals %+v, want %+v with rps 3", got.Totals, run.Totals)
	}
	if got.LatencyMs.Max < 249 || got.LatencyMs.Max > 251 || got.Requests["home"].LatencyMs.P50 != 0.5 {
		t.Errorf("latency %+v / home %+v", got.LatencyMs, got.Requests["home"].LatencyMs)
	}
	if got.Requests["checkout"].StatusCodes["503"] != 1 || got.Requests["checkout"].Errors["5xx"] != 1 {
		t.Errorf("checkout %+v", got.Requests["checkout"])
	}
	// Histograms survive exactly: merging them re-creates the overall one.
	merged := hist()
	for _, n := range got.RequestNames() {
		h, err := got.Histogram(n)
		if err != nil {
			t.Fatal(err)
		}
		merged.Merge(h)
	}
	if !merged.Equals(sample().Latency) {
		t.Error("decoded per-request histograms do not merge back into the overall histogram")
	}
	if got.Thresholds[2].Value != nil {
		t.Errorf("a threshold without data should have a null value, got %v", *got.Thresholds[2].Value)
	}
}

func TestCheckTotals(t *testing.T) {
	run := NewRun(sample(), Meta{})
	if err := run.CheckTotals(); err != nil {
		t.Errorf("consistent totals: %v", err)
	}
	run.Totals.InflightAtStop = 0
	if err := run.CheckTotals(); err == nil || !strings.Contains(err.Error(), "inflight_at_stop") {
		t.Errorf("a lost request must be caught, got %v", err)
	}
	run.Totals.Dropped = 0
	if err := run.CheckTotals(); err == nil || !strings.Contains(err.Error(), "dropped") {
		t.Errorf("a lost arrival must be caught, got %v", err)
	}
}

func TestReadFileRejectsOtherSchemas(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.json")
	run := NewRun(sample(), Meta{})
	run.Schema = "something/v9"
	if err := run.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(path); err == nil || !strings.Contains(err.Error(), "schema") {
		t.Errorf("err = %v, want a schema error", err)
	}
}

func TestSummary(t *testing.T) {
	var b bytes.Buffer
	if err := WriteSummary(&b, NewRun(sample(), Meta{})); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"checkout", "home", "all",
		"1 (25.00%)", // checkout: 1 failed of 4
		"scheduled 8 = sent 7 + dropped 1",
		"sent 7 = completed 5 + failed 1 + in flight at stop 1",
		"5xx", "POST /checkout: HTTP 503",
		"FAIL http_req_duration p(99)<200 (value 250)",
		"ok   http_req_duration{name:home} p(99)<200",
		"FAIL http_reqs count>0 (value no data)",
		"2 arrivals were sent over 10ms late (worst 15.0ms)",
		"status: failed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}

// A distributed run that lost an agent carries the lost arrivals in its
// totals, in run.json and in the summary, and the invariant holds with them.
func TestPartialRunCarriesLostArrivals(t *testing.T) {
	res := sample()
	res.Thresholds = nil // the verdict is the loss alone
	res.Totals.Lost = 40
	res.Totals.Scheduled += 40
	res.Lost = []loadgen.Lost{{Agent: "10.0.0.2:7070", At: 1500 * time.Millisecond, Share: 0.5, Reason: "stream broken", Unsent: 40}}
	run := NewRun(res, Meta{})
	if err := run.CheckTotals(); err != nil {
		t.Errorf("partial run with its lost arrivals: %v", err)
	}
	path := filepath.Join(t.TempDir(), "run.json")
	if err := run.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	back, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.Totals.Lost != 40 || !back.Partial || back.Lost[0].Unsent != 40 {
		t.Errorf("run.json lost its lost arrivals: totals %+v, lost %+v", back.Totals, back.Lost)
	}
	var b strings.Builder
	if err := WriteSummary(&b, back); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"+ lost 40", "agent 10.0.0.2:7070 lost at 1.5s (50.0% of the load, 40 planned arrivals not reported sent", "PARTIAL: 40 of"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
	if got := (HTMLInput{Run: back}).Verdict(); got != 111 {
		t.Errorf("verdict of a partial run %d, want 111", got)
	}
	var html strings.Builder
	if err := WriteHTML(&html, HTMLInput{Run: back}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(html.String(), "partial result: agent 10.0.0.2:7070 was lost at 1.5s") || !strings.Contains(html.String(), "lost with agents 40") {
		t.Error("the HTML report must name the lost agent and count its lost arrivals")
	}
	back.Totals.Lost = 0
	if err := back.CheckTotals(); err == nil {
		t.Error("scheduled counting lost arrivals that totals.lost does not must be caught")
	}
}
