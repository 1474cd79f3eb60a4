package loadgen

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/loadcap/loadcap/scenarios"
)

// benchFill fills a recorder of n series with 1000 outcomes.
func benchFill(r *Recorder, rng *rand.Rand, t0 time.Time) {
	for i := range 1000 {
		lat := time.Duration(50+rng.IntN(20000)) * time.Microsecond
		o := Outcome{Name: i % len(r.series), Latency: lat, Service: lat, Status: 200, End: t0}
		r.Sent(o.Name, i, t0)
		r.Record(i, &o)
	}
}

func benchSeries(n int) []Series {
	s := make([]Series, n)
	for i := range s {
		s[i] = Series{Scenario: "s", Name: fmt.Sprint("r", i)}
	}
	return s
}

// BenchmarkRotateSnapshot is one interval's close with 10 series, without and with
// the per-series snapshot an agent streams.
func BenchmarkRotateSnapshot(b *testing.B) {
	for _, snap := range []bool{false, true} {
		b.Run(fmt.Sprintf("snapshot=%v", snap), func(b *testing.B) {
			r := NewRecorder(benchSeries(10), DefaultHistTop)
			t0 := time.Now()
			r.Start(t0)
			rng := rand.New(rand.NewPCG(1, 1))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				benchFill(r, rng, t0)
				b.StartTimer()
				if snap {
					r.rotate(t0.Add(time.Duration(i)*time.Second), &Snapshot{})
				} else {
					r.Rotate(t0.Add(time.Duration(i) * time.Second))
				}
			}
		})
	}
}

// BenchmarkMergerAdd merges one interval of 10 series from each of 3 parts.
func BenchmarkMergerAdd(b *testing.B) {
	yaml := "target: http://127.0.0.1:9\nscenarios:\n  s: {executor: constant-vus, vus: 1, duration: 1s}\nrequests:\n"
	for i := range 10 {
		yaml += fmt.Sprintf("  - {name: r%d, path: /}\n", i)
	}
	f, err := scenarios.Parse("bench.yaml", []byte(yaml))
	if err != nil {
		b.Fatal(err)
	}
	series := SeriesOf(f)
	_, top, _ := limits(f)
	r := NewRecorder(series, top)
	t0 := time.Now()
	r.Start(t0)
	benchFill(r, rand.New(rand.NewPCG(1, 1)), t0)
	snap := &Snapshot{}
	r.rotate(t0.Add(time.Second), snap)
	const parts = 3
	m, err := NewMerger(f, parts)
	if err != nil {
		b.Fatal(err)
	}
	m.Start(t0)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		for p := range parts {
			s := *snap
			s.T = i
			if _, err := m.Add(p, &s); err != nil {
				b.Fatal(err)
			}
		}
	}
}
