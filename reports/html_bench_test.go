package reports

import (
	"bytes"
	"sync"
	"testing"
)

// oneHour is a one-hour run at one-second resolution: three request names
// at about 350 req/s together, with errors and a stall, its pattern
// repeating every ten minutes.
var oneHour = sync.OnceValue(func() *Run {
	return synth{
		seconds: 3600, period: 600, names: []string{"checkout", "home", "search"}, rps: []float64{50, 200, 100},
		medianMs: []float64{35, 4, 12}, sigma: 0.5, seed: 3600,
		slow:      func(t int) float64 { return map[bool]float64{true: 5, false: 1}[t%600 >= 300 && t%600 < 305] },
		failShare: map[string]float64{"5xx": 0.01, "timeout": 0.002},
	}.build()
})

// MaxOneHourReport bounds the size of the report of a one-hour run.
const maxOneHourReport = 2 << 20

func TestHTMLOneHourSize(t *testing.T) {
	run := oneHour()
	out := writeHTML(t, HTMLInput{Run: run})
	if len(out) > maxOneHourReport {
		t.Errorf("the report of a one-hour run is %d bytes, over %d", len(out), maxOneHourReport)
	}
	t.Logf("one-hour report: %d bytes", len(out))
	d, err := ReadHTMLData(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	// Too big to embed whole: the per-second histograms stay out, and the
	// data says so; everything else is there.
	if len(d.Omitted) == 0 || len(d.Run.Intervals) != 3600 || d.Run.Intervals[0].Histograms != nil || d.Run.Intervals[0].LatencyMs.Count == 0 {
		t.Errorf("omitted %v, %d intervals", d.Omitted, len(d.Run.Intervals))
	}
	if _, err := d.Run.Histogram("checkout"); err != nil {
		t.Errorf("the overall histograms must stay: %v", err)
	}
	if run.Intervals[0].Histograms == nil {
		t.Error("embedding changed the caller's run")
	}
}

// BenchmarkHTMLOneHour renders the report of a one-hour run (3600
// one-second intervals, three request names); the custom metric is the
// report's size.
func BenchmarkHTMLOneHour(b *testing.B) {
	in := HTMLInput{Run: oneHour(), ExitCode: 0}
	var n int
	b.ReportAllocs()
	for b.Loop() {
		var buf bytes.Buffer
		if err := WriteHTML(&buf, in); err != nil {
			b.Fatal(err)
		}
		n = buf.Len()
	}
	b.ReportMetric(float64(n), "bytes")
}
