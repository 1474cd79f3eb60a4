package k6

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/loadcap/loadcap/loadgen"
)

// longFrames is a k6 child's stream of n one-second intervals: series a
// from the start, b appearing at n*2/3 (a rebuild that replays the
// seconds before it), and at n*5/6 a latency above the histograms' top (a
// rebuild again).
func longFrames(n int) []*frame {
	frames := []*frame{{Hello: &helloFrame{Scenarios: []string{"s"}, Planned: time.Duration(n) * time.Second}}}
	for t := range n {
		var ns []seriesName
		counts := map[int]int64{0: int64(5 + t%7)}
		d := time.Duration(1+t%5) * time.Millisecond
		switch {
		case t == 0:
			ns = []seriesName{{"s", "a"}}
		case t == n*2/3:
			ns = []seriesName{{"s", "b"}}
		}
		if t >= n*2/3 {
			counts[1] = int64(1 + t%3)
		}
		if t == n*5/6 {
			d = 90 * time.Second
		}
		frames = append(frames, ivFrame(t, ns, d, counts))
	}
	return frames
}

// feed gives c the frames as a child's stream would.
func feed(t testing.TB, c *collector, frames []*frame) {
	t.Helper()
	for _, f := range frames {
		switch {
		case f.Hello != nil:
			c.part(0).hello, c.hello = f.Hello, f.Hello
		case f.Interval != nil:
			if err := c.interval(f.Interval); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// A long k6 run: the seconds a rebuild replays come back from the
// collector's file exactly as they went in, and with a retention the
// result keeps only the last seconds while its totals cover them all.
func TestCollectorReplaysSpilledIntervals(t *testing.T) {
	const n = 300
	frames := longFrames(n)
	newCollector := func(mem, keep int, hook func(loadgen.Interval)) *collector {
		c := &collector{path: "x.js", iters: map[string]*Iterations{}, checks: map[checkKey]*Check{}, keep: keep, hook: hook}
		c.log.mem = mem
		return c
	}
	whole := newCollector(2*n, 0, nil) // never spills
	feed(t, whole, frames)
	var hooked []int
	spilled := newCollector(10, 20, func(iv loadgen.Interval) { hooked = append(hooked, iv.T) })
	feed(t, spilled, frames)
	if spilled.log.inFile != n-10 || spilled.log.err != nil || len(spilled.log.head) != 10 {
		t.Fatalf("%d intervals in memory, %d in the file (%v): want 10 and %d", len(spilled.log.head), spilled.log.inFile, spilled.log.err, n-10)
	}
	want := whole.outcome(0, "", "", "").Result
	got := spilled.outcome(0, "", "", "").Result
	if got.Totals != want.Totals || got.Duration != want.Duration {
		t.Errorf("totals %+v over %s, want %+v over %s", got.Totals, got.Duration, want.Totals, want.Duration)
	}
	for _, name := range []string{"a", "b"} {
		g, w := got.Request(name), want.Request(name)
		if g == nil || w == nil {
			t.Fatalf("request %s: %v, want %v", name, g, w)
		}
		if g.Sent != w.Sent || g.Latency.TotalCount() != w.Latency.TotalCount() || g.Latency.Max() != w.Latency.Max() ||
			g.Latency.ValueAtQuantile(99) != w.Latency.ValueAtQuantile(99) || g.StatusCodes[200] != w.StatusCodes[200] {
			t.Errorf("request %s: sent %d, %d latencies up to %d µs; want %d, %d up to %d µs", name,
				g.Sent, g.Latency.TotalCount(), g.Latency.Max(), w.Sent, w.Latency.TotalCount(), w.Latency.Max())
		}
	}
	if len(want.Intervals) != n || want.Earlier != 0 {
		t.Errorf("without retention: %d intervals after %d, want %d after 0", len(want.Intervals), want.Earlier, n)
	}
	if len(got.Intervals) > 40 || got.Earlier+len(got.Intervals) != n || got.Intervals[len(got.Intervals)-1].T != n-1 {
		t.Errorf("with retention 20: %d intervals after %d earlier, want at most 40, the last %d", len(got.Intervals), got.Earlier, n-1)
	}
	for i, iv := range got.Intervals {
		if w := want.Intervals[got.Earlier+i]; iv.Sent != w.Sent || iv.Latency.P99 != w.Latency.P99 {
			t.Errorf("second %d: sent %d p99 %v, want %d %v", iv.T, iv.Sent, iv.Latency.P99, w.Sent, w.Latency.P99)
		}
	}
	// Every second reached the hook once, in order, however many rebuilds.
	if len(hooked) != n {
		t.Fatalf("the hook saw %d seconds, want %d", len(hooked), n)
	}
	for i, s := range hooked {
		if s != i {
			t.Fatalf("the hook saw second %d in place %d", s, i)
		}
	}
}

// A k6 run's memory does not grow with its length once its seconds go to
// the file: the live heap after 6,000 seconds of 5 request names is
// within 2 MB of that after 1,000. The same collector keeping every
// second in memory, as it did before, grows by more than 20 MB over those
// 5,000 seconds, which shows the measurement can tell them apart.
func TestCollectorMemoryStaysFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("feeds 6,000 seconds, twice")
	}
	flat1k, flat6k := collectorHeap(t, false)
	all1k, all6k := collectorHeap(t, true)
	mb := func(b uint64) float64 { return float64(b) / 1e6 }
	t.Logf("live heap after 1,000 and 6,000 seconds: %.1f and %.1f MB; keeping every second in memory: %.1f and %.1f MB",
		mb(flat1k), mb(flat6k), mb(all1k), mb(all6k))
	if flat6k > flat1k+2<<20 {
		t.Errorf("the live heap grew from %.1f MB to %.1f MB over 5,000 seconds", mb(flat1k), mb(flat6k))
	}
	if all6k < all1k+20<<20 {
		t.Errorf("keeping every second, the heap went from %.1f MB to %.1f MB only: the measurement sees no growth", mb(all1k), mb(all6k))
	}
}

// collectorHeap feeds a collector 6,000 seconds of 5 request names and
// returns its live heap after 1,000 and after 6,000; keepAll keeps every
// second in memory, in the collector and in its merger.
func collectorHeap(t *testing.T, keepAll bool) (at1k, at6k uint64) {
	const names = 5
	c := &collector{path: "x.js", iters: map[string]*Iterations{}, checks: map[checkKey]*Check{}, keep: 60}
	if keepAll {
		c.keep, c.log.mem = 0, 1<<30
	}
	defer c.log.close()
	c.part(0).hello = &helloFrame{Scenarios: []string{"s"}}
	frame := func(t int) *intervalFrame {
		counts := map[int]int64{}
		var ns []seriesName
		for i := range names {
			counts[i] = 50
			if t == 0 {
				ns = append(ns, seriesName{"s", fmt.Sprint("r", i)})
			}
		}
		f := ivFrame(t, ns, time.Duration(1+t%50)*time.Millisecond, counts).Interval
		for j := range f.Series { // a spread of latencies, as real seconds have
			h := newHist()
			for v := range int64(50) {
				_ = h.RecordValue(1000 + v*997 + int64(t%13)*31)
			}
			f.Series[j].Hist = encodeHist(h)
		}
		return f
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	for s := range 6000 {
		if err := c.interval(frame(s)); err != nil {
			t.Fatal(err)
		}
		if s == 999 {
			at1k = heap()
		}
	}
	at6k = heap()
	runtime.KeepAlive(c)
	return at1k, at6k
}
