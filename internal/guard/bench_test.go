package guard

import (
	"math/rand/v2"
	"testing"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/scenarios/slo"
)

// benchInterval is one second of 4 request names, 2000 requests each,
// latencies spread from 1 ms to about 1 s.
func benchInterval() loadgen.Interval {
	rng := rand.New(rand.NewPCG(1, 2))
	iv := loadgen.Interval{Completed: 7990, Failed: 10, Hists: map[string]*hdr.PackedHistogram{}}
	for _, name := range []string{"browse", "cart", "checkout", "search"} {
		h := hdr.NewPacked(1, 60_000_000, 3)
		for range 2000 {
			_ = h.RecordValue(1000 + int64(rng.ExpFloat64()*50_000))
		}
		h.Compact()
		iv.Hists[name] = h
	}
	return iv
}

// BenchmarkTrafficEvaluation is the guard's work per second of traffic:
// merging the interval's histograms and holding a two-clause SLO.
func BenchmarkTrafficEvaluation(b *testing.B) {
	ivs := []loadgen.Interval{benchInterval()}
	o, err := slo.Parse("p(99)<500ms,error<1%")
	if err != nil {
		b.Fatal(err)
	}
	var m loadgen.WindowMerger
	b.ReportAllocs()
	for b.Loop() {
		w := m.Merge(ivs)
		if out := evalSLO(o, 0, &w); out.state != StateOK {
			b.Fatal(out.detail)
		}
	}
}

// BenchmarkObserve is what the engine's ticker goroutine pays per interval.
func BenchmarkObserve(b *testing.B) {
	g, err := New(Config{Rules: []Rule{{SLO: "error<1%"}}})
	if err != nil {
		b.Fatal(err)
	}
	iv := benchInterval()
	b.ReportAllocs()
	for b.Loop() {
		g.Observe(iv)
		g.mu.Lock()
		g.pending = g.pending[:0] // what Run's evaluation does
		g.mu.Unlock()
	}
}
