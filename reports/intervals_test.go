package reports

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/scenarios"
)

// soak drives a real Recorder through secs synthetic seconds of names
// request names, perName requests each per second (log-normal latency
// around a few ms), streaming every closed second to s and keeping the
// last keep in memory, as `loadcap run` does. It returns the result.
func soak(tb testing.TB, s *IntervalStream, names, perName, secs, keep int, onSecond func(int)) *loadgen.Result {
	tb.Helper()
	series := make([]loadgen.Series, names)
	for i := range series {
		series[i] = loadgen.Series{Scenario: "soak", Name: "r" + string(rune('a'+i/26)) + string(rune('a'+i%26))}
	}
	rec := loadgen.NewRecorder(series, 0)
	rec.Retain(keep)
	rng := rand.New(rand.NewPCG(7, 17))
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	rec.Start(t0)
	var o loadgen.Outcome
	for sec := range secs {
		base := t0.Add(time.Duration(sec) * time.Second)
		for j := range names {
			for k := range perName {
				at := base.Add(time.Duration(k) * time.Second / time.Duration(perName))
				lat := time.Duration(float64(2+j%5) * float64(time.Millisecond) * (0.5 + rng.ExpFloat64()))
				rec.Scheduled(1)
				rec.Sent(j, k, at)
				o = loadgen.Outcome{Name: j, Latency: lat, Service: lat, Status: 200, BytesSent: 100, BytesRecv: 500, End: at.Add(lat)}
				rec.Record(k, &o)
			}
		}
		iv := rec.Rotate(base.Add(time.Second))
		if s != nil {
			s.Write(iv)
		}
		if onSecond != nil {
			onSecond(sec)
		}
	}
	res := rec.Result()
	res.Started, res.Ended, res.Duration = t0, t0.Add(time.Duration(secs)*time.Second), time.Duration(secs)*time.Second
	res.Status = loadgen.StatusPassed
	return res
}

// writeSoak runs soak into dir/run.json through the path `loadcap run`
// takes: the stream, NewRun, AttachIntervals, WriteFile.
func writeSoak(t *testing.T, dir string, secs int) (*loadgen.Result, string) {
	t.Helper()
	out := filepath.Join(dir, "run.json")
	s, err := CreateIntervalStream(IntervalsPath(out))
	if err != nil {
		t.Fatal(err)
	}
	res := soak(t, s, 3, 4, secs, 50, nil)
	run := NewRun(res, Meta{Version: "test"})
	run.AttachIntervals(s, res.Earlier)
	if err := run.WriteFile(out); err != nil {
		t.Fatal(err)
	}
	return res, out
}

