package loadgen

import (
	"math"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/loadcap/loadcap/scenarios"
)

// evaluate tests each threshold of f against res. A threshold whose
// metric has no data fails (value NaN): a run that measured nothing proves
// nothing.
func evaluate(f *scenarios.File, ths []scenarios.Threshold, res *Result) []ThresholdResult {
	out := make([]ThresholdResult, 0, len(ths))
	var grpc map[string]bool // names of f's gRPC requests, for grpc_req_duration
	for _, r := range f.Requests {
		if r.GRPC != nil {
			if grpc == nil {
				grpc = map[string]bool{}
			}
			grpc[r.Name] = true
		}
	}
	for _, t := range ths {
		v := metricValue(t, res, grpc)
		out = append(out, ThresholdResult{
			Metric: t.Key(),
			Expr:   t.Expr,
			Value:  v,
			Passed: !math.IsNaN(v) && t.Compare(v),
			Abort:  t.AbortOnFail,
		})
	}
	return out
}

// metricValue computes the aggregation a threshold names, in k6's units:
// durations in ms, rates as fractions or per second, counts as counts.
func metricValue(t scenarios.Threshold, res *Result, grpc map[string]bool) float64 {
	var (
		hist                 *hdr.Histogram
		completed, failed    int64
		bytesSent, bytesRecv int64
	)
	if len(t.Tags) > 0 {
		rs := res.Select(t.Tags)
		if rs == nil {
			return math.NaN()
		}
		hist, completed, failed, bytesSent, bytesRecv = rs.Latency, rs.Completed, rs.Failed, rs.BytesSent, rs.BytesRecv
	} else {
		tt := res.Totals
		hist, completed, failed, bytesSent, bytesRecv = res.Latency, tt.Completed, tt.Failed, tt.BytesSent, tt.BytesRecv
	}
	e := t.Condition()
	counter := func(n int64) float64 { return e.OfCounter(n, res.Duration) }
	if t.Metric == "grpc_req_duration" {
		hist = nil
		for _, s := range res.Series {
			if !grpc[s.Name] || (t.Tags["name"] != "" && s.Name != t.Tags["name"]) || (t.Tags["scenario"] != "" && s.Scenario != t.Tags["scenario"]) {
				continue
			}
			if hist == nil {
				hist = hdr.New(histLowest, res.top, histDigits) // res.top: this run's own top, which may exceed the default
			}
			hist.Merge(s.Latency)
		}
	}
	switch t.Metric {
	case "http_req_duration", "grpc_req_duration":
		return e.OfTrend(hist)
	case "http_req_failed":
		if t.Agg == "rate" {
			return e.OfRate(failed, completed+failed)
		}
	case "http_reqs", "iterations":
		return counter(completed + failed)
	case "dropped_iterations":
		if len(t.Tags) > 0 {
			return math.NaN() // arrivals are dropped before a request is chosen
		}
		return counter(res.Totals.Dropped)
	case "data_sent":
		return counter(bytesSent)
	case "data_received":
		return counter(bytesRecv)
	}
	return math.NaN()
}
