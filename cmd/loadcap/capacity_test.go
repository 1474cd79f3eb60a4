package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loadcap/loadcap/loadgen/target"
	"github.com/loadcap/loadcap/test/israce"
	"github.com/loadcap/loadcap/test/quiet"
)

func TestCapacityFit(t *testing.T) {
	t.Parallel()
	// The SPEC SDM91 benchmark from the R usl package's documentation.
	csv := writeFile(t, "spec.csv", "N,X\n1,64.9\n18,995.9\n36,1652.4\n72,1853.2\n108,1828.9\n144,1775.0\n216,1702.2\n")
	r := loadcap(t, nil, false, "capacity", "fit", csv, "--json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var fit struct {
		Sigma, Kappa, Lambda, R2 float64
		PeakN                    *float64 `json:"peak_n"`
		XMax                     *float64 `json:"x_max"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &fit); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	if fit.PeakN == nil || fit.XMax == nil || int(fit.Sigma*1e5) != 2772 || int(*fit.PeakN) != 96 {
		t.Errorf("fit %+v (peak %v)", fit, fit.PeakN)
	}
	text := loadcap(t, nil, false, "capacity", "fit", csv)
	if text.code != 0 || !strings.Contains(text.stdout, "0.0277") {
		t.Errorf("text fit: exit %d\n%s", text.code, text.stdout)
	}
	bad := loadcap(t, nil, false, "capacity", "fit", writeFile(t, "bad.csv", "N,X\n1,10\n2,-5\n"))
	if bad.code != 104 || !strings.Contains(bad.stderr, "bad.csv:3:") {
		t.Errorf("bad CSV: exit %d, stderr %s", bad.code, bad.stderr)
	}
}

func TestCapacityPlan(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "plan.json")
	r := loadcap(t, nil, false, "capacity", "plan", "../../scenarios/examples/presale-plan.yaml",
		"--out", out, "--hpa", filepath.Join(dir, "hpa"), "--keda", filepath.Join(dir, "keda"))
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, s := range []string{"Bottleneck: cart", "Sensitivity", "wrote 3 HorizontalPodAutoscaler", "wrote 3 KEDA"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("stdout lacks %q:\n%s", s, r.stdout)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "hpa", "cart.yaml")); err != nil {
		t.Error(err)
	}
	bad := writeFile(t, "bad-plan.yaml", "peak: {entry_qps: 100}\nservices:\n  api: {capacity: 0, current: 1}\n")
	r = loadcap(t, nil, false, "capacity", "plan", bad)
	if r.code != 104 || !strings.Contains(r.stderr, "bad-plan.yaml:3:") || !strings.Contains(r.stderr, "capacity") {
		t.Errorf("bad plan: exit %d\n%s", r.code, r.stderr)
	}
	r = loadcap(t, nil, false, "validate", bad)
	if r.code != 104 {
		t.Errorf("validate of a bad plan: exit %d", r.code)
	}
}

func TestCapacityFind(t *testing.T) {
	url := testTarget(t, target.Config{Workers: 2, ServiceTime: 2 * time.Millisecond})
	out := filepath.Join(t.TempDir(), "find.json")
	quiet.Retry(t, 3, func(a *quiet.A) {
		r := loadcap(t, nil, false, "capacity", "find", "--url", url+"/", "--slo", "p(99)<100ms,error<1%",
			"--start-rate", "100", "--max-rate", "200", "--warmup", "0s", "--window", "1s", "--soak", "1s", "--out", out)
		if israce.Enabled {
			return // a search measures timing: under the race detector it would measure the detector
		}
		if r.code != 0 {
			a.Errorf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			return
		}
		if !strings.Contains(r.stdout, "max sustainable QPS: 200.0 req/s (confirmed by a soak)") || !strings.Contains(r.stdout, "reached --max-rate") {
			a.Errorf("summary:\n%s", r.stdout)
		}
		if strings.Count(r.stderr, "\nstep ") < 2 {
			t.Errorf("want a progress line per step:\n%s", r.stderr)
		}
		var res struct {
			MaxQPS float64 `json:"max_qps"`
			Steps  []struct {
				Offered, Achieved float64
				Passed, Repeated  bool
			}
		}
		b, _ := os.ReadFile(out)
		if err := json.Unmarshal(b, &res); err != nil {
			t.Fatal(err)
		}
		judged := 0
		for _, st := range res.Steps {
			if !st.Repeated {
				judged++
			}
		}
		if res.MaxQPS != 200 || judged != 3 {
			a.Errorf("find.json: %+v", res)
		}
	})
	if r := loadcap(t, nil, false, "capacity", "find", "--url", url, "--slo", "p99<1"); r.code != 2 {
		t.Errorf("bad SLO: exit %d, want 2", r.code)
	}
}

func TestCompareRuns(t *testing.T) {
	t.Parallel()
	fast := testTarget(t, target.Config{ServiceTime: time.Millisecond})
	// 1 s: latency counts from the intended send, so a machine that stops
	// the base run for up to 500 ms raises its p95 to at most about that;
	// 1 s stays beyond +50% of it, and beyond the race detector's slowdown.
	slow := testTarget(t, target.Config{ServiceTime: time.Second})
	dir := t.TempDir()
	base, run := filepath.Join(dir, "base.json"), filepath.Join(dir, "run.json")
	for _, r := range [][]string{
		{"run", "-q", "--no-summary", "--url", fast + "/", "--rate", "100", "--duration", "1s", "--out", base},
		{"run", "-q", "--no-summary", "--url", slow + "/", "--rate", "100", "--duration", "1s", "--out", run},
	} {
		if res := loadcap(t, nil, false, r...); res.code != 0 {
			t.Fatalf("%v: exit %d %s", r, res.code, res.stderr)
		}
	}
	same := loadcap(t, nil, false, "compare", base, base)
	if same.code != 0 || !strings.Contains(same.stdout, "no regression") {
		t.Errorf("a run against itself: exit %d\n%s", same.code, same.stdout)
	}
	cmpJSON := filepath.Join(dir, "compare.json")
	worse := loadcap(t, nil, false, "compare", base, run, "--max-regression", "p(95)+50%", "--out", cmpJSON)
	if worse.code != 110 || !strings.Contains(worse.stdout, "REGRESSED") {
		t.Errorf("1 ms -> 1 s service: exit %d, want 110\n%s", worse.code, worse.stdout)
	}
	var cmp struct {
		Schema    string `json:"schema"`
		Regressed bool   `json:"regressed"`
	}
	if b, err := os.ReadFile(cmpJSON); err != nil || json.Unmarshal(b, &cmp) != nil || !cmp.Regressed || cmp.Schema != "loadcap.compare/v1" {
		t.Errorf("compare --out: %v %+v", err, cmp)
	}
	if r := loadcap(t, nil, false, "compare", base, run, "--max-regression", "rps+5%"); r.code != 2 {
		t.Errorf("bad allowance: exit %d, want 2", r.code)
	}
	if r := loadcap(t, nil, false, "compare", base, filepath.Join(dir, "none.json")); r.code != 104 {
		t.Errorf("missing run file: exit %d, want 104", r.code)
	}
}
