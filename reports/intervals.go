package reports

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/loadcap/loadcap/loadgen"
)

// The intervals file (docs/ARCHITECTURE.md, "run.json"): a long run's
// seconds, streamed to disk as they close so that neither the generator's
// memory nor run.json grows with the run's length. It is gzip'd JSON
// lines: a header line {"schema":"loadcap.intervals/v1","id":...,
// "created":...}, then one line per second, each an Interval exactly as
// run.json's "intervals" holds it. The stream is flushed after every
// second, so a generator that dies mid-run leaves the seconds so far
// readable (zcat works; the last line may be cut).
const (
	IntervalsSchema = "loadcap.intervals/v1"
	// InlineIntervals is the longest run, in seconds, whose intervals
	// run.json embeds as it always did; a longer run's go to the
	// intervals file run.json references ("intervals_file").
	InlineIntervals = 3600
	// MaxReadIntervals is the most intervals a reader holds: a longer
	// run's seconds are folded, in order, into at most this many
	// intervals of equal length (Run.FoldS), so report and compare read a
	// run of any length in bounded memory.
	MaxReadIntervals = 3600
	// maxIntervalLine bounds one line of an intervals file.
	maxIntervalLine = 16 << 20
)

// IntervalsRef is run.json's "intervals_file": where the run's seconds
// are when it has too many to embed.
type IntervalsRef struct {
	Path   string `json:"path"` // a file name in run.json's directory
	Schema string `json:"schema"`
	ID     string `json:"id"`    // the file's header id: it belongs to this run
	Count  int    `json:"count"` // its seconds
}

type intervalsHeader struct {
	Schema  string `json:"schema"`
	ID      string `json:"id"`
	Created string `json:"created,omitempty"`
}

// IntervalsPath is where the intervals file of the run result at out
// goes: out without ".json", plus ".intervals".
func IntervalsPath(out string) string {
	return strings.TrimSuffix(out, ".json") + ".intervals"
}

// RemoveStaleIntervals removes the intervals file an earlier run left at
// out's place when run, just written to out, embeds its seconds: that
// file belonged to the run.json run replaced, and beside the new one it
// would pass for its seconds. A file there that is not an intervals file
// is left alone.
func RemoveStaleIntervals(out string, run *Run) {
	if out == "" || run.IntervalsFile != nil {
		return
	}
	path := IntervalsPath(out)
	f, err := os.Open(path)
	if err != nil {
		return
	}
	var h intervalsHeader
	if zr, err := gzip.NewReader(io.LimitReader(f, 1<<20)); err == nil {
		head, _ := bufio.NewReader(zr).ReadBytes('\n')
		_ = json.Unmarshal(head, &h)
	}
	f.Close()
	if h.Schema == IntervalsSchema {
		os.Remove(path)
	}
}

// IntervalStream writes a run's seconds to an intervals file as they
// close (Write is a loadgen interval hook). It writes to path+".partial"
// until the run's result is written (Run.AttachIntervals), which renames
// it into place when run.json references it and removes it otherwise.
// Safe for concurrent use.
type IntervalStream struct {
	mu            sync.Mutex
	path, partial string
	temp          bool
	f             *os.File
	zw            *gzip.Writer
	line          []byte
	hw            hdrWriter
	id            string
	n             int
	err           error // the first write error; the load goes on
	closed        bool
}

