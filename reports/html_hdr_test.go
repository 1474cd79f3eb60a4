package reports

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// TestHDRReaderMatchesLibrary checks the report's own reader of encoded
// histograms against hdrhistogram-go over geometries, shapes and
// percentiles, dense and packed encodings alike.
func TestHDRReaderMatchesLibrary(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	geoms := []struct {
		lowest, highest int64
		digits          int
	}{{1, 60_000_000, 3}, {1, 3_600_000_000, 3}, {1000, 60_000_000, 2}, {1, 1_000_000, 5}, {7, 1 << 40, 1}, {1, 100, 0}}
	pcts := []float64{0.1, 1, 25, 50, 90, 99, 99.9, 99.99, 100}
	var r hdrReader
	for _, g := range geoms {
		for trial := range 16 {
			packed := trial%2 == 0
			h := hdr.New(g.lowest, g.highest, g.digits)
			p := hdr.NewPacked(g.lowest, g.highest, g.digits)
			n := rng.IntN(3000) + 1
			if trial == 15 {
				n = 1
			}
			for range n {
				v := int64(math.Exp(rng.NormFloat64()*2+8)) % g.highest
				v = max(v, g.lowest)
				_ = h.RecordValue(v)
				_ = p.RecordValue(v)
			}
			var enc []byte
			var err error
			if packed {
				enc, err = p.Encode()
			} else {
				enc, err = h.Encode(hdr.V2CompressedEncodingCookieBase)
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, pc := range pcts {
				got, total, err := r.percentile(string(enc), pc)
				if err != nil {
					t.Fatal(err)
				}
				if want := h.ValueAtPercentile(pc); got != want || total != h.TotalCount() {
					t.Fatalf("geometry %+v, %d values (packed %v): p%v = %d of %d, the library says %d of %d", g, n, packed, pc, got, total, want, h.TotalCount())
				}
			}
		}
	}
}

func TestHDRReaderRejects(t *testing.T) {
	var r hdrReader
	good, _ := hist(1000, 2000).Encode(hdr.V2CompressedEncodingCookieBase)
	for name, enc := range map[string]string{
		"not base64": "%%%",
		"too short":  "AAAA",
		"truncated":  string(good[:len(good)-12]),
		"v1 cookie":  "HIMaFAAAAAAAAAAA",
	} {
		if _, _, err := r.percentile(enc, 99); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if v, n, err := r.percentile(string(good), 99); err != nil || n != 2 || v < 2000 || v > 2001 {
		t.Errorf("after errors the reader still works: %d of %d, %v", v, n, err)
	}
}

func TestHDRReaderBuckets(t *testing.T) {
	p := hdr.NewPacked(1, 60_000_000, 3)
	for _, v := range []int64{1, 2, 999, 1000, 2047, 2048, 2049, 123_456, 59_999_999} {
		_ = p.RecordValues(v, v%7+1)
	}
	enc, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	type b struct{ v, c int64 }
	var want, got []b
	for v, c := range p.ForEachBucket {
		want = append(want, b{v, c})
	}
	var r hdrReader
	g, err := r.buckets(string(enc), func(v, c int64) { got = append(got, b{v, c}) })
	if err != nil {
		t.Fatal(err)
	}
	if g.Lowest != 1 || g.Highest != 60_000_000 || g.Digits != 3 {
		t.Errorf("geometry %+v", g)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("buckets %v, the library iterates %v", got, want)
	}
}
