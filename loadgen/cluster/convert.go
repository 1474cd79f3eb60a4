package cluster

import (
	"fmt"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/loadgen/cluster/clusterpb"
)

// encodeInterval turns an engine's snapshot into its wire form.
func encodeInterval(s *loadgen.Snapshot) *clusterpb.Interval {
	iv := &clusterpb.Interval{
		T: int32(s.T), EndNanos: int64(s.End), Scheduled: s.Scheduled, Dropped: s.Dropped, Late: s.Late,
		MaxLagNanos: int64(s.MaxLag), Inflight: s.Inflight, BusyNanos: int64(s.Busy),
		Vus: int32(s.VUs), PeakVus: int32(s.PeakVUs), StallNanos: int64(s.Stall), Steal: s.Steal,
		Series: make([]*clusterpb.SeriesDelta, len(s.Series)),
	}
	for j := range s.Series {
		sd := &s.Series[j]
		d := &clusterpb.SeriesDelta{
			Sent: sd.Sent, Completed: sd.Completed, Failed: sd.Failed,
			BytesSent: sd.BytesSent, BytesRecv: sd.BytesRecv,
			ServiceSumNanos: int64(sd.ServiceSum), LatencySumNanos: int64(sd.LatencySum),
			Classes:      sd.Classes[:],
			ErrorSamples: sd.ErrorSamples,
		}
		if len(sd.StatusCodes) > 0 {
			d.StatusCodes = make(map[int32]int64, len(sd.StatusCodes))
			for c, n := range sd.StatusCodes {
				d.StatusCodes[int32(c)] = n
			}
		}
		d.Latency, d.Service = encodeHist(sd.Latency), encodeHist(sd.Service)
		iv.Series[j] = d
	}
	return iv
}

// encodeHist lists h's populated buckets; nil for an empty histogram.
func encodeHist(h *hdr.PackedHistogram) *clusterpb.Histogram {
	if h == nil || h.TotalCount() == 0 {
		return nil
	}
	n := h.Populated()
	w := &clusterpb.Histogram{
		Lowest: h.LowestTrackableValue(), Highest: h.HighestTrackableValue(), Digits: int32(h.SignificantFigures()),
		ValueDeltas: make([]int64, 0, n), Counts: make([]int64, 0, n),
	}
	var prev int64
	for v, c := range h.ForEachBucket {
		w.ValueDeltas = append(w.ValueDeltas, v-prev)
		w.Counts = append(w.Counts, c)
		prev = v
	}
	return w
}

// decodeInterval is encodeInterval's inverse; nseries is the number of
// series the file has.
func decodeInterval(iv *clusterpb.Interval, nseries int) (*loadgen.Snapshot, error) {
	if len(iv.Series) != nseries {
		return nil, fmt.Errorf("interval %d holds %d series, the scenario has %d", iv.T, len(iv.Series), nseries)
	}
	s := &loadgen.Snapshot{
		T: int(iv.T), End: time.Duration(iv.EndNanos), Scheduled: iv.Scheduled, Dropped: iv.Dropped, Late: iv.Late,
		MaxLag: time.Duration(iv.MaxLagNanos), Inflight: iv.Inflight, Busy: time.Duration(iv.BusyNanos),
		VUs: int(iv.Vus), PeakVUs: int(iv.PeakVus), Stall: time.Duration(iv.StallNanos), Steal: iv.Steal,
		Series: make([]loadgen.SeriesDelta, nseries),
	}
	for j, d := range iv.Series {
		sd := &s.Series[j]
		*sd = loadgen.SeriesDelta{
			Sent: d.Sent, Completed: d.Completed, Failed: d.Failed,
			BytesSent: d.BytesSent, BytesRecv: d.BytesRecv,
			ServiceSum: time.Duration(d.ServiceSumNanos), LatencySum: time.Duration(d.LatencySumNanos),
			ErrorSamples: d.ErrorSamples,
		}
		if len(d.Classes) > loadgen.NumClasses {
			return nil, fmt.Errorf("interval %d: %d error classes, loadcap knows %d", iv.T, len(d.Classes), loadgen.NumClasses)
		}
		copy(sd.Classes[:], d.Classes)
		if len(d.StatusCodes) > 0 {
			sd.StatusCodes = make(map[int]int64, len(d.StatusCodes))
			for c, n := range d.StatusCodes {
				sd.StatusCodes[int(c)] = n
			}
		}
		var err error
		if sd.LatencyBuckets, err = decodeHist(d.Latency); err != nil {
			return nil, fmt.Errorf("interval %d: latency: %w", iv.T, err)
		}
		if sd.ServiceBuckets, err = decodeHist(d.Service); err != nil {
			return nil, fmt.Errorf("interval %d: service time: %w", iv.T, err)
		}
	}
	return s, nil
}

