package drill_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loadcap/loadcap/capacity/drill"
	"github.com/loadcap/loadcap/reports"
	"github.com/loadcap/loadcap/scenarios"
)

// crashingProm is a Prometheus HTTP API on loopback whose answer to the
// rule's query has a sample for the first `alive` queries, then none: the
// service it watches crashed and its metrics vanished. Other queries
// (the pre-flight's) get a sample.
func crashingProm(t *testing.T, alive int64) *httptest.Server {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		result := fmt.Sprintf(`{"metric":{},"value":[%d,"0.01"]}`, time.Now().Unix())
		if r.FormValue("query") == "checkout_error_ratio" && n.Add(1) > alive {
			result = ""
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":[%s]}}`, result)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// noDataPlan writes a drill plan of one stage (20 req/s for hold) against
// a loopback target, guarded by a PromQL rule on prom.
func noDataPlan(t *testing.T, prom string, hold time.Duration, onNoData string) *scenarios.Drill {
	t.Helper()
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(target.Close)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "s.yaml"), []byte("target: "+target.URL+`
scenarios:
  s: {executor: constant-arrival-rate, rate: 1, timeUnit: 1s, duration: 1s, preAllocatedVUs: 1}
requests:
  - {name: home, path: /}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	extra := ""
	if onNoData != "" {
		extra = ", on_no_data: " + onNoData
	}
	path := filepath.Join(dir, "drill.yaml")
	plan := fmt.Sprintf(`drill_id: nodata-1
target: %s
traffic: {scenario: s.yaml}
stages: [{name: steady, rate: 20, hold: %v}]
guard:
  every: 100ms
  prometheus: %s
  signal_loss: {grace: 500ms}
  rules:
    - {name: checkout-errors, promql: checkout_error_ratio, max: 0.05%s}
`, target.URL, hold, prom, extra)
	if err := os.WriteFile(path, []byte(plan), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := scenarios.LoadDrill(path)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func writeFile(path string, write func(io.Writer) error) error {
	var b bytes.Buffer
	if err := write(&b); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o600)
}

// TestDrillStopsWhenARuleHasNoData: the service a PromQL rule watches
// crashes mid-drill and its series vanish; the guard stops the drill once
// the grace has passed without a sample, and the stop and the evaluations
// without data are in the Result, run.json, stages.json, the summary and
// the report's guard section.
func TestDrillStopsWhenARuleHasNoData(t *testing.T) {
	d := noDataPlan(t, crashingProm(t, 3).URL, 20*time.Second, "")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	began := time.Now()
	res, err := drill.Run(ctx, drill.Config{Plan: d})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > 15*time.Second {
		t.Errorf("the drill ran %v of its 20 s: the guard did not stop it", took.Round(time.Second))
	}
	const reason = `no data from rule "checkout-errors" for `
	st := res.Stopped
	if res.Verdict() != drill.Stopped || st == nil || st.Kind != "signal" || st.Rule != "checkout-errors" ||
		!strings.Contains(st.Reason, reason) || !strings.Contains(st.Reason, "query returned no series") || st.Unit != "s" || st.Value <= 0.5 {
		t.Fatalf("verdict %v, stop %+v; want stopped by the rule without data", res.Verdict(), st)
	}
	if len(res.Guard) != 1 || res.Guard[0].NoData < 3 || res.Guard[0].Evaluations <= res.Guard[0].NoData {
		t.Errorf("guard rules %+v; want the evaluations without data counted beside the 3 with", res.Guard)
	}

	// run.json
	dir := t.TempDir()
	out := reports.Outputs{JSON: filepath.Join(dir, "run.json"), Notices: io.Discard, Write: writeFile}
	if err := out.WriteRun(reports.NewRun(res.Run, reports.Meta{}), nil, 0); err != nil {
		t.Fatal(err)
	}
	var run struct {
		Status      string `json:"status"`
		AbortReason string `json:"abort_reason"`
	}
	b, _ := os.ReadFile(filepath.Join(dir, "run.json"))
	if err := json.Unmarshal(b, &run); err != nil || run.Status != "aborted" || !strings.Contains(run.AbortReason, reason) {
		t.Errorf("run.json: %+v (%v); want aborted with %q", run, err, reason)
	}

	// stages.json
	if _, err := res.WriteFiles(dir, dir, writeFile); err != nil {
		t.Fatal(err)
	}
	var stages struct {
		Steps []json.RawMessage `json:"steps"`
		Guard []struct {
			Name        string `json:"name"`
			Evaluations int    `json:"evaluations"`
			NoData      int    `json:"no_data"`
			LastNoData  string `json:"last_no_data"`
		} `json:"guard"`
		Stop *struct {
			Kind   string `json:"kind"`
			Rule   string `json:"rule"`
			Reason string `json:"reason"`
		} `json:"stop"`
	}
	b, _ = os.ReadFile(filepath.Join(dir, drill.StagesFile))
	if err := json.Unmarshal(b, &stages); err != nil {
		t.Fatalf("stages.json: %v\n%s", err, b)
	}
	if s := stages.Stop; s == nil || s.Kind != "signal" || s.Rule != "checkout-errors" || !strings.Contains(s.Reason, reason) {
		t.Errorf("stages.json stop %+v\n%s", s, b)
	}
	if g := stages.Guard; len(g) != 1 || g[0].NoData != res.Guard[0].NoData || g[0].LastNoData != "query returned no series" {
		t.Errorf("stages.json guard %+v\n%s", g, b)
	}

	// The summary and the report's guard section.
	var sum bytes.Buffer
	res.WriteOutcome(&sum)
	if want := fmt.Sprintf("guard rule checkout-errors: %d of %d evaluations without data (last: query returned no series)",
		res.Guard[0].NoData, res.Guard[0].Evaluations); !strings.Contains(sum.String(), want) || !strings.Contains(sum.String(), "STOPPED") {
		t.Errorf("summary lacks %q or the stop:\n%s", want, sum.String())
	}
	rep := res.Report(nil)
	if r := rep.Guard.Rules[0]; r.NoData != res.Guard[0].NoData || r.Evaluations != res.Guard[0].Evaluations || rep.Stop == nil {
		t.Errorf("report guard rule %+v, stop %+v", r, rep.Stop)
	}
}

// TestDrillRuleIgnoringNoData: a rule that opts out (on_no_data: ignore)
// lets the drill run to its end without data, and still counts every
// evaluation that had none.
func TestDrillRuleIgnoringNoData(t *testing.T) {
	d := noDataPlan(t, crashingProm(t, 0).URL, 2*time.Second, "ignore")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := drill.Run(ctx, drill.Config{Plan: d})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stopped != nil || res.Verdict() != drill.Held {
		t.Fatalf("verdict %v, stop %+v; want the drill run to its end", res.Verdict(), res.Stopped)
	}
	if g := res.Guard; len(g) != 1 || g[0].NoData == 0 || g[0].NoData != g[0].Evaluations {
		t.Errorf("guard rules %+v; want every evaluation counted without data", g)
	}
	if r := res.Report(nil).Guard.Rules[0]; r.OnNoData != "ignore" || r.NoData == 0 {
		t.Errorf("report guard rule %+v", r)
	}
}
