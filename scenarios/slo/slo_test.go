package slo

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Expr
		wantErr string
	}{
		{"percentile and error", "p(99)<200ms,error<0.5%", []Expr{
			{Text: "p(99)<200ms", Agg: P, Pct: 99, Op: "<", Limit: 200},
			{Text: "error<0.5%", Agg: Error, Op: "<", Limit: 0.005}}, ""},
		{"seconds, bare ms, fraction", "p(99.9)<=1.5s, avg<20, error<0.01", []Expr{
			{Text: "p(99.9)<=1.5s", Agg: P, Pct: 99.9, Op: "<=", Limit: 1500},
			{Text: "avg<20", Agg: Avg, Op: "<", Limit: 20},
			{Text: "error<0.01", Agg: Error, Op: "<", Limit: 0.01}}, ""},
		{"med, min, max, micro", "med<5ms,min<500us,max<2s", []Expr{
			{Text: "med<5ms", Agg: Med, Op: "<", Limit: 5},
			{Text: "min<500us", Agg: Min, Op: "<", Limit: 0.5},
			{Text: "max<2s", Agg: Max, Op: "<", Limit: 2000}}, ""},
		{"rps lower limit", "rps>=500/s,errors<1%", []Expr{
			{Text: "rps>=500/s", Agg: RPS, Op: ">=", Limit: 500},
			{Text: "errors<1%", Agg: Error, Op: "<", Limit: 0.01}}, ""},
		{"empty", " , ", nil, "no clauses"},
		{"lower bound on latency", "p(99)>5ms", nil, "upper limit"},
		{"upper bound on rps", "rps<5", nil, "lower limit"},
		{"unknown aggregation", "p99<5ms", nil, "unknown aggregation"},
		{"k6 counter aggregation", "count<5", nil, "unknown aggregation"},
		{"bad percentile", "p(120)<5ms", nil, "percentile"},
		{"bad duration", "p(99)<fast", nil, "latency limit"},
		{"error over 100%", "error<150%", nil, "over 100%"},
		{"no operator", "p(99)", nil, "want AGG<LIMIT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(s.Clauses) != len(tc.want) {
				t.Fatalf("clauses %+v, want %+v", s.Clauses, tc.want)
			}
			for i, c := range s.Clauses {
				if c != tc.want[i] {
					t.Errorf("clause %d = %+v, want %+v", i, c, tc.want[i])
				}
			}
		})
	}
}

