package loadgen

import (
	"fmt"
	"math/big"
	"sort"
	"strings"
	"sync"

	"go.k6.io/k6/lib"
)

// MaxSegmentLCD bounds the least common denominator of a segment sequence:
// the striping cycle k6 precomputes has that many entries.
const MaxSegmentLCD = 1 << 20

// Segment is the part of a run one engine takes when several engines split
// it, in k6's execution segments: the segment "1/3:2/3" of the sequence
// "0,1/3,2/3,1".
//
//   - Open model: the engine sends arrival i of a scenario's schedule only
//     when the sequence's striping gives index i to its segment
//     (ExecutionTuple.GetStripedOffsets). Over all the segments of a
//     sequence the arrivals are exactly the single-process schedule:
//     nothing twice, nothing lost, whatever their number.
//   - Closed model: the planned number of VUs at every moment is scaled by
//     ExecutionTuple.ScaleInt64, whose values over all segments add up to
//     the unscaled one exactly. preAllocatedVUs and maxVUs of the open model
//     are scaled the same way, to at least 1.
//   - Replay: record i of the source goes to the segment that owns index i
//     (SegmentReplay).
//
// A nil *Segment is the whole run. A Segment is immutable and safe for
// concurrent use.
type Segment struct {
	tuple *lib.ExecutionTuple
	seq   string
	cycle []int64 // indices this segment owns in [0, lcd), ascending
	lcd   int64
}

// NewSegment parses a segment ("1/3:2/3", "0.5:1", "50%:100%") of a sequence
// ("0,1/3,2/3,1"; "" fills the sequence around the segment, as k6 does).
func NewSegment(segment, sequence string) (*Segment, error) {
	es, err := lib.NewExecutionSegmentFromString(segment)
	if err != nil {
		return nil, fmt.Errorf("execution segment %q: %w", segment, err)
	}
	var seq lib.ExecutionSegmentSequence
	if sequence != "" {
		if seq, err = lib.NewExecutionSegmentSequenceFromString(sequence); err != nil {
			return nil, fmt.Errorf("execution segment sequence %q: %w", sequence, err)
		}
	}
	filled := lib.GetFilledExecutionSegmentSequence(&seq, es)
	if err := checkLCD(filled); err != nil {
		return nil, err
	}
	tuple, err := lib.NewExecutionTuple(es, &filled)
	if err != nil {
		return nil, fmt.Errorf("execution segment %q of %q: %w", segment, sequence, err)
	}
	start, offsets, lcd := tuple.GetStripedOffsets()
	s := &Segment{tuple: tuple, seq: filled.String(), lcd: lcd}
	for i, p := 0, start; i < len(offsets); i++ {
		s.cycle = append(s.cycle, p)
		p += offsets[i]
	}
	return s, nil
}

// checkLCD refuses sequences whose striping cycle k6 could not precompute in
// reasonable time and memory.
func checkLCD(seq lib.ExecutionSegmentSequence) error {
	lcd := big.NewInt(1)
	prev := new(big.Rat)
	for i, p := range strings.Split(seq.String(), ",") {
		r, ok := new(big.Rat).SetString(p)
		if !ok {
			return fmt.Errorf("execution segment sequence %q: bad point %q", seq, p)
		}
		if i > 0 {
			d := new(big.Rat).Sub(r, prev).Denom()
			g := new(big.Int).GCD(nil, nil, lcd, d)
			lcd.Mul(lcd, new(big.Int).Quo(d, g))
			if lcd.Cmp(big.NewInt(MaxSegmentLCD)) > 0 {
				return fmt.Errorf("execution segment sequence %q: its common denominator is over %d; use simpler fractions", seq, MaxSegmentLCD)
			}
		}
		prev = r
	}
	return nil
}

