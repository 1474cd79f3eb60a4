package reports

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/loadcap/loadcap/loadgen"
)

// synth describes a synthetic run built the way the recorder builds one:
// real HDR histograms per request name overall and per second, counters per
// second, errors by class. The same synth always gives the same Run.
type synth struct {
	seconds  int
	names    []string
	rps      []float64 // per name, per second
	medianMs []float64 // per name
	sigma    float64   // log-normal spread of latency
	seed     uint64
	// slow multiplies latency at second t; nil: 1.
	slow func(t int) float64
	// rate multiplies the arrival rate at second t; nil: 1.
	rate func(t int) float64
	// failShare is the share of names[0]'s requests that fail, by class.
	failShare map[string]float64
	// dropped arrivals at second t; nil: none.
	dropped func(t int) int64
	// late arrivals and the worst pacer lag, for the data-quality notes.
	late     int64
	maxLagMs float64
	// period > 0 repeats the first period seconds over the run.
	period int
}

func (s synth) build() *Run {
	const top = 60_000_000
	rng := rand.New(rand.NewPCG(s.seed, 0x5eed))
	start := time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)
	overall := make(map[string]*hdr.Histogram, len(s.names))
	reqs := make(map[string]*Request, len(s.names))
	for _, n := range s.names {
		overall[n] = hdr.New(1, top, 3)
		reqs[n] = &Request{StatusCodes: map[string]int64{}, Errors: map[string]int64{}}
	}
	classes := slices.Sorted(maps.Keys(s.failShare))
	r := &Run{
		Schema: Schema, Status: "passed",
		Started: start.Format(time.RFC3339Nano), Ended: start.Add(time.Duration(s.seconds) * time.Second).Format(time.RFC3339Nano),
		DurationS: float64(s.seconds),
		Meta: Meta{Version: "test", File: "scenarios/shop <checkout>.yaml", Target: "http://127.0.0.1:8080",
			Scenarios: []string{"browse", "buy"}, MaxVUs: 40},
		Requests: map[string]Request{}, Histograms: map[string]string{}, ServiceHist: map[string]string{},
		Thresholds: []Threshold{}, Intervals: make([]Interval, 0, s.seconds),
	}
	// One cell per second of the period: the seconds after it repeat it,
	// so that a long run costs no more to build than its period.
	period := s.seconds
	if s.period > 0 && s.period < period {
		period = s.period
	}
	cells := make([]Interval, period)
	cellHists := make([]map[string]*hdr.PackedHistogram, period)
	for t := range period {
		iv := Interval{T: t, EndS: float64(t + 1), Histograms: map[string]string{}}
		cellHists[t] = map[string]*hdr.PackedHistogram{}
		all := hdr.NewPacked(1, top, 3)
		mult, rate := 1.0, 1.0
		if s.slow != nil {
			mult = s.slow(t)
		}
		if s.rate != nil {
			rate = s.rate(t)
		}
		inflight := 0.0
		for i, n := range s.names {
			ih := hdr.NewPacked(1, top, 3)
			want := s.rps[i] * rate
			count := int(want*(0.9+0.2*rng.Float64()) + 0.5)
			for range count {
				ms := s.medianMs[i] * mult * math.Exp(s.sigma*rng.NormFloat64())
				_ = ih.RecordValue(min(max(int64(ms*1000), 1), top))
				failed := ""
				if i == 0 {
					u := rng.Float64()
					for _, c := range classes {
						if u < s.failShare[c] {
							failed = c
							break
						}
						u -= s.failShare[c]
					}
				}
				if failed == "" {
					iv.Completed++
					continue
				}
				iv.Failed++
				if iv.Errors == nil {
					iv.Errors = map[string]int64{}
				}
				iv.Errors[failed]++
			}
			inflight += want * s.medianMs[i] * mult / 1000
			if ih.TotalCount() > 0 {
				b, err := ih.Encode()
				if err != nil {
					panic(err)
				}
				iv.Histograms[n] = string(b)
				cellHists[t][n] = ih
				all.Merge(ih)
			}
		}
		iv.Sent = iv.Completed + iv.Failed
		iv.Inflight = int64(inflight + 0.5)
		iv.LatencyMs = packedLatency(all)
		cells[t] = iv
	}
	for t := range s.seconds {
		iv := cells[t%period]
		iv.T, iv.EndS = t, float64(t+1)
		if s.dropped != nil {
			iv.Dropped = s.dropped(t)
		}
		iv.Scheduled = iv.Sent + iv.Dropped
		for i, n := range s.names {
			h := cellHists[t%period][n]
			if h == nil {
				continue
			}
			h.MergeInto(overall[n])
			q := reqs[n]
			q.Totals.Sent += h.TotalCount()
			if i > 0 {
				q.Totals.Completed += h.TotalCount()
				q.StatusCodes["200"] += h.TotalCount()
				continue
			}
			// Only the first name fails.
			q.Totals.Completed += h.TotalCount() - iv.Failed
			q.Totals.Failed += iv.Failed
			q.StatusCodes["200"] += h.TotalCount() - iv.Failed
			for c, k := range iv.Errors {
				q.Errors[c] += k
				if c == "5xx" {
					q.StatusCodes["503"] += k
				}
			}
		}
		r.Intervals = append(r.Intervals, iv)
	}
	merged := hdr.New(1, top, 3)
	for _, n := range s.names {
		q := reqs[n]
		q.Totals.RPS = round3(float64(q.Totals.Completed+q.Totals.Failed) / float64(s.seconds))
		q.LatencyMs = latency(loadgen.Summarize(overall[n]))
		q.ServiceMs = q.LatencyMs
		if len(q.Errors) > 0 {
			q.ErrorSamples = map[string]string{}
			for c := range q.Errors {
				q.ErrorSamples[c] = fmt.Sprintf("POST /%s: <b>%s</b> & retry", n, c)
			}
		}
		r.Requests[n] = *q
		r.Histograms[n] = encode(overall[n])
		r.ServiceHist[n] = r.Histograms[n]
		merged.Merge(overall[n])
		r.Totals.Sent += q.Totals.Sent
		r.Totals.Completed += q.Totals.Completed
		r.Totals.Failed += q.Totals.Failed
	}
	for _, iv := range r.Intervals {
		r.Totals.Dropped += iv.Dropped
	}
	r.Totals.Scheduled = r.Totals.Sent + r.Totals.Dropped
	r.Totals.RPS = round3(float64(r.Totals.Completed+r.Totals.Failed) / float64(s.seconds))
	r.Totals.LateArrivals, r.Totals.MaxLagMs = s.late, s.maxLagMs
	r.LatencyMs = latency(loadgen.Summarize(merged))
	r.ServiceMs = r.LatencyMs
	p99 := r.LatencyMs.P99
	limit := 2 * s.medianMs[0]
	r.Thresholds = append(r.Thresholds,
		Threshold{Metric: "http_req_duration", Expr: fmt.Sprintf("p(99)<%g", limit), Passed: p99 < limit, Value: &p99})
	if len(s.names) > 1 {
		v := r.Requests[s.names[1]].LatencyMs.P95
		r.Thresholds = append(r.Thresholds, Threshold{Metric: "http_req_duration{name:" + s.names[1] + "}", Expr: "p(95)<500", Passed: v < 500, Value: &v})
	}
	rate := 0.0
	if n := r.Totals.Completed + r.Totals.Failed; n > 0 {
		rate = float64(r.Totals.Failed) / float64(n)
	}
	r.Thresholds = append(r.Thresholds, Threshold{Metric: "http_req_failed", Expr: "rate<0.01", Passed: rate < 0.01, Value: &rate})
	for _, th := range r.Thresholds {
		if !th.Passed {
			r.Status = "failed"
		}
	}
	return r
}

func packedLatency(h *hdr.PackedHistogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	q := h.ValueAtPercentilesSlice([]float64{50, 90, 95, 99, 99.9})
	return Latency{Count: h.TotalCount(), Min: ms(h.Min()), Mean: round3(h.Mean() / 1000),
		P50: ms(q[0]), P90: ms(q[1]), P95: ms(q[2]), P99: ms(q[3]), P999: ms(q[4]), Max: ms(h.Max())}
}

// steady is a one-request-name run of the given length with stable,
// noisy latency.
func steady(seconds int, seed uint64) synth {
	return synth{seconds: seconds, names: []string{"api"}, rps: []float64{100}, medianMs: []float64{10}, sigma: 0.4, seed: seed}
}
