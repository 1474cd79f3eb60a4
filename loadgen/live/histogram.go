package live

import (
	"math"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// histogram is one request name's latency as a Prometheus histogram with
// both bucket layouts: the classic buckets (LatencyBuckets) that the text
// format carries, and the native (sparse, exponential) buckets that a
// scraper negotiating the protobuf format gets besides them. Both come
// from the same HDR histogram (µs), so they agree with run.json.
type histogram struct {
	desc   *prometheus.Desc
	labels []*dto.LabelPair
	h      *dto.Histogram
}

var _ prometheus.Metric = (*histogram)(nil)

// newHistogram converts h (µs; nil is empty) with sum seconds.
func newHistogram(desc *prometheus.Desc, h *hdr.Histogram, sum float64, labels ...string) *histogram {
	out := &dto.Histogram{
		SampleSum:     proto.Float64(sum),
		Schema:        proto.Int32(NativeSchema),
		ZeroThreshold: proto.Float64(prometheus.DefNativeHistogramZeroThreshold),
		ZeroCount:     proto.Uint64(0),
	}
	var bars []hdr.Bar
	if h != nil {
		bars = h.Distribution()
	}
	var count uint64
	k := 0
	for _, ub := range LatencyBuckets {
		for ; k < len(bars) && float64(bars[k].To)/1e6 <= ub; k++ {
			count += uint64(bars[k].Count)
		}
		out.Bucket = append(out.Bucket, &dto.Bucket{UpperBound: proto.Float64(ub), CumulativeCount: proto.Uint64(count)})
	}
	for ; k < len(bars); k++ {
		count += uint64(bars[k].Count)
	}
	out.SampleCount = proto.Uint64(count)
	// Native buckets: bucket i holds (2^((i-1)/8), 2^(i/8)] seconds. An HDR
	// bar goes where its highest equivalent value falls.
	var idx []int32
	counts := map[int32]int64{}
	for _, b := range bars {
		if b.Count == 0 {
			continue
		}
		i := nativeIndex(float64(b.To) / 1e6)
		if _, ok := counts[i]; !ok {
			idx = append(idx, i)
		}
		counts[i] += b.Count
	}
	var prev int64
	for j, i := range idx { // ascending: bars are in value order
		if j == 0 || i != idx[j-1]+1 {
			off := i
			if j > 0 {
				off = i - idx[j-1] - 1
			}
			out.PositiveSpan = append(out.PositiveSpan, &dto.BucketSpan{Offset: proto.Int32(off), Length: proto.Uint32(0)})
		}
		s := out.PositiveSpan[len(out.PositiveSpan)-1]
		s.Length = proto.Uint32(s.GetLength() + 1)
		out.PositiveDelta = append(out.PositiveDelta, counts[i]-prev)
		prev = counts[i]
	}
	if len(out.PositiveSpan) == 0 {
		// An empty native histogram still needs a span to be told from a
		// classic one (as client_golang writes it).
		out.PositiveSpan = []*dto.BucketSpan{{Offset: proto.Int32(0), Length: proto.Uint32(0)}}
	}
	return &histogram{desc: desc, labels: prometheus.MakeLabelPairs(desc, labels), h: out}
}

// nativeIndex is the native bucket (NativeSchema) of v > 0 seconds: the i
// with 2^((i-1)/8) < v ≤ 2^(i/8).
func nativeIndex(v float64) int32 {
	frac, exp := math.Frexp(v) // v = frac · 2^exp, frac in [0.5, 1)
	const per = 1 << NativeSchema
	// Buckets within [2^(exp-1), 2^exp): the one whose upper bound holds frac.
	j := int32(math.Ceil(math.Log2(frac) * per))
	return int32(exp)*per + j
}

func (h *histogram) Desc() *prometheus.Desc { return h.desc }

func (h *histogram) Write(m *dto.Metric) error {
	m.Label = h.labels
	m.Histogram = h.h
	return nil
}