// Segments splits a run into n segments: the sequence 0,1/n,...,1 when
// sequence is "", else the given sequence, which must cover 0 to 1 in
// exactly n segments.
func Segments(sequence string, n int) ([]*Segment, error) {
	if n < 1 {
		return nil, fmt.Errorf("split a run into %d segments: need at least 1", n)
	}
	if sequence == "" {
		pts := make([]string, n+1)
		for i := range pts {
			pts[i] = big.NewRat(int64(i), int64(n)).RatString()
		}
		sequence = strings.Join(pts, ",")
	}
	seq, err := lib.NewExecutionSegmentSequenceFromString(sequence)
	if err != nil {
		return nil, fmt.Errorf("execution segment sequence %q: %w", sequence, err)
	}
	if !seq.IsFull() {
		return nil, fmt.Errorf("execution segment sequence %q must start at 0 and end at 1", sequence)
	}
	if len(seq) != n {
		return nil, fmt.Errorf("execution segment sequence %q has %d segments for %d agents", sequence, len(seq), n)
	}
	out := make([]*Segment, n)
	for i, es := range seq {
		if out[i], err = NewSegment(es.String(), seq.String()); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// String returns the segment as "from:to" ("1/3:2/3"); "0:1" for nil.
func (s *Segment) String() string {
	if s == nil {
		return "0:1"
	}
	return s.tuple.Segment.String()
}

// Sequence returns the full sequence the segment belongs to ("0,1/3,2/3,1").
func (s *Segment) Sequence() string {
	if s == nil {
		return "0,1"
	}
	return s.seq
}

// Share is the segment's length: the fraction of the run's load it takes.
func (s *Segment) Share() float64 {
	if s == nil {
		return 1
	}
	return s.tuple.Segment.FloatLength()
}

// Scale returns the segment's part of n (ExecutionTuple.ScaleInt64): over
// all segments of the sequence the parts add up to n exactly.
func (s *Segment) Scale(n int64) int64 {
	if s == nil {
		return n
	}
	return s.tuple.ScaleInt64(n)
}

// Owns reports whether index i (an arrival, a replay record) belongs to
// the segment.
func (s *Segment) Owns(i int64) bool {
	if s == nil {
		return true
	}
	c := i % s.lcd
	k := sort.Search(len(s.cycle), func(k int) bool { return s.cycle[k] >= c })
	return k < len(s.cycle) && s.cycle[k] == c
}

// scaleVUs is Scale for a VU count that must stay at least 1 when it was.
func (s *Segment) scaleVUs(n int) int {
	if s == nil || n <= 0 {
		return n
	}
	return max(1, int(s.Scale(int64(n))))
}

// stripe iterates over the indices a segment owns, ascending. Used by one
// goroutine.
type stripe struct {
	s   *Segment
	lap int64
	k   int
}

// next returns the next owned index.
func (st *stripe) next() int64 {
	if st.s == nil {
		i := st.lap
		st.lap++
		return i
	}
	i := st.lap*st.s.lcd + st.s.cycle[st.k]
	if st.k++; st.k == len(st.s.cycle) {
		st.k, st.lap = 0, st.lap+1
	}
	return i
}

// ReplaySkipper is an optional capability of a ReplaySource: Skip passes
// over the next n items as if Next and Release had been called on each,
// cheaper. It returns how many it passed, fewer when a timed recording
// ended or the source failed.
type ReplaySkipper interface {
	Skip(n int64) int64
}

// SegmentReplay returns a source that hands out only the items of src that
// seg owns, counted by their position in src's order (0, 1, 2, ...), so that
// engines given the same recording and the segments of one sequence replay
// it without overlap or gap. The engine applies it itself when given both
// WithSegment and WithReplay: give it the whole recording. Next is
// serialized; src's items are passed over with Skip when src has it, else
// with Next and Release.
func SegmentReplay(src ReplaySource, seg *Segment) ReplaySource {
	if seg == nil {
		return src
	}
	r := &segmentReplay{src: src, st: stripe{s: seg}}
	r.sk, _ = src.(ReplaySkipper)
	return r
}

type segmentReplay struct {
	src ReplaySource
	sk  ReplaySkipper

	mu  sync.Mutex
	st  stripe
	pos int64 // index of the next item src hands out
}

func (r *segmentReplay) Next() (*ReplayItem, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	want := r.st.next()
	if gap := want - r.pos; gap > 0 {
		if r.sk != nil {
			n := r.sk.Skip(gap)
			r.pos += n
			if n < gap {
				return nil, false
			}
		} else {
			for ; r.pos < want; r.pos++ {
				it, ok := r.src.Next()
				if !ok {
					return nil, false
				}
				r.src.Release(it)
			}
		}
	}
	it, ok := r.src.Next()
	if ok {
		r.pos++
	}
	return it, ok
}

func (r *segmentReplay) Release(it *ReplayItem) { r.src.Release(it) }
