package guard_test

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/loadcap/loadcap/internal/guard"
)

func TestValidate(t *testing.T) {
	prom := "http://127.0.0.1:9090"
	tests := []struct {
		name string
		cfg  guard.Config
		want []string // every one appears in the error; none: valid
	}{
		{name: "defaults are valid", cfg: guard.Config{Rules: []guard.Rule{{SLO: "p(99)<500ms,error<1%"}}}},
		{name: "every kind of rule", cfg: guard.Config{Prometheus: prom, Switch: guard.Switch{File: "/tmp/x", Listen: "127.0.0.1:0"}, Rules: []guard.Rule{
			{SLO: "avg<20ms"}, {PromQL: "up", Min: guard.Float(1), Max: guard.Float(math.NaN())}, {Health: "http://127.0.0.1:8080/healthz", Timeout: time.Second},
		}}},
		{name: "bad SLO", cfg: guard.Config{Rules: []guard.Rule{{Name: "r", SLO: "p(99)>500ms"}}},
			want: []string{`rule "r"`, "upper limit"}},
		{name: "two kinds in one rule", cfg: guard.Config{Prometheus: prom, Rules: []guard.Rule{{SLO: "error<1%", PromQL: "up", Max: guard.Float(1)}}},
			want: []string{`rule "rule-1"`, "exactly one of"}},
		{name: "PromQL without a limit or a server", cfg: guard.Config{Rules: []guard.Rule{{PromQL: "up"}}},
			want: []string{"needs Max or Min", "guard prometheus"}},
		{name: "min above max", cfg: guard.Config{Prometheus: prom, Rules: []guard.Rule{{PromQL: "up", Max: guard.Float(1), Min: guard.Float(2)}}},
			want: []string{"min 2 is above max 1"}},
		{name: "limits on a non-PromQL rule", cfg: guard.Config{Rules: []guard.Rule{{SLO: "error<1%", Max: guard.Float(1)}}},
			want: []string{"apply to PromQL"}},
		{name: "on no data", cfg: guard.Config{Prometheus: prom, Rules: []guard.Rule{
			{Name: "a", PromQL: "up", Max: guard.Float(1), OnNoData: "skip"}, {Name: "b", SLO: "error<1%", OnNoData: guard.NoDataIgnore},
			{Name: "c", PromQL: "up", Max: guard.Float(1), OnNoData: guard.NoDataIgnore}}},
			want: []string{`rule "a": on no data "skip": want "stop" or "ignore"`, `rule "b": OnNoData applies to PromQL rules`}},
		{name: "relative health URL", cfg: guard.Config{Rules: []guard.Rule{{Health: "/healthz"}}},
			want: []string{"absolute http(s) URL"}},
		{name: "duplicate names", cfg: guard.Config{Rules: []guard.Rule{{Name: "x", SLO: "error<1%"}, {Name: "x", SLO: "error<2%"}}},
			want: []string{"used twice"}},
		{name: "out of range numbers, all reported", cfg: guard.Config{
			Every: time.Millisecond, Breaches: 101, SignalLoss: guard.SignalLoss{Grace: time.Millisecond, Action: "ignore"},
			Switch: guard.Switch{Listen: "8089"},
			Rules:  []guard.Rule{{SLO: "error<1%", Breaches: -1}},
		}, want: []string{"every 1ms", "breaches 101", "grace 1ms", `action "ignore"`, `listen "8089"`, "breaches -1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				g, err := guard.New(tc.cfg)
				if err != nil {
					t.Fatal(err)
				}
				if err := g.Close(); err != nil {
					t.Error(err)
				}
				return
			}
			if err == nil {
				t.Fatal("valid; want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if _, nerr := guard.New(tc.cfg); nerr == nil {
				t.Error("New accepted what Validate rejects")
			}
		})
	}
}

