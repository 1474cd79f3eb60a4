package chart

import (
	"math"
	"strconv"

	"gonum.org/v1/plot"
)

// Tick is one labelled mark on an axis.
type Tick struct {
	Value float64
	Label string
}

// PercentileTicks are the ticks of a percentile axis that plots 1/(1−q):
// 0%, 50%, 90%, 99%, … up to 99.9999%. Use it with PercentileX.
var PercentileTicks = []Tick{
	{1, "0%"}, {2, "50%"}, {10, "90%"}, {100, "99%"}, {1e3, "99.9%"},
	{1e4, "99.99%"}, {1e5, "99.999%"}, {1e6, "99.9999%"},
}

// PercentileX is the x position of percentile p (0 ≤ p < 100) on a
// percentile axis: 1/(1−p/100), so that every further nine takes the same
// width on a log axis.
func PercentileX(p float64) float64 { return 1 / (1 - p/100) }

// fixedTicks marks exactly the given ticks that fall in the range.
func fixedTicks(ts []Tick) plot.Ticker {
	return plot.TickerFunc(func(lo, hi float64) []plot.Tick {
		var out []plot.Tick
		for _, t := range ts {
			if t.Value >= lo && t.Value <= hi {
				out = append(out, plot.Tick{Value: t.Value, Label: t.Label})
			}
		}
		return out
	})
}

// logTicks labels a log axis: every power of ten over wide ranges,
// 1-2-5 steps over a few decades, and 1…9 steps within about one decade,
// so that every log axis has at least two labels.
func logTicks(lo, hi float64) []plot.Tick {
	if !(lo > 0) || !(hi > lo) {
		return nil
	}
	decades := math.Log10(hi / lo)
	var labelled []float64
	switch {
	case decades > 4:
		labelled = []float64{1}
	case decades > 1.2:
		labelled = []float64{1, 2, 5}
	default:
		labelled = []float64{1, 2, 3, 4, 5, 6, 7, 8, 9}
	}
	var out []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		p := math.Pow(10, e)
		for m := 1.0; m <= 9; m++ {
			v := m * p
			if v < lo*(1-1e-9) || v > hi*(1+1e-9) {
				continue
			}
			t := plot.Tick{Value: v}
			for _, l := range labelled {
				if l == m {
					t.Label = formatNum(v)
				}
			}
			out = append(out, t)
		}
	}
	return out
}

// linearTicks labels a linear axis at 1, 2 or 5 times a power of ten, about
// five labels over the range, with a minor tick between labels.
func linearTicks(lo, hi float64) []plot.Tick {
	if !(hi > lo) {
		return nil
	}
	raw := (hi - lo) / 5
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	step := p
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			step = m * p
			break
		}
	}
	var out []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi+step*1e-9; v += step {
		v := math.Round(v/step) * step // no 0.30000000000000004
		out = append(out, plot.Tick{Value: v, Label: formatNum(v)})
		if m := v + step/2; m < hi {
			out = append(out, plot.Tick{Value: m})
		}
	}
	return out
}

// formatNum writes a tick value short: 0.05, 12, 2500, 25k, 1.5M.
func formatNum(v float64) string {
	a := math.Abs(v)
	switch {
	case v == 0:
		return "0"
	case a >= 1e6:
		return strconv.FormatFloat(v/1e6, 'g', 4, 64) + "M"
	case a >= 1e4:
		return strconv.FormatFloat(v/1e3, 'g', 4, 64) + "k"
	case a < 1e-3:
		return strconv.FormatFloat(v, 'e', 1, 64)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}
