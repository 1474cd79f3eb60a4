package capacity

import (
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/loadcap/loadcap/loadgen"
)

// A drill's stages share one run: an arrival dropped in one stage fails
// that stage only. A step's window that reaches the run's end counts the
// arrivals the end cut off.
func TestMeasureCountsDropsOfItsWindow(t *testing.T) {
	r := &loadgen.Result{Latency: hdr.New(1, 60_000_000, 3)}
	for s := range 7 { // [0,6) s and the closing interval
		iv := loadgen.Interval{T: s, End: time.Duration(s+1) * time.Second, Completed: 10, Steal: -1}
		switch s {
		case 3:
			iv.Dropped = 2
		case 6:
			iv.Dropped = 1
		}
		r.Intervals = append(r.Intervals, iv)
	}
	for _, tc := range []struct {
		from, window time.Duration
		want         int64
	}{
		{0, 2 * time.Second, 0},
		{2 * time.Second, 2 * time.Second, 2},
		{4 * time.Second, 2 * time.Second, 1}, // reaches the end
	} {
		if st, _ := measure(r, tc.from, tc.window, 10); st.Dropped != tc.want {
			t.Errorf("window [%v, %v): %d dropped, want %d", tc.from, tc.from+tc.window, st.Dropped, tc.want)
		}
	}
}