// CreateIntervalStream starts the intervals file for path (IntervalsPath
// of run.json); "" starts a temporary one, removed when the result is
// written (a run without --out: its report and summary still read every
// second, in bounded memory). It fails only when the file cannot be
// created; a write that fails is Err's, and the stream stops writing.
func CreateIntervalStream(path string) (*IntervalStream, error) {
	s := &IntervalStream{path: path, temp: path == "", hw: hdrWriter{stored: true}}
	var err error
	if s.temp {
		s.f, err = os.CreateTemp("", "loadcap-*.intervals.partial")
	} else {
		s.partial = path + ".partial"
		s.f, err = os.OpenFile(s.partial, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	}
	if err != nil {
		return nil, fmt.Errorf("intervals file: %w", err)
	}
	if s.temp {
		s.partial = s.f.Name()
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	s.id = hex.EncodeToString(id[:])
	s.zw, _ = gzip.NewWriterLevel(s.f, gzip.BestSpeed)
	h, _ := json.Marshal(intervalsHeader{Schema: IntervalsSchema, ID: s.id, Created: time.Now().UTC().Format(time.RFC3339)})
	// A header that cannot be written (a full disk) is kept as the
	// stream's error, as any later write's is: the load goes on, and
	// AttachIntervals falls back to the seconds in memory and removes the
	// file.
	s.writeLine(h)
	return s, nil
}

// writeLine writes one line and flushes it to the file, so that a crash
// loses at most the second being written.
func (s *IntervalStream) writeLine(b []byte) {
	if s.err != nil {
		return
	}
	b = append(b, '\n')
	if _, err := s.zw.Write(b); err != nil {
		s.err = err
		return
	}
	s.err = s.zw.Flush()
}

// Write appends one closed second.
func (s *IntervalStream) Write(iv loadgen.Interval) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ri := intervalOf(&s.hw, iv)
	if s.closed {
		return
	}
	var err error
	buf := bytes.NewBuffer(s.line[:0])
	enc := json.NewEncoder(buf)
	if err = enc.Encode(ri); err != nil {
		s.err = cmpErr(s.err, err)
		return
	}
	s.line = buf.Bytes()
	s.writeLine(bytes.TrimSuffix(s.line, []byte("\n")))
	s.n++
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// Err is the first write error, if any: the stream wrote nothing since.
func (s *IntervalStream) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Count is the number of seconds written.
func (s *IntervalStream) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// finish ends the gzip stream and syncs the file; no Write lands after.
func (s *IntervalStream) finish() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return s.err
	}
	s.closed = true
	s.err = cmpErr(s.err, s.zw.Close())
	s.err = cmpErr(s.err, s.f.Sync())
	s.err = cmpErr(s.err, s.f.Close())
	if s.err != nil {
		return fmt.Errorf("intervals file %s: %w", s.partial, s.err)
	}
	return nil
}

// Discard closes the stream and removes its file: for a run that ended
// without a result, and for a run whose result embeds its seconds.
func (s *IntervalStream) Discard() {
	_ = s.finish()
	os.Remove(s.partial)
}

// AttachIntervals ends s, the stream of r's seconds, and settles where
// they live: a run of up to InlineIntervals seconds embeds them in
// run.json (from earlier, the result's seconds still in memory when it
// held them all, loadgen.Result.Earlier = 0, else read back from s) and
// s's file goes; a longer run's file is renamed into place and r
// references it, holding the seconds folded (MaxReadIntervals) for the
// summary and the HTML report. A run without --out (a temporary stream)
// never references its file.
//
// When the stream could not be written (a full disk) or read back, the
// result is not lost: r keeps the seconds the result still held in memory
// (all of a short run's, the last minutes of a long one's) and says so in
// its IntervalsNote.
func (r *Run) AttachIntervals(s *IntervalStream, earlier int) {
	held := r.Intervals
	keepHeld := func(err error) {
		r.Intervals, r.FoldS, r.tally, r.IntervalsFile = held, 0, nil, nil
		if earlier > 0 {
			r.intervalsNote = fmt.Sprintf("%v: the run holds only its last %d seconds (from second %d)", err, len(held), earlier)
		}
	}
	if err := s.finish(); err != nil {
		os.Remove(s.partial)
		keepHeld(err)
		return
	}
	n := s.Count()
	if n <= InlineIntervals && earlier == 0 {
		s.Discard()
		return
	}
	path, ref := s.partial, IntervalsRef{Path: filepath.Base(s.path), Schema: IntervalsSchema, ID: s.id, Count: n}
	if n > InlineIntervals && !s.temp {
		if err := os.Rename(s.partial, s.path); err != nil {
			os.Remove(s.partial)
			keepHeld(fmt.Errorf("intervals file: %w", err))
			return
		}
		path = s.path
	} else {
		defer os.Remove(s.partial)
	}
	f, err := os.Open(path)
	if err != nil {
		keepHeld(fmt.Errorf("intervals file: %w", err))
		return
	}
	defer f.Close()
	v := &runCheck{file: path}
	r.Intervals = nil
	r.readIntervals(v, f, &ref, r.Totals.Lost)
	if err := v.err(); err != nil {
		// Unreferenced, the file cannot make run.json unreadable.
		keepHeld(fmt.Errorf("the intervals file does not read back: %w", err))
		return
	}
	if n > InlineIntervals && !s.temp {
		r.IntervalsFile = &ref
	}
}

