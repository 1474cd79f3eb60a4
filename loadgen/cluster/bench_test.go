package cluster

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
	"google.golang.org/protobuf/proto"

	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/loadgen/cluster/clusterpb"
)

// benchSnapshot is one second of 10 series, 1000 requests each, latencies
// spread over 50 µs - 20 ms.
func benchSnapshot() *loadgen.Snapshot {
	rng := rand.New(rand.NewPCG(1, 1))
	s := &loadgen.Snapshot{T: 7, End: 8 * time.Second, Scheduled: 10000, Series: make([]loadgen.SeriesDelta, 10)}
	for j := range s.Series {
		lat, svc := hdr.NewPacked(1, 91_000_000, 3), hdr.NewPacked(1, 91_000_000, 3)
		for range 1000 {
			v := int64(50 + rng.IntN(20000))
			_ = lat.RecordValue(v)
			_ = svc.RecordValue(v / 2)
		}
		s.Series[j] = loadgen.SeriesDelta{Sent: 1000, Completed: 1000, Latency: lat, Service: svc, StatusCodes: map[int]int64{200: 1000}}
	}
	return s
}

// BenchmarkSnapshotWire is an agent's per-second cost of encoding a
// snapshot and the coordinator's of decoding it; size is the wire bytes.
func BenchmarkSnapshotWire(b *testing.B) {
	s := benchSnapshot()
	iv := encodeInterval(s)
	wire, _ := proto.Marshal(&clusterpb.Snapshot{Kind: &clusterpb.Snapshot_Interval{Interval: iv}})
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			iv := encodeInterval(s)
			if _, err := proto.Marshal(&clusterpb.Snapshot{Kind: &clusterpb.Snapshot_Interval{Interval: iv}}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(wire)), "wire-bytes")
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var m clusterpb.Snapshot
			if err := proto.Unmarshal(wire, &m); err != nil {
				b.Fatal(err)
			}
			if _, err := decodeInterval(m.GetInterval(), 10); err != nil {
				b.Fatal(fmt.Errorf("decode: %w", err))
			}
		}
	})
}