func TestParseThreshold(t *testing.T) {
	tests := []struct {
		name, in string
		want     Expr
		wantErr  string
		value    bool // a ValueError, not a syntax error
	}{
		{name: "percentile", in: "p(99.9) < 250", want: Expr{Text: "p(99.9) < 250", Agg: P, Pct: 99.9, Op: "<", Limit: 250}},
		{name: "rate", in: "rate<0.01", want: Expr{Text: "rate<0.01", Agg: Rate, Op: "<", Limit: 0.01}},
		{name: "count", in: "count>=100", want: Expr{Text: "count>=100", Agg: Count, Op: ">=", Limit: 100}},
		{name: "triple equals", in: "max===3", want: Expr{Text: "max===3", Agg: Max, Op: "==", Limit: 3}},
		{name: "med", in: "med!=0", want: Expr{Text: "med!=0", Agg: Med, Op: "!=", Limit: 0}},
		{name: "no value", in: "p(99)<", wantErr: "malformed"},
		{name: "unit", in: "rate<5ms", wantErr: "right hand side"},
		{name: "percentile out of range", in: "p(101)<1", wantErr: "between 0 and 100", value: true},
		{name: "not finite", in: "rate<NaN", wantErr: "finite", value: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := ParseThreshold(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				var ve *ValueError
				if errors.As(err, &ve) != tc.value {
					t.Errorf("ValueError = %v, want %v (%v)", !tc.value, tc.value, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if e != tc.want {
				t.Errorf("got %+v, want %+v", e, tc.want)
			}
		})
	}
}

func TestKindAllows(t *testing.T) {
	for _, tc := range []struct {
		k    Kind
		a    Agg
		want bool
	}{{Trend, P, true}, {Trend, Rate, false}, {Rated, Rate, true}, {Rated, Avg, false}, {Counter, Count, true}, {Counter, Rate, true}, {Counter, Max, false}} {
		if got := tc.k.Allows(tc.a); got != tc.want {
			t.Errorf("%s allows %s = %v, want %v", tc.k, tc.a, got, tc.want)
		}
	}
}

type win struct {
	finished, failed int64
	span             time.Duration
	h                *hdr.Histogram
}

func (w win) Finished() int64         { return w.finished }
func (w win) Failures() int64         { return w.failed }
func (w win) Span() time.Duration     { return w.span }
func (w win) Latency() *hdr.Histogram { return w.h }

// latencies returns a window of n requests, the i-th taking i ms.
func latencies(n int, failed int64) win {
	h := hdr.New(1, 60_000_000, 3)
	for i := 1; i <= n; i++ {
		_ = h.RecordValue(int64(i) * 1000)
	}
	return win{finished: int64(n), failed: failed, span: 10 * time.Second, h: h}
}

func TestEval(t *testing.T) {
	w := latencies(1000, 5) // 1..1000 ms, 0.5% failed, 100 req/s
	tests := []struct {
		slo        string
		passed     bool
		failed     string // the first failing clause
		closest    string
		firstValue float64
	}{
		{slo: "p(99)<995ms,error<1%", passed: true, closest: "p(99)<995ms", firstValue: 990},
		{slo: "p(50)<400ms,error<0.1%", passed: false, failed: "p(50)<400ms", firstValue: 500},
		{slo: "avg<600ms,error<0.1%", passed: false, failed: "error<0.1%", firstValue: 500.5},
		{slo: "rps>=100,max<2s", passed: true, closest: "rps>=100", firstValue: 100},
		{slo: "rps>101", passed: false, failed: "rps>101", firstValue: 100},
	}
	for _, tc := range tests {
		t.Run(tc.slo, func(t *testing.T) {
			v := MustParse(tc.slo).Eval(w)
			if v.Passed != tc.passed {
				t.Fatalf("passed = %v, want %v (%+v)", v.Passed, tc.passed, v.Clauses)
			}
			if got := v.Clauses[0].Value; math.Abs(got-tc.firstValue) > 0.001*tc.firstValue {
				t.Errorf("first value = %g, want %g", got, tc.firstValue)
			}
			if tc.failed != "" && (v.Failed == nil || v.Failed.Expr.Text != tc.failed) {
				t.Errorf("failed = %+v, want %s", v.Failed, tc.failed)
			}
			if tc.closest != "" && (v.Closest == nil || v.Closest.Expr.Text != tc.closest) {
				t.Errorf("closest = %+v, want %s", v.Closest, tc.closest)
			}
		})
	}
}

// A window where nothing finished proves nothing: every clause fails
// with a NaN value instead of passing on zeros.
func TestEvalEmptyWindowFails(t *testing.T) {
	v := MustParse("p(99)<1s,error<1%").Eval(win{span: time.Second})
	if v.Passed {
		t.Fatal("an empty window passed")
	}
	for _, c := range v.Clauses {
		if !math.IsNaN(c.Value) {
			t.Errorf("%s = %g, want NaN", c.Expr.Text, c.Value)
		}
	}
}

func TestFormatAndUnit(t *testing.T) {
	for _, tc := range []struct {
		clause, unit, formatted string
		v                       float64
	}{
		{"p(99)<200ms", "ms", "123.5ms", 123.5},
		{"error<1%", "ratio", "2.5%", 0.025},
		{"rps>10", "/s", "480/s", 480},
	} {
		e, err := ParseClause(tc.clause)
		if err != nil {
			t.Fatal(err)
		}
		if e.Unit() != tc.unit || e.Format(tc.v) != tc.formatted {
			t.Errorf("%s: unit %q format %q, want %q %q", tc.clause, e.Unit(), e.Format(tc.v), tc.unit, tc.formatted)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"p(99)<200ms,error<0.5%", "avg<20", "rps>=500/s", "p(99.9)<=1.5s", "error<150%", "p(", ",,", "max<1e309"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := Parse(s)
		if err != nil {
			return
		}
		for _, c := range o.Clauses {
			if math.IsNaN(c.Limit) || math.IsInf(c.Limit, 0) || c.Op == "" {
				t.Errorf("%q parsed to an unusable clause %+v", s, c)
			}
		}
	})
}
