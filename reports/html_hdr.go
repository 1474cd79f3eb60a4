package reports

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// hdrReader reads a percentile straight off a V2-encoded HDR histogram (the
// base64 form of Interval.Histograms) without building the histogram: it
// inflates into buffers it keeps and walks the counts. A report reads
// thousands of per-second histograms, and building each one (a new zlib
// inflater, a histogram) costs most of the report's time. The values are
// those of hdrhistogram-go's ValueAtPercentile, which a test checks. A
// hdrReader is not safe for concurrent use.
type hdrReader struct {
	raw, payload []byte
	src          bytes.Reader
	z            io.ReadCloser
}

// The V2 format's constants: the cookies of the compressed and the plain
// encoding, and the plain header's size.
const (
	v2CompressedCookie = 0x1c849304
	v2Cookie           = 0x1c849303
	v2HeaderSize       = 40
	maxV2Payload       = 16 << 20
)

// hdrGeom is the geometry an encoded histogram declares: values from
// Lowest to Highest with Digits significant decimal digits. unit and half
// are its bucket layout: the first bucket holds 2^(half+1) sub-buckets of
// width 2^unit, each further bucket the upper half of that, twice as wide.
type hdrGeom struct {
	Lowest, Highest int64
	Digits          int
	unit, half      int
}

// read inflates the encoded histogram into r.payload and returns its
// geometry.
func (r *hdrReader) read(enc string) (g hdrGeom, err error) {
	r.raw, err = base64.StdEncoding.AppendDecode(r.raw[:0], []byte(enc))
	if err != nil {
		return g, err
	}
	if len(r.raw) < 8 || int32(binary.BigEndian.Uint32(r.raw))&^0xf0 != v2CompressedCookie {
		return g, errors.New("not a V2 compressed histogram")
	}
	n := binary.BigEndian.Uint32(r.raw[4:])
	if int64(n) > int64(len(r.raw)-8) {
		return g, errors.New("histogram truncated")
	}
	r.src.Reset(r.raw[8 : 8+n])
	if r.z == nil {
		if r.z, err = zlib.NewReader(&r.src); err != nil {
			return g, err
		}
	} else if err = r.z.(zlib.Resetter).Reset(&r.src, nil); err != nil {
		return g, err
	}
	var h [v2HeaderSize]byte
	if _, err := io.ReadFull(r.z, h[:]); err != nil {
		return g, fmt.Errorf("histogram header: %w", err)
	}
	if int32(binary.BigEndian.Uint32(h[0:]))&^0xf0 != v2Cookie {
		return g, errors.New("not a V2 histogram")
	}
	size := int32(binary.BigEndian.Uint32(h[4:]))
	digits := int32(binary.BigEndian.Uint32(h[12:]))
	g.Lowest = max(int64(binary.BigEndian.Uint64(h[16:])), 1)
	g.Highest = int64(binary.BigEndian.Uint64(h[24:]))
	if size < 0 || size > maxV2Payload || digits < 0 || digits > 5 {
		return g, fmt.Errorf("corrupt histogram header (payload %d, digits %d)", size, digits)
	}
	g.Digits = int(digits)
	if cap(r.payload) < int(size) {
		r.payload = make([]byte, size)
	}
	r.payload = r.payload[:size]
	if _, err := io.ReadFull(r.z, r.payload); err != nil {
		return g, fmt.Errorf("histogram payload: %w", err)
	}
	g.unit = bits.Len64(uint64(g.Lowest)) - 1
	largest := 2 * int64(math.Pow10(g.Digits))
	g.half = max(bits.Len64(uint64(largest-1)), 1) - 1
	return g, nil
}

// walk calls fn with the flat index and count of every populated bucket
// of the payload read last, in value order, until fn returns false.
func (r *hdrReader) walk(fn func(idx, count int64) bool) error { return walkPayload(r.payload, fn) }

// maxBucketIndex bounds a bucket's flat index: no geometry a V2 header can
// declare (5 digits, values up to 2⁶³) has more buckets, and a payload
// that skips past it would make its readers allocate for nothing.
const maxBucketIndex = 1 << 24

// walkPayload is walk over a V2 payload p.
func walkPayload(p []byte, fn func(idx, count int64) bool) error {
	var idx int64
	for b := p; len(b) > 0; {
		v, n := zigzag(b)
		if n == 0 {
			return errors.New("corrupt histogram payload")
		}
		b = b[n:]
		if v < 0 {
			if v < -maxBucketIndex || idx-v > maxBucketIndex {
				return errors.New("corrupt histogram payload: a run of empty buckets past the end")
			}
			idx -= v
			continue
		}
		if idx >= maxBucketIndex {
			return errors.New("corrupt histogram payload: more buckets than any histogram has")
		}
		if v > 0 && !fn(idx, v) {
			return nil
		}
		idx++
	}
	return nil
}

// countsLen is how many buckets a histogram of this geometry has, as
// hdrhistogram-go counts them: a payload's flat indexes stay below it.
func (g hdrGeom) countsLen() int64 {
	subBuckets := int64(1) << (g.half + 1)
	smallest := subBuckets << g.unit
	buckets := int64(1)
	for smallest <= g.Highest {
		if smallest > math.MaxInt64/2 {
			buckets++
			break
		}
		smallest <<= 1
		buckets++
	}
	return (buckets + 1) << g.half
}

// bucket returns the lowest and the highest value of the bucket at flat
// index idx: what a histogram iterates by, and what it reports for a
// percentile or a maximum there.
func (g hdrGeom) bucket(idx int64) (lo, hi int64) {
	bucket := idx>>g.half - 1
	sub := idx&(1<<g.half-1) + 1<<g.half
	if bucket < 0 {
		sub -= 1 << g.half
		bucket = 0
	}
	shift := bucket + int64(g.unit)
	return sub << shift, sub<<shift + 1<<shift - 1
}