// loadIntervalsFile reads the intervals file r references, checking it
// into v; name is run.json's path. A missing or cut file is not an error:
// the result stays readable, with a note (IntervalsNote) saying which
// seconds are missing.
func (r *Run) loadIntervalsFile(name string, v *runCheck, lost int64) {
	ref := r.IntervalsFile
	switch {
	case ref.Path == "" || ref.Path != filepath.Base(ref.Path) || ref.Path == "." || ref.Path == "..":
		v.add("intervals_file.path", "%q: want a file name in the run result's directory", ref.Path)
	case ref.Schema != IntervalsSchema:
		v.add("intervals_file.schema", "%q, want %q", ref.Schema, IntervalsSchema)
	case ref.Count < 0:
		v.add("intervals_file.count", "%d is negative", ref.Count)
	case len(r.Intervals) > 0:
		v.add("intervals", "%d seconds here and an intervals_file: a run result has one or the other", len(r.Intervals))
	}
	if v.err() != nil {
		return
	}
	path := filepath.Join(filepath.Dir(name), ref.Path)
	f, err := os.Open(path)
	if err != nil {
		r.intervalsNote = fmt.Sprintf("the per-second data (%s, %d seconds) cannot be read: %v", path, ref.Count, errors.Unwrap(err))
		return
	}
	defer f.Close()
	sv := &runCheck{file: path}
	r.readIntervals(sv, f, ref, lost)
	for _, e := range sv.errs {
		if len(v.errs) < maxRunProblems {
			v.errs = append(v.errs, e)
		}
	}
}

// readIntervals reads an intervals file whose reference is ref into r:
// checks every second as ParseRun checks embedded ones (problems into v,
// with the file's line), and keeps them folded to at most
// MaxReadIntervals. A file cut short (a crash, a copy interrupted) keeps
// the seconds it has and says so in r's IntervalsNote.
func (r *Run) readIntervals(v *runCheck, rd io.Reader, ref *IntervalsRef, lost int64) {
	fo := newFolder(ref.Count)
	chk := newIntervalCheck()
	if fo.per > 1 {
		chk.each = fo.addHist
	}
	reported := false
	n, cut := scanIntervals(v, rd, ref.ID, func(line int, iv *Interval) {
		if line-1 > ref.Count {
			return // counted (n), refused below, and not kept
		}
		v.line = line
		chk.check(v, fmt.Sprintf("intervals[%d]", line-2), iv)
		if fo.tooMany && !reported {
			v.add(fmt.Sprintf("intervals[%d].histograms", line-2), "more than %d request names across the seconds: not a run's intervals file", maxFoldNames)
			reported = true
		}
		v.line = 0
		if stalled(iv) {
			fo.stalled++
		}
		fo.add(iv)
	})
	if v.err() != nil {
		return
	}
	if n > ref.Count {
		v.add("", "%d seconds, more than the %d run.json counts (intervals_file.count)", n, ref.Count)
		return
	}
	chk.done(v, r.Totals, lost)
	r.Intervals = fo.finish()
	r.FoldS = fo.per
	r.tally = &tally{seconds: n, stalled: fo.stalled}
	switch {
	case cut != "":
		r.intervalsNote = fmt.Sprintf("the per-second data holds %d of the run's %d seconds: %s", n, ref.Count, cut)
	case n < ref.Count:
		r.intervalsNote = fmt.Sprintf("the per-second data holds %d of the run's %d seconds: the file ends early", n, ref.Count)
	}
}

