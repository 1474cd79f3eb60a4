package live

import (
	"math"
	"slices"
	"sort"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// latency is one request name's latency, cumulative, in both bucket
// layouts: kept up to date by Observe from each interval's HDR histogram
// (work proportional to its populated buckets), so that a scrape or a push
// copies a few counts and never walks a histogram under the lock the
// engine's interval hook takes.
type latency struct {
	classic []uint64        // per LatencyBuckets, not cumulative
	native  map[int32]int64 // native bucket index → count
	count   uint64
	sum     float64 // seconds
}

// add adds an interval's histogram (µs). A bucket of HDR values counts at
// its lowest equivalent value, as HDR reports it: a latency recorded
// exactly on a bound falls within it.
func (l *latency) add(p *hdr.PackedHistogram) {
	if l.native == nil {
		l.classic = make([]uint64, len(LatencyBuckets))
		l.native = map[int32]int64{}
	}
	for v, n := range p.ForEachBucket {
		s := float64(v) / 1e6
		if i := sort.SearchFloat64s(LatencyBuckets, s); i < len(LatencyBuckets) {
			l.classic[i] += uint64(n)
		}
		l.native[nativeIndex(s)] += n
		l.count += uint64(n)
	}
	l.sum += p.Mean() * float64(p.TotalCount()) / 1e6
}

// histogram is one request name's latency as a Prometheus histogram with
// both bucket layouts: the classic buckets (LatencyBuckets) that the text
// format carries, and the native (sparse, exponential) buckets that a
// scraper negotiating the protobuf format gets besides them. Both come
// from the same HDR data, so they agree with run.json.
type histogram struct {
	desc   *prometheus.Desc
	labels []*dto.LabelPair
	h      *dto.Histogram
}

var _ prometheus.Metric = (*histogram)(nil)

func newHistogram(desc *prometheus.Desc, l *latency, labels ...string) *histogram {
	out := &dto.Histogram{
		SampleCount:   proto.Uint64(l.count),
		SampleSum:     proto.Float64(l.sum),
		Schema:        proto.Int32(NativeSchema),
		ZeroThreshold: proto.Float64(prometheus.DefNativeHistogramZeroThreshold),
		ZeroCount:     proto.Uint64(0),
	}
	var cum uint64
	for i, ub := range LatencyBuckets {
		if i < len(l.classic) {
			cum += l.classic[i]
		}
		out.Bucket = append(out.Bucket, &dto.Bucket{UpperBound: proto.Float64(ub), CumulativeCount: proto.Uint64(cum)})
	}
	// Native buckets: bucket i holds (2^((i-1)/8), 2^(i/8)] seconds, in
	// spans of consecutive indexes, each count a delta from the last.
	idx := make([]int32, 0, len(l.native))
	for i := range l.native {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	var prev int64
	for j, i := range idx {
		if j == 0 || i != idx[j-1]+1 {
			off := i
			if j > 0 {
				off = i - idx[j-1] - 1
			}
			out.PositiveSpan = append(out.PositiveSpan, &dto.BucketSpan{Offset: proto.Int32(off), Length: proto.Uint32(0)})
		}
		s := out.PositiveSpan[len(out.PositiveSpan)-1]
		s.Length = proto.Uint32(s.GetLength() + 1)
		out.PositiveDelta = append(out.PositiveDelta, l.native[i]-prev)
		prev = l.native[i]
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