// percentile returns the value at percentile p (0 < p ≤ 100) of the
// encoded histogram, in its unit (µs), and its count of values; 0, 0 when
// it is empty.
func (r *hdrReader) percentile(enc string, p float64) (value, total int64, err error) {
	g, err := r.read(enc)
	if err != nil {
		return 0, 0, err
	}
	if err := r.walk(func(_, c int64) bool { total += c; return true }); err != nil || total == 0 {
		return 0, 0, err
	}
	rank, cum := hdrRank(p, total), int64(0)
	err = r.walk(func(idx, c int64) bool {
		cum += c
		if cum < rank {
			return true
		}
		_, value = g.bucket(idx)
		return false
	})
	return value, total, err
}

// buckets calls fn with the lowest value and the count of every populated
// bucket of the encoded histogram, in value order, and returns its
// geometry.
func (r *hdrReader) buckets(enc string, fn func(value, count int64)) (hdrGeom, error) {
	g, err := r.read(enc)
	if err != nil {
		return g, err
	}
	return g, r.walk(func(idx, c int64) bool {
		lo, _ := g.bucket(idx)
		fn(lo, c)
		return true
	})
}

// zigzag reads one ZigZag LEB128 number of up to 9 bytes (the ninth
// carries 8 bits), as the V2 payload stores counts; n is 0 when b ends
// first.
func zigzag(b []byte) (v int64, n int) {
	var u uint64
	for i := 0; i < 9 && i < len(b); i++ {
		c := uint64(b[i])
		if i == 8 {
			u |= c << 56
			return int64(u>>1) ^ -int64(u&1), 9
		}
		u |= (c & 0x7f) << (7 * i)
		if c < 0x80 {
			return int64(u>>1) ^ -int64(u&1), i + 1
		}
	}
	return 0, 0
}

// index is the flat index of the bucket holding value v: the inverse of
// bucket.
func (g hdrGeom) index(v int64) int64 {
	mask := (int64(1)<<(g.half+1) - 1) << g.unit
	b := int64(64-bits.LeadingZeros64(uint64(v|mask))) - int64(g.unit) - int64(g.half+1)
	sub := v >> (b + int64(g.unit))
	return (b+1)<<g.half + sub - 1<<g.half
}

// geomOf is the geometry of a histogram from lowest to highest with
// digits significant digits.
func geomOf(lowest, highest int64, digits int) hdrGeom {
	g := hdrGeom{Lowest: max(lowest, 1), Highest: highest, Digits: digits}
	g.unit = bits.Len64(uint64(g.Lowest)) - 1
	largest := 2 * int64(math.Pow10(g.Digits))
	g.half = max(bits.Len64(uint64(largest-1)), 1) - 1
	return g
}

// hdrWriter encodes sparse histograms in the V2 compressed form (base64)
// that hdr.Decode and hdrReader read, reusing its zlib writer and buffers.
// hdrhistogram-go's own Encode builds a new best-compression zlib writer,
// about a megabyte, for every histogram: a soak's million per-second
// histograms spent most of their writing time clearing that memory. The
// zero value compresses best, for histograms stored as they are (run.json);
// stored (zlib.NoCompression) is for the intervals file, whose gzip
// compresses the uncompressed payloads better, and faster, than zlib can
// one small histogram at a time (a smaller file, and read twice as fast,
// in BenchmarkSoak). Not safe for concurrent use.
type hdrWriter struct {
	stored     bool
	inner, out []byte
	zb         bytes.Buffer
	zw         *zlib.Writer
}

// encode returns p's V2 compressed encoding.
func (w *hdrWriter) encode(p *hdr.PackedHistogram) string {
	g := geomOf(p.LowestTrackableValue(), p.HighestTrackableValue(), int(p.SignificantFigures()))
	w.inner = append(w.inner[:0], make([]byte, v2HeaderSize)...)
	next := int64(0)
	for value, count := range p.ForEachBucket {
		idx := g.index(value)
		switch gap := idx - next; {
		case gap == 1:
			w.inner = binary.AppendVarint(w.inner, 0)
		case gap > 1:
			w.inner = binary.AppendVarint(w.inner, -gap)
		}
		// AppendVarint is the V2 payload's ZigZag LEB128 for values
		// under 2⁵⁶ (the format's ninth byte differs only above).
		w.inner = binary.AppendVarint(w.inner, count)
		next = idx + 1
	}
	h := w.inner[:v2HeaderSize]
	binary.BigEndian.PutUint32(h[0:], uint32(v2Cookie|0x10))
	binary.BigEndian.PutUint32(h[4:], uint32(len(w.inner)-v2HeaderSize))
	binary.BigEndian.PutUint32(h[12:], uint32(g.Digits))
	binary.BigEndian.PutUint64(h[16:], uint64(g.Lowest))
	binary.BigEndian.PutUint64(h[24:], uint64(g.Highest))
	binary.BigEndian.PutUint64(h[32:], math.Float64bits(1))
	w.zb.Reset()
	if w.zw == nil {
		level := zlib.BestCompression
		if w.stored {
			level = zlib.NoCompression
		}
		w.zw, _ = zlib.NewWriterLevel(&w.zb, level)
	} else {
		w.zw.Reset(&w.zb)
	}
	_, _ = w.zw.Write(w.inner)
	_ = w.zw.Close()
	w.out = binary.BigEndian.AppendUint32(w.out[:0], uint32(v2CompressedCookie|0x10))
	w.out = binary.BigEndian.AppendUint32(w.out, uint32(w.zb.Len()))
	w.out = append(w.out, w.zb.Bytes()...)
	return base64.StdEncoding.EncodeToString(w.out)
}