// stalled tells whether the generator's host disturbed the second iv.
func stalled(iv *Interval) bool {
	return loadgen.HostStalled(time.Duration(iv.StallMs*1e6), iv.StealPct/100)
}

// scanIntervals reads the header and the seconds of an intervals file,
// calling fn with each second and its line number (the header is line
// 1). Broken lines are problems in v; a stream that ends inside a line or
// inside the gzip framing is cut (a non-empty reason), not a problem.
func scanIntervals(v *runCheck, rd io.Reader, id string, fn func(line int, iv *Interval)) (n int, cut string) {
	zr, err := gzip.NewReader(rd)
	if err != nil {
		v.add("", "not an intervals file (gzip'd JSON lines, %s): %v", IntervalsSchema, err)
		return 0, ""
	}
	zr.Multistream(false)
	br := bufio.NewReaderSize(zr, 64<<10)
	var buf []byte
	for line := 1; ; line++ {
		buf = buf[:0]
		var rerr error
		for {
			chunk, err := br.ReadSlice('\n')
			buf = append(buf, chunk...)
			if len(buf) > maxIntervalLine {
				v.line = line
				v.add("", "a line longer than %d MiB: not an intervals file", maxIntervalLine>>20)
				v.line = 0
				return n, ""
			}
			if !errors.Is(err, bufio.ErrBufferFull) {
				rerr = err
				break
			}
		}
		complete := len(buf) > 0 && buf[len(buf)-1] == '\n'
		if !complete {
			switch {
			case rerr == io.EOF && len(buf) == 0:
				if line == 1 {
					v.add("", "empty: no %s header", IntervalsSchema)
				}
				return n, ""
			case rerr == io.EOF || errors.Is(rerr, io.ErrUnexpectedEOF):
				return n, fmt.Sprintf("cut inside line %d (the generator stopped while writing it, or the file was copied in part)", line)
			case rerr != nil:
				v.line = line
				v.add("", "unreadable: %v", rerr)
				v.line = 0
				return n, ""
			}
		}
		v.line = line
		if line == 1 {
			var h intervalsHeader
			if err := json.Unmarshal(buf, &h); err != nil || h.Schema != IntervalsSchema {
				v.add("", "header: want {\"schema\":%q,...}", IntervalsSchema)
				v.line = 0
				return 0, ""
			}
			if h.ID != id {
				v.add("", "header id %q: this intervals file belongs to another run (run.json wants %q)", h.ID, id)
				v.line = 0
				return 0, ""
			}
			v.line = 0
			continue
		}
		var iv Interval
		if err := json.Unmarshal(buf, &iv); err != nil {
			v.add(fmt.Sprintf("intervals[%d]", line-2), "not an interval: %v", err)
			v.line = 0
			if len(v.errs) >= maxRunProblems {
				return n, ""
			}
			continue
		}
		v.line = 0
		n++
		fn(line, &iv)
		if rerr != nil && rerr != io.EOF {
			return n, fmt.Sprintf("cut after line %d", line)
		}
	}
}

// tally counts the seconds of a run read from an intervals file.
type tally struct{ seconds, stalled int }