func TestIntervalsFile(t *testing.T) {
	t.Run("an hour or less stays embedded, no file left", func(t *testing.T) {
		dir := t.TempDir()
		_, out := writeSoak(t, dir, 120)
		r, err := ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if r.IntervalsFile != nil || len(r.Intervals) != 120 {
			t.Fatalf("intervals_file %+v, %d embedded seconds; want none and 120", r.IntervalsFile, len(r.Intervals))
		}
		if r.Intervals[0].T != 0 || r.Intervals[119].T != 119 {
			t.Errorf("seconds %d..%d, want 0..119 (read back from the stream, the recorder kept only 50-100)", r.Intervals[0].T, r.Intervals[119].T)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 1 {
			t.Errorf("files left beside run.json: %v", ents)
		}
	})

	dir := t.TempDir()
	const secs = InlineIntervals + 250
	res, out := writeSoak(t, dir, secs)
	t.Run("a long run references its file and reads back folded", func(t *testing.T) {
		raw, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		var probe struct {
			Intervals     []json.RawMessage `json:"intervals"`
			IntervalsFile *IntervalsRef     `json:"intervals_file"`
		}
		if err := json.Unmarshal(raw, &probe); err != nil {
			t.Fatal(err)
		}
		if len(probe.Intervals) != 0 || probe.IntervalsFile == nil || probe.IntervalsFile.Path != "run.intervals" || probe.IntervalsFile.Count != secs {
			t.Fatalf("run.json: %d embedded seconds, intervals_file %+v; want none and run.intervals with %d", len(probe.Intervals), probe.IntervalsFile, secs)
		}
		r, err := ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := r.Seconds(); n != secs || r.FoldS != 2 || len(r.Intervals) != (secs+1)/2 {
			t.Fatalf("read %d seconds as %d intervals of %d s; want %d as %d of 2", n, len(r.Intervals), r.FoldS, secs, (secs+1)/2)
		}
		// Folding loses nothing: the counts and every name's histogram
		// add up to the run's.
		var done int64
		sums := map[string]*hdr.Histogram{}
		for _, iv := range r.Intervals {
			done += iv.Completed
			for name, enc := range iv.Histograms {
				h, err := hdr.Decode([]byte(enc))
				if err != nil {
					t.Fatal(err)
				}
				if sums[name] == nil {
					sums[name] = hist()
				}
				sums[name].Merge(h)
			}
		}
		if done != res.Totals.Completed {
			t.Errorf("the folded seconds complete %d, the run %d", done, res.Totals.Completed)
		}
		for _, q := range res.Requests {
			if got := sums[q.Name]; got == nil || !got.Equals(q.Latency) {
				t.Errorf("%s: the folded histograms do not add up to the run's", q.Name)
			}
		}
		if _, err := Compare(r, r, nil); err != nil {
			t.Errorf("compare with itself: %v", err)
		}
		var sum bytes.Buffer
		if err := WriteSummary(&sum, r); err != nil {
			t.Fatal(err)
		}
	})

	intervals := filepath.Join(dir, "run.intervals")
	whole, err := os.ReadFile(intervals)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("a cut file leaves the run readable, with a note", func(t *testing.T) {
		cut := t.TempDir()
		copyFile(t, out, filepath.Join(cut, "run.json"))
		if err := os.WriteFile(filepath.Join(cut, "run.intervals"), whole[:len(whole)*2/3], 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := ReadFile(filepath.Join(cut, "run.json"))
		if err != nil {
			t.Fatalf("a cut intervals file made the run unreadable: %v", err)
		}
		n, _ := r.Seconds()
		if n == 0 || n >= secs || !strings.Contains(r.IntervalsNote(), "of the run's") {
			t.Errorf("read %d of %d seconds, note %q", n, secs, r.IntervalsNote())
		}
		os.Remove(filepath.Join(cut, "run.intervals"))
		r, err = ReadFile(filepath.Join(cut, "run.json"))
		if err != nil || r.IntervalsNote() == "" {
			t.Errorf("a missing intervals file: %v, note %q", err, r.IntervalsNote())
		}
	})
	t.Run("a broken second is refused with the file and line", func(t *testing.T) {
		lines := strings.Split(string(gunzip(t, whole)), "\n")
		lines[5] = `{"t": "five"}`
		bad := t.TempDir()
		copyFile(t, out, filepath.Join(bad, "run.json"))
		writeGzip(t, filepath.Join(bad, "run.intervals"), strings.Join(lines, "\n"))
		_, err := ReadFile(filepath.Join(bad, "run.json"))
		var es scenarios.Errors
		if !errors.As(err, &es) || es[0].File != filepath.Join(bad, "run.intervals") || es[0].Line != 6 {
			t.Fatalf("error %v, want scenarios.Errors at run.intervals:6", err)
		}
	})
	t.Run("a file with more request names than a run has is refused", func(t *testing.T) {
		// Every second's histograms renamed apart: more names than
		// maxFoldNames in all, which the reader must not keep.
		lines := strings.Split(string(gunzip(t, whole)), "\n")
		renamed := 0
		for i := 1; i < len(lines) && lines[i] != ""; i++ {
			var iv map[string]any
			if err := json.Unmarshal([]byte(lines[i]), &iv); err != nil {
				t.Fatal(err)
			}
			hs, _ := iv["histograms"].(map[string]any)
			apart := map[string]any{}
			for name, h := range hs {
				apart[fmt.Sprintf("%s-%d", name, i)] = h
				renamed++
			}
			iv["histograms"] = apart
			b, _ := json.Marshal(iv)
			lines[i] = string(b)
		}
		if renamed <= maxFoldNames {
			t.Fatalf("%d names: too few to test the bound", renamed)
		}
		bad := t.TempDir()
		copyFile(t, out, filepath.Join(bad, "run.json"))
		writeGzip(t, filepath.Join(bad, "run.intervals"), strings.Join(lines, "\n"))
		_, err := ReadFile(filepath.Join(bad, "run.json"))
		var es scenarios.Errors
		if !errors.As(err, &es) || es[0].File != filepath.Join(bad, "run.intervals") || es[0].Line == 0 ||
			!strings.Contains(es[0].Msg, "more than 10000 request names") {
			t.Fatalf("error %v, want the file, a line and the bound on names", err)
		}
	})
	t.Run("seconds beyond the run's count are refused", func(t *testing.T) {
		lines := strings.Split(strings.TrimRight(string(gunzip(t, whole)), "\n"), "\n")
		lines = append(lines, lines[1:]...) // twice the seconds run.json counts
		bad := t.TempDir()
		copyFile(t, out, filepath.Join(bad, "run.json"))
		writeGzip(t, filepath.Join(bad, "run.intervals"), strings.Join(lines, "\n")+"\n")
		_, err := ReadFile(filepath.Join(bad, "run.json"))
		var es scenarios.Errors
		if !errors.As(err, &es) || !strings.Contains(es.Error(), "more than the") {
			t.Fatalf("error %v, want the seconds beyond the count refused", err)
		}
	})
	t.Run("a short run in a long run's place removes its stale file", func(t *testing.T) {
		again := t.TempDir()
		copyFile(t, out, filepath.Join(again, "run.json"))
		copyFile(t, intervals, filepath.Join(again, "run.intervals"))
		_, short := writeSoak(t, again, 30) // as loadcap run writes over the earlier result
		r, err := ReadFile(short)
		if err != nil {
			t.Fatal(err)
		}
		RemoveStaleIntervals(short, r)
		if _, err := os.Stat(filepath.Join(again, "run.intervals")); !os.IsNotExist(err) {
			t.Errorf("the long run's run.intervals is still beside the short run's run.json (%v)", err)
		}
		// A file of that name that is no intervals file is not ours to remove.
		other := filepath.Join(again, "run.intervals")
		if err := os.WriteFile(other, []byte("my notes\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		RemoveStaleIntervals(short, r)
		if _, err := os.Stat(other); err != nil {
			t.Errorf("a file that is not an intervals file was removed: %v", err)
		}
		// A long run's own file stays.
		long, err := ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		RemoveStaleIntervals(out, long)
		if _, err := os.Stat(intervals); err != nil {
			t.Errorf("a long run's own intervals file was removed: %v", err)
		}
	})
	t.Run("another run's file is refused", func(t *testing.T) {
		other := t.TempDir()
		_, otherOut := writeSoak(t, other, InlineIntervals+1)
		copyFile(t, out, filepath.Join(other, "run.json"))
		_, err := ReadFile(filepath.Join(other, "run.json"))
		if err == nil || !strings.Contains(err.Error(), "belongs to another run") {
			t.Fatalf("error %v, want the header id refused", err)
		}
		_ = otherOut
	})
}

// A generator that dies mid-run leaves the seconds so far readable: the
// stream is flushed after every second.
func TestIntervalStreamSurvivesACrash(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "run.intervals")
	s, err := CreateIntervalStream(path)
	if err != nil {
		t.Fatal(err)
	}
	soak(t, s, 2, 3, 7, 0, nil) // then no finish: the process "dies"
	f, err := os.Open(path + ".partial")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v := &runCheck{file: f.Name()}
	n, cut := scanIntervals(v, f, s.id, func(int, *Interval) {})
	if v.err() != nil || n != 7 || cut == "" {
		t.Fatalf("read %d seconds (cut %q, err %v) of a stream never closed; want 7, cut", n, cut, v.err())
	}
	s.Discard()
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func gunzip(t testing.TB, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := out.ReadFrom(zr); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func writeGzip(t testing.TB, path, text string) {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(text))
	zw.Close()
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// An intervals file that cannot be written (a full disk) costs the run
// its early seconds, not its result.
func TestIntervalStreamFailureKeepsTheResult(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "run.json")
	s, err := CreateIntervalStream(IntervalsPath(out))
	if err != nil {
		t.Fatal(err)
	}
	s.f.Close() // every write from now on fails
	res := soak(t, s, 2, 3, 200, 50, nil)
	run := NewRun(res, Meta{Version: "test"})
	run.AttachIntervals(s, res.Earlier)
	if !strings.Contains(run.IntervalsNote(), "only its last") {
		t.Errorf("note %q, want it to say only the last seconds are kept", run.IntervalsNote())
	}
	if err := run.WriteFile(out); err != nil {
		t.Fatal(err)
	}
	r, err := ReadFile(out)
	if err != nil {
		t.Fatalf("the result written without its early seconds does not read: %v", err)
	}
	if r.Totals.Completed != 200*2*3 || len(r.Intervals) == 0 || r.Intervals[0].T != res.Earlier {
		t.Errorf("completed %d, %d seconds from %d", r.Totals.Completed, len(r.Intervals), r.Intervals[0].T)
	}
	if _, err := os.Stat(IntervalsPath(out) + ".partial"); err == nil {
		t.Errorf("the broken stream's file is left behind")
	}
}