// decodeHist turns a histogram's wire form into its bucket list, refusing
// geometry a loadcap agent does not send and buckets out of order or out
// of range. It reuses w's slices (the values are summed from their deltas
// in place): w is not read again. The merger adds the buckets to its own
// histograms, so no sparse histogram is built for a snapshot
// (BenchmarkCoordinatorSecond: building 4,000 a second cost more than the
// rest of the merge).
func decodeHist(w *clusterpb.Histogram) (*loadgen.Buckets, error) {
	if w == nil {
		return nil, nil
	}
	if w.Digits < 1 || w.Digits > 5 || w.Lowest < 1 || w.Highest < 2*w.Lowest || w.Highest > int64(24*time.Hour/time.Microsecond) {
		return nil, fmt.Errorf("histogram geometry %d..%d with %d digits", w.Lowest, w.Highest, w.Digits)
	}
	if len(w.ValueDeltas) != len(w.Counts) {
		return nil, fmt.Errorf("histogram with %d values and %d counts", len(w.ValueDeltas), len(w.Counts))
	}
	values := w.ValueDeltas
	var v int64
	for i, d := range values {
		if d < 0 || (i > 0 && d == 0) {
			return nil, fmt.Errorf("histogram values not ascending")
		}
		v += d
		if v > w.Highest {
			return nil, fmt.Errorf("histogram value %d above its highest, %d", v, w.Highest)
		}
		if w.Counts[i] < 0 {
			return nil, fmt.Errorf("histogram count %d at %d", w.Counts[i], v)
		}
		values[i] = v
	}
	return &loadgen.Buckets{Values: values, Counts: w.Counts}, nil
}

func encodeFinal(f loadgen.Final) *clusterpb.Final {
	t := f.Totals
	return &clusterpb.Final{
		Status: f.Status, AbortCause: f.AbortCause, AbortReason: f.AbortReason,
		Scheduled: t.Scheduled, Sent: t.Sent, Completed: t.Completed, Failed: t.Failed, Dropped: t.Dropped,
		InflightAtStop: t.InflightAtStop, BytesSent: t.BytesSent, BytesRecv: t.BytesRecv,
		Late: t.Late, MaxLagNanos: int64(t.MaxLag), DurationNanos: int64(f.Duration), MaxVus: int32(f.MaxVUs),
	}
}

func decodeFinal(f *clusterpb.Final) loadgen.Final {
	return loadgen.Final{
		Status: f.Status, AbortCause: f.AbortCause, AbortReason: f.AbortReason,
		Totals: loadgen.Totals{
			Scheduled: f.Scheduled, Sent: f.Sent, Completed: f.Completed, Failed: f.Failed, Dropped: f.Dropped,
			InflightAtStop: f.InflightAtStop, BytesSent: f.BytesSent, BytesRecv: f.BytesRecv,
			Late: f.Late, MaxLag: time.Duration(f.MaxLagNanos),
		},
		Duration: time.Duration(f.DurationNanos),
		MaxVUs:   int(f.MaxVus),
	}
}
