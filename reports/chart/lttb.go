package chart

import "math"

// LTTB downsamples the series (x[i], y[i]) to at most n points with
// Largest-Triangle-Three-Buckets (Steinarsson, "Downsampling Time Series for
// Visual Representation", 2013): the first and last points are kept, the
// others are split into n−2 buckets of consecutive points, and from each
// bucket the point that spans the largest triangle with the point kept
// before it and the mean of the next bucket is kept. Peaks and dips
// survive; flat stretches thin out. x must be ascending.
//
// Points whose x or y is not finite are skipped; where one or more were
// skipped between two kept points the result holds a NaN y between them, so
// a line drawn from it breaks there as the original would. The result has
// at most n finite points. With n < 3 or no more finite points than n the
// finite points come back unchanged (plus the NaN breaks). x and y are not
// modified; LTTB is safe for concurrent use.
func LTTB(x, y []float64, n int) (xs, ys []float64) {
	m := min(len(x), len(y))
	idx := make([]int, 0, m)
	for i := range m {
		if finite(x[i]) && finite(y[i]) {
			idx = append(idx, i)
		}
	}
	keep := idx
	if n >= 3 && len(idx) > n {
		keep = lttb(x, y, idx, n)
	}
	xs = make([]float64, 0, len(keep)+8)
	ys = make([]float64, 0, len(keep)+8)
	for j, i := range keep {
		if j > 0 && i-keep[j-1] > 1 && gapBetween(x, y, keep[j-1], i) {
			xs = append(xs, (x[keep[j-1]]+x[i])/2)
			ys = append(ys, math.NaN())
		}
		xs = append(xs, x[i])
		ys = append(ys, y[i])
	}
	return xs, ys
}

// gapBetween reports whether a point strictly between a and b is not drawn.
func gapBetween(x, y []float64, a, b int) bool {
	for i := a + 1; i < b; i++ {
		if !finite(x[i]) || !finite(y[i]) {
			return true
		}
	}
	return false
}

// lttb selects n of the points idx names.
func lttb(x, y []float64, idx []int, n int) []int {
	out := make([]int, 0, n)
	out = append(out, idx[0])
	size := float64(len(idx)-2) / float64(n-2)
	a := idx[0]
	for b := range n - 2 {
		lo := int(float64(b)*size) + 1
		hi := int(float64(b+1)*size) + 1
		// The next bucket's mean; for the last bucket, the last point.
		nlo, nhi := hi, int(float64(b+2)*size)+1
		if nhi > len(idx)-1 {
			nhi = len(idx) - 1
		}
		if nlo >= nhi {
			nlo, nhi = len(idx)-1, len(idx)
		}
		var mx, my float64
		for _, i := range idx[nlo:nhi] {
			mx += x[i]
			my += y[i]
		}
		mx /= float64(nhi - nlo)
		my /= float64(nhi - nlo)
		best, bestArea := idx[lo], -1.0
		for _, i := range idx[lo:hi] {
			area := math.Abs((x[a]-mx)*(y[i]-y[a]) - (x[a]-x[i])*(my-y[a]))
			if area > bestArea {
				best, bestArea = i, area
			}
		}
		out = append(out, best)
		a = best
	}
	return append(out, idx[len(idx)-1])
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