// folder folds consecutive seconds into intervals of per seconds each:
// counts summed (add), per-name histograms merged bucket by bucket
// (addHist, exactly: the same buckets), the latency summary read off
// their sum.
type folder struct {
	per, stalled int
	out          []Interval
	cur          Interval
	in           int // seconds in cur
	hists        map[string]*hdr.PackedHistogram
	tooMany      bool // a name beyond maxFoldNames was not kept
	hw           hdrWriter
}

// maxFoldNames bounds the request names a folded read keeps a histogram
// for: a run has tens; a file with more is not one loadcap wrote, and
// must not take the reader's memory with it.
const maxFoldNames = 10_000

func newFolder(count int) *folder {
	per := max(1, (count+MaxReadIntervals-1)/MaxReadIntervals)
	return &folder{per: per, hists: map[string]*hdr.PackedHistogram{}}
}

func (f *folder) add(iv *Interval) {
	if f.per == 1 {
		f.out = append(f.out, *iv)
		return
	}
	c := &f.cur
	if f.in == 0 {
		*c = Interval{T: iv.T}
	}
	f.in++
	c.EndS = iv.EndS
	c.Scheduled += iv.Scheduled
	c.Sent += iv.Sent
	c.Completed += iv.Completed
	c.Failed += iv.Failed
	c.Dropped += iv.Dropped
	c.Inflight = iv.Inflight
	c.StallMs = max(c.StallMs, iv.StallMs)
	c.StealPct = max(c.StealPct, iv.StealPct)
	for k, n := range iv.Errors {
		if c.Errors == nil {
			c.Errors = map[string]int64{}
		}
		c.Errors[k] += n
	}
	if len(iv.Histograms) == 0 {
		// No histograms (an older writer): the worst second's figures.
		c.LatencyMs.Count += iv.LatencyMs.Count
		c.LatencyMs.P99 = max(c.LatencyMs.P99, iv.LatencyMs.P99)
		c.LatencyMs.Max = max(c.LatencyMs.Max, iv.LatencyMs.Max)
	}
	if f.in == f.per {
		f.flush()
	}
}

// addHist merges a second's histogram of name, which hr has just read
// (intervalCheck.each), into the step's.
func (f *folder) addHist(name string, g hdrGeom, hr *hdrReader) {
	h := f.hists[name]
	if h == nil {
		if len(f.hists) >= maxFoldNames {
			f.tooMany = true
			return
		}
		h = hdr.NewPacked(g.Lowest, g.Highest, g.Digits)
		f.hists[name] = h
	}
	_ = hr.walk(func(idx, n int64) bool {
		lo, _ := g.bucket(idx)
		_ = h.RecordValues(lo, n)
		return true
	})
}

func (f *folder) flush() {
	if f.in == 0 {
		return
	}
	c := &f.cur
	var all *hdr.PackedHistogram
	for name, h := range f.hists {
		if h.TotalCount() == 0 {
			continue
		}
		if all == nil {
			all = hdr.NewPacked(h.LowestTrackableValue(), h.HighestTrackableValue(), int(h.SignificantFigures()))
		}
		all.Merge(h)
		if c.Histograms == nil {
			c.Histograms = map[string]string{}
		}
		c.Histograms[name] = f.hw.encode(h)
		h.Reset()
	}
	if all != nil {
		ms := func(us int64) float64 { return float64(us) / 1000 }
		q := all.ValueAtPercentilesSlice([]float64{50, 90, 95, 99, 99.9})
		c.LatencyMs = Latency{Count: all.TotalCount(), Min: ms(all.Min()), Mean: round3(all.Mean() / 1000),
			P50: ms(q[0]), P90: ms(q[1]), P95: ms(q[2]), P99: ms(q[3]), P999: ms(q[4]), Max: ms(all.Max())}
	}
	f.out = append(f.out, *c)
	f.cur, f.in = Interval{}, 0
}

func (f *folder) finish() []Interval {
	f.flush()
	if f.out == nil {
		return []Interval{}
	}
	return f.out
}
