package reports

import (
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// BenchmarkSoak is a 24-hour soak at one-second resolution without the
// wait: 86,400 synthetic seconds of 20 request names (10 requests each per
// second) through a real Recorder, the intervals stream and run.json, as
// `loadcap run --out` writes them, then read back as report and compare
// read them. It reports
//
//	heap-MB-10pct, heap-MB-end  live heap (after a GC) with the recorder
//	                            at 10% and at 100% of the seconds: flat
//	                            means the generator's memory does not grow
//	run-json-KB, intervals-MB   the files written
//	write-s, report-s, compare-s   feeding and writing; ReadFile +
//	                            summary + HTML; ReadFile + Compare
//	heap-MB-report              live heap holding the read result
//
// LOADCAP_SOAK_SECONDS shortens it (e.g. 8640 for a tenth);
// LOADCAP_SOAK_KEEP=0 keeps every second in the recorder, as loadcap did
// before the intervals file, for the comparison.
//
//	go test ./reports -run '^$' -bench Soak -benchtime 1x -benchmem
func BenchmarkSoak(b *testing.B) {
	secs := 86_400
	if s, err := strconv.Atoi(os.Getenv("LOADCAP_SOAK_SECONDS")); err == nil && s > 0 {
		secs = s
	}
	const names, perName = 20, 10
	keep := 300
	if k, err := strconv.Atoi(os.Getenv("LOADCAP_SOAK_KEEP")); err == nil && k >= 0 {
		keep = k
	}
	heap := func() float64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return float64(m.HeapInuse) / (1 << 20)
	}
	for b.Loop() {
		dir := b.TempDir()
		out := filepath.Join(dir, "run.json")
		t0 := time.Now()
		s, err := CreateIntervalStream(IntervalsPath(out))
		if err != nil {
			b.Fatal(err)
		}
		var heap10 float64
		res := soak(b, s, names, perName, secs, keep, func(sec int) {
			if sec == secs/10 {
				heap10 = heap()
			}
		})
		heapEnd := heap()
		run := NewRun(res, Meta{Version: "bench"})
		run.AttachIntervals(s, res.Earlier)
		if err := run.WriteFile(out); err != nil {
			b.Fatal(err)
		}
		write := time.Since(t0)
		res, run = nil, nil

		t1 := time.Now()
		r, err := ReadFile(out)
		if err != nil {
			b.Fatal(err)
		}
		if err := WriteSummary(io.Discard, r); err != nil {
			b.Fatal(err)
		}
		if err := WriteHTML(io.Discard, HTMLInput{Run: r}); err != nil {
			b.Fatal(err)
		}
		report := time.Since(t1)
		heapReport := heap()
		r = nil

		t2 := time.Now()
		base, err := ReadFile(out)
		if err != nil {
			b.Fatal(err)
		}
		cur, err := ReadFile(out)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Compare(base, cur, nil); err != nil {
			b.Fatal(err)
		}
		compare := time.Since(t2)

		b.ReportMetric(heap10, "heap-MB-10pct")
		b.ReportMetric(heapEnd, "heap-MB-end")
		b.ReportMetric(heapReport, "heap-MB-report")
		b.ReportMetric(float64(size(b, out))/1024, "run-json-KB")
		if n := size(b, IntervalsPath(out)); n > 0 {
			b.ReportMetric(float64(n)/(1<<20), "intervals-MB")
		}
		b.ReportMetric(write.Seconds(), "write-s")
		b.ReportMetric(report.Seconds(), "report-s")
		b.ReportMetric(compare.Seconds(), "compare-s")
	}
}

func size(tb testing.TB, path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