func TestCheck(t *testing.T) {
	health := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ok" {
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	defer health.Close()
	q := guard.QuerierFunc(func(_ context.Context, query string, _ time.Time) (model.Value, error) {
		switch query {
		case "good":
			return vector(0.1), nil
		case "high":
			return vector(0.9), nil
		case "missing":
			return model.Vector{}, nil
		}
		return nil, errors.New(`bad_data: 1:4: parse error: unexpected "}"`)
	})
	g, err := guard.New(guard.Config{Querier: q, Rules: []guard.Rule{
		{Name: "good", PromQL: "good", Max: guard.Float(0.5)},
		{Name: "high", PromQL: "high", Max: guard.Float(0.5)},
		{Name: "missing", PromQL: "missing", Max: guard.Float(0.5)},
		{Name: "may be empty", PromQL: "missing", Max: guard.Float(0.5), OnNoData: guard.NoDataIgnore},
		{Name: "typo", PromQL: "up}", Max: guard.Float(0.5)},
		{Name: "healthy", Health: health.URL + "/ok"},
		{Name: "sick", Health: health.URL + "/sick"},
		{Name: "drill", SLO: "error<1%"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	err = g.Check(context.Background())
	if err == nil {
		t.Fatal("no problem found")
	}
	msg := err.Error()
	for _, want := range []string{`"high" is breached already`, `"missing": query returned no series`, `"typo": query: bad_data`, `"sick"`, "502 Bad Gateway"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Check: %q does not mention %q", msg, want)
		}
	}
	for _, fine := range []string{`"good"`, `"healthy"`, `"drill"`, `"may be empty"`} {
		if strings.Contains(msg, fine) {
			t.Errorf("Check complains about %s: %s", fine, msg)
		}
	}
}

func TestStatusJSONWithInfinity(t *testing.T) {
	// histogram_quantile answers +Inf when the quantile is past the last
	// bucket: the status endpoint must still encode.
	inf := guard.QuerierFunc(func(context.Context, string, time.Time) (model.Value, error) {
		return model.Vector{{Value: model.SampleValue(posInf())}}, nil
	})
	g, err := guard.New(guard.Config{Querier: inf, Switch: guard.Switch{Listen: "127.0.0.1:0"},
		Rules: []guard.Rule{{Name: "p99", PromQL: "histogram_quantile(0.99, x)", Max: guard.Float(0.5), Breaches: 100}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- g.Run(ctx, func(b guard.Breach) { t.Errorf("stopped: %v", b) }) }()
	defer func() { cancel(); <-done }()
	waitFor(t, func() bool { return g.Status().Rules[0].State == guard.StateBad })
	var raw struct {
		Rules []map[string]any `json:"rules"`
	}
	if code := getJSON(t, "http://"+g.Addr()+"/", &raw); code != http.StatusOK || raw.Rules[0]["value"] != "+Inf" {
		t.Errorf("GET /: %d %v", code, raw)
	}
}

// TestPrometheusTimeoutParameter checks what the guard sends through the
// official client: the query, and a timeout Prometheus can parse (its
// duration syntax has no fractions: "1.5s" or "499.97ms" are rejected).
func TestPrometheusTimeoutParameter(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		want    string
	}{
		{name: "under a second: whole milliseconds", timeout: 300 * time.Millisecond, want: `^[0-9]{3}ms$`},
		{name: "over a second: whole seconds", timeout: 1500 * time.Millisecond, want: `^1s$`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan string, 16)
			fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_ = r.ParseForm()
				got <- r.URL.Path + " " + r.Form.Get("query") + " " + r.Form.Get("timeout")
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":[{"metric":{"service":"cart"},"value":[1700000000,"0.25"]}]}}`))
			}))
			defer fake.Close()
			g, err := guard.New(guard.Config{Prometheus: fake.URL, Rules: []guard.Rule{{PromQL: "sum(x)", Max: guard.Float(1), Timeout: tc.timeout}}})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			if err := g.Check(context.Background()); err != nil {
				t.Fatal(err)
			}
			req := strings.SplitN(<-got, " ", 3)
			if req[0] != "/api/v1/query" || req[1] != "sum(x)" || !regexp.MustCompile(tc.want).MatchString(req[2]) {
				t.Errorf("request %q; want /api/v1/query sum(x) and a timeout matching %s", req, tc.want)
			}
		})
	}
}
