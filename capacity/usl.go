package capacity

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"gonum.org/v1/gonum/mat"
)

// Point is one measurement for the USL fit: N is the concurrency (requests in
// flight, or virtual users in a closed model) and X the throughput achieved
// at that concurrency, in requests per second.
type Point struct{ N, X float64 }

// USL is a fit of the Universal Scalability Law
//
//	X(N) = λN / (1 + σ(N−1) + κN(N−1))
//
// to measured throughput, where N is concurrency (requests in flight / VUs)
// and X is throughput in requests per second. σ (contention) and κ (coherency
// delay) are dimensionless, bounded to [0, 1]; λ is the throughput of one
// request in flight, in requests per second, λ ≥ 0.
//
// The coefficients minimise Σ (X_i − X(N_i))² within those bounds, as the R
// package usl (≥ 2.0) does with nls(algorithm = "port").
type USL struct {
	Sigma, Kappa, Lambda float64

	// SigmaSE, KappaSE, LambdaSE are the asymptotic standard errors,
	// √diag(s²·(JᵀJ)⁻¹) over the parameters not at a bound, with
	// s² = SSE/(n − free parameters). NaN when not available: the parameter
	// is held at a bound, there are no degrees of freedom left, or the points
	// cannot tell the parameters apart.
	SigmaSE, KappaSE, LambdaSE float64

	// R2 is 1 − SSE/SST, the share of the variance of X the curve explains.
	R2 float64

	// PeakN is the concurrency of maximum throughput, N* = √((1−σ)/κ).
	// Valid when HasPeak, which is κ > 0 and σ < 1: with κ = 0 throughput
	// rises forever towards the Amdahl limit; with σ = 1 it only falls.
	PeakN   float64
	HasPeak bool

	// XMax is the highest throughput the curve predicts, in requests per
	// second: X(N*) when HasPeak. Without a peak it is the supremum the curve
	// approaches but never reaches, the Amdahl limit λ/σ, and +Inf when σ = 0
	// as well (linear scaling: no limit measured).
	XMax float64

	// AmdahlLimit is λ/σ in requests per second, the ceiling contention
	// alone would impose (ignoring κ); +Inf when σ = 0.
	AmdahlLimit float64

	// Points is the number of measurements fitted.
	Points int

	// Warnings say why the fit deserves caution: few points, a poor fit, a
	// parameter held at a bound, a peak far outside the measured range.
	Warnings []string

	// Data is the measurements fitted, sorted by N, for reports that show
	// measured against fitted throughput.
	Data []Point
}

// Thresholds for the fit's warnings.
const (
	// USLMinPoints is the number of points below which a fit is fragile.
	USLMinPoints = 6
	// USLMinR2 is the R² below which the USL is said to fit poorly.
	USLMinR2 = 0.9
)

// Parameter order inside the solver.
const (
	uslSigma = iota
	uslKappa
	uslLambda
	uslParams
)

var uslNames = [uslParams]string{"sigma", "kappa", "lambda"}

// FitUSL fits the Universal Scalability Law to pts (N in requests in flight,
// X in requests per second) by bounded nonlinear least squares. It needs at
// least 3 points with 3 distinct N, every N and X finite and positive; the
// error lists every bad point. The order of pts does not matter and pts is
// not modified.
func FitUSL(pts []Point) (*USL, error) {
	if err := checkUSLPoints(pts); err != nil {
		return nil, err
	}
	data := append([]Point(nil), pts...)
	sort.SliceStable(data, func(i, j int) bool { return data[i].N < data[j].N })

	// Fit X/max(X): σ and κ are unchanged, λ scales back. Sums of squares
	// then neither overflow nor underflow, whatever the unit of X.
	xScale := 0.0
	for _, p := range data {
		xScale = math.Max(xScale, p.X)
	}
	scaled := make([]Point, len(data))
	for i, p := range data {
		scaled[i] = Point{N: p.N, X: p.X / xScale}
	}

	pr := uslProblem(scaled)
	var best lmResult
	for i, start := range uslStarts(scaled) {
		r := pr.solve(start, nil)
		if i == 0 || r.sse < best.sse {
			best = r
		}
	}
	theta := snapToBounds(pr, scaled, best.theta, best.sse)
	u := uslSummary(pr, scaled, theta)
	u.Lambda *= xScale
	u.LambdaSE *= xScale
	u.setPeak()
	u.Data = data
	for _, v := range []float64{u.Sigma, u.Kappa, u.Lambda, u.R2} {
		if !finite(v) {
			return nil, fmt.Errorf("usl fit: cannot fit these values: concurrency or throughput out of range")
		}
	}
	return u, nil
}

// checkUSLPoints returns every problem with pts at once.
func checkUSLPoints(pts []Point) error {
	if len(pts) < 3 {
		return fmt.Errorf("usl fit: need at least 3 points, got %d", len(pts))
	}
	var errs []error
	distinct := map[float64]bool{}
	for i, p := range pts {
		if !finite(p.N) || p.N <= 0 {
			errs = append(errs, fmt.Errorf("usl fit: point %d: concurrency N must be a positive number, got %v", i+1, p.N))
		}
		if !finite(p.X) || p.X <= 0 {
			errs = append(errs, fmt.Errorf("usl fit: point %d: throughput X must be a positive number, got %v", i+1, p.X))
		}
		distinct[p.N] = true
	}
	if len(errs) == 0 && len(distinct) < 3 {
		errs = append(errs, fmt.Errorf("usl fit: need at least 3 distinct concurrency values, got %d", len(distinct)))
	}
	return errors.Join(errs...)
}

// Throughput is the fitted X(n) in requests per second at concurrency n
// (requests in flight / VUs).
func (u *USL) Throughput(n float64) float64 {
	return uslX(u.Sigma, u.Kappa, u.Lambda, n)
}

func uslX(sigma, kappa, lambda, n float64) float64 {
	return lambda * n / (1 + sigma*(n-1) + kappa*n*(n-1))
}

// uslProblem is the bounded least-squares problem for data, with residuals
// r_i = X(N_i) − X_i. The denominator stays positive for every N > 0 inside
// the box, so the model is defined wherever the solver looks.
func uslProblem(data []Point) *boxLSQ {
	return &boxLSQ{
		m: len(data), p: uslParams,
		lower: []float64{0, 0, 0},
		upper: []float64{1, 1, math.Inf(1)},
		residuals: func(dst, th []float64) {
			for i, pt := range data {
				dst[i] = uslX(th[uslSigma], th[uslKappa], th[uslLambda], pt.N) - pt.X
			}
		},
		jacobian: func(dst *mat.Dense, th []float64) {
			s, k, l := th[uslSigma], th[uslKappa], th[uslLambda]
			for i, pt := range data {
				n := pt.N
				d := 1 + s*(n-1) + k*n*(n-1)
				dst.Set(i, uslSigma, -l*n*(n-1)/(d*d))
				dst.Set(i, uslKappa, -l*n*n*(n-1)/(d*d))
				dst.Set(i, uslLambda, n/d)
			}
		},
	}
}

// uslStarts returns starting points for the solver. The first is the classic
// quadratic transform: with λ known, λN/X − 1 = σ(N−1) + κN(N−1) is linear in
// σ and κ. λ starts at max X/N, its best lower bound (X/N = λ/D and the
// denominator D ≥ 1 for N ≥ 1), which is X/N at the smallest N when the data
// follow the law. The second start is the Amdahl fit (κ = 0) of the same
// transform, so a boundary solution is approached from the boundary too.
func uslStarts(data []Point) [][]float64 {
	lambda := 0.0
	for _, p := range data {
		lambda = math.Max(lambda, p.X/p.N)
	}
	// Least squares without intercept on the transformed data.
	var s11, s12, s22, b1, b2 float64
	for _, p := range data {
		x1 := p.N - 1
		x2 := p.N * (p.N - 1)
		y := lambda*p.N/p.X - 1
		s11 += x1 * x1
		s12 += x1 * x2
		s22 += x2 * x2
		b1 += x1 * y
		b2 += x2 * y
	}
	var sigma, kappa float64
	if det := s11*s22 - s12*s12; det > 0 && finite(det) {
		sigma = (b1*s22 - b2*s12) / det
		kappa = (s11*b2 - s12*b1) / det
	}
	amdahl := 0.0
	if s11 > 0 {
		amdahl = b1 / s11
	}
	starts := [][]float64{
		{clamp(sigma, 0, 1), clamp(kappa, 0, 1), 0},
		{clamp(amdahl, 0, 1), 0, 0},
		gridStart(data),
	}
	for _, st := range starts {
		st[uslLambda] = bestLambda(data, st[uslSigma], st[uslKappa])
		if !finite(st[uslLambda]) || st[uslLambda] <= 0 {
			st[uslLambda] = lambda
		}
	}
	return starts
}

// gridStart is the best point of a coarse log grid over σ and κ, with λ at
// its least-squares value for each. Noisy data can give the sum of squares
// more than one valley; the grid finds the deepest before LM polishes it.
// κ's grid is scaled by the largest N, since κN² is what the curve sees.
func gridStart(data []Point) []float64 {
	maxN := data[len(data)-1].N
	sigmas := []float64{0}
	for i := 0; i <= 24; i++ {
		sigmas = append(sigmas, math.Pow(10, -6+float64(i)/4)) // 1e-6 … 1
	}
	kappas := []float64{0}
	for i := 0; i <= 32; i++ {
		kappas = append(kappas, math.Min(1, math.Pow(10, -6+float64(i)/4)/(maxN*maxN))) // κN² from 1e-6 to 1e2
	}
	xx := 0.0
	for _, p := range data {
		xx += p.X * p.X
	}
	best := []float64{0, 0, 0}
	bestSSE := math.Inf(1)
	for _, sigma := range sigmas {
		for _, kappa := range kappas {
			// With g = N/D the best λ is Σxg/Σg² and leaves
			// SSE = Σx² − (Σxg)²/Σg².
			var xg, gg float64
			for _, p := range data {
				g := p.N / (1 + sigma*(p.N-1) + kappa*p.N*(p.N-1))
				xg += p.X * g
				gg += g * g
			}
			if sse := xx - xg*xg/gg; sse < bestSSE {
				bestSSE = sse
				best = []float64{sigma, kappa, xg / gg}
			}
		}
	}
	return best
}

// bestLambda is the least-squares λ for fixed σ and κ: the model is linear
// in λ, X ≈ λ·g with g = N/D.
func bestLambda(data []Point, sigma, kappa float64) float64 {
	var gx, gg float64
	for _, p := range data {
		g := uslX(sigma, kappa, 1, p.N)
		gx += g * p.X
		gg += g * g
	}
	return gx / gg
}

// snapToBounds moves σ or κ onto a bound when it is so close that the fitted
// curve cannot tell the difference, and the refit with the parameter held
// there is as good. An exactly linear or Amdahl data set then reports κ = 0
// and no peak, instead of κ = 1e-19 and a "peak" at N = 3e9.
func snapToBounds(pr *boxLSQ, data []Point, theta []float64, sse float64) []float64 {
	mean := 0.0
	xmax := 0.0
	for _, p := range data {
		mean += p.X
		xmax = math.Max(xmax, p.X)
	}
	mean /= float64(len(data))
	sst := 0.0
	for _, p := range data {
		sst += (p.X - mean) * (p.X - mean)
	}
	J := mat.NewDense(pr.m, pr.p, nil)
	fixed := make([]bool, pr.p)
	for _, j := range []int{uslSigma, uslKappa} {
		pr.jacobian(J, theta)
		for _, bound := range []float64{pr.lower[j], pr.upper[j]} {
			if theta[j] == bound {
				fixed[j] = true
				break
			}
			// How far the fitted X moves, relative to the data, if θ_j
			// jumps to the bound (first order).
			effect := 0.0
			for i := 0; i < pr.m; i++ {
				effect = math.Max(effect, math.Abs(J.At(i, j)))
			}
			effect *= math.Abs(theta[j]-bound) / xmax
			if effect > 1e-7 {
				continue
			}
			start := append([]float64(nil), theta...)
			start[j] = bound
			try := append([]bool(nil), fixed...)
			try[j] = true
			r := pr.solve(start, try)
			if r.sse <= sse*(1+1e-6)+1e-12*sst {
				theta, sse, fixed = r.theta, r.sse, try
				break
			}
		}
	}
	return theta
}

// uslSummary computes the statistics and warnings of the fit theta.
func uslSummary(pr *boxLSQ, data []Point, theta []float64) *USL {
	u := &USL{
		Sigma:  theta[uslSigma],
		Kappa:  theta[uslKappa],
		Lambda: theta[uslLambda],
		Points: len(data),
		Data:   data,
	}
	n := len(data)
	r := make([]float64, n)
	pr.residuals(r, theta)
	sse := sumSquares(r)
	mean := 0.0
	for _, p := range data {
		mean += p.X
	}
	mean /= float64(n)
	sst := 0.0
	for _, p := range data {
		sst += (p.X - mean) * (p.X - mean)
	}
	switch {
	case sst > 0:
		u.R2 = 1 - sse/sst
	case sse == 0:
		u.R2 = 1
	}

	se, identifiable := standardErrors(pr, theta, sse)
	u.SigmaSE, u.KappaSE, u.LambdaSE = se[uslSigma], se[uslKappa], se[uslLambda]

	u.setPeak()

	// Warnings, most serious first.
	if n < USLMinPoints {
		u.Warnings = append(u.Warnings, fmt.Sprintf(
			"only %d points: a 3-parameter fit on fewer than %d points is fragile; measure more concurrency levels", n, USLMinPoints))
	}
	if u.R2 < USLMinR2 {
		u.Warnings = append(u.Warnings, fmt.Sprintf(
			"poor fit: R² = %.3f < %.2f; the data may be noisy or not follow the USL (several bottlenecks, a warm-up, errors counted as throughput)", u.R2, USLMinR2))
	}
	for j, v := range theta {
		switch {
		case v == pr.lower[j] && j == uslKappa:
			u.Warnings = append(u.Warnings,
				"kappa is at its lower bound 0: no coherency delay measured, so no peak: throughput never falls as concurrency grows")
		case v == pr.lower[j] && j == uslSigma:
			u.Warnings = append(u.Warnings,
				"sigma is at its lower bound 0: no contention measured")
		case v == pr.lower[j]:
			u.Warnings = append(u.Warnings, fmt.Sprintf("%s is at its lower bound %g", uslNames[j], v))
		case v == pr.upper[j] && j == uslSigma:
			u.Warnings = append(u.Warnings,
				"sigma is at its upper bound 1: throughput does not grow with concurrency at all (fully serialised); measure from lower concurrency")
		case v == pr.upper[j]:
			u.Warnings = append(u.Warnings, fmt.Sprintf(
				"%s is at its upper bound %g: the data do not look like the USL", uslNames[j], v))
		}
	}
	if !identifiable {
		u.Warnings = append(u.Warnings,
			"standard errors unavailable: these points cannot separate the coefficients (too few, or too close together)")
	}
	if maxN := data[n-1].N; u.HasPeak && u.PeakN > 2*maxN {
		u.Warnings = append(u.Warnings, fmt.Sprintf(
			"the peak N* = %.4g is far beyond the largest measured concurrency %.4g: it is an extrapolation", u.PeakN, maxN))
	}
	return u
}

// setPeak derives PeakN, HasPeak, XMax and AmdahlLimit from the coefficients.
func (u *USL) setPeak() {
	u.AmdahlLimit = math.Inf(1)
	if u.Sigma > 0 {
		u.AmdahlLimit = u.Lambda / u.Sigma
	}
	u.HasPeak = u.Kappa > 0 && u.Sigma < 1
	u.PeakN = 0
	if u.HasPeak {
		u.PeakN = math.Sqrt((1 - u.Sigma) / u.Kappa)
		u.XMax = u.Throughput(u.PeakN)
	} else {
		u.XMax = u.AmdahlLimit
	}
}

// standardErrors returns √diag(s²·(JᵀJ)⁻¹) for the parameters not at a
// bound, NaN for the others. identifiable is false when JᵀJ is singular (or
// numerically so) over the free parameters.
func standardErrors(pr *boxLSQ, theta []float64, sse float64) (se []float64, identifiable bool) {
	se = make([]float64, pr.p)
	var free []int
	for j, v := range theta {
		se[j] = math.NaN()
		if v != pr.lower[j] && v != pr.upper[j] {
			free = append(free, j)
		}
	}
	if len(free) == 0 {
		return se, true
	}
	J := mat.NewDense(pr.m, pr.p, nil)
	pr.jacobian(J, theta)
	// Scale columns to unit norm so the Cholesky sees a well-scaled matrix
	// (σ, κ and λ differ by six orders of magnitude).
	k := len(free)
	scale := make([]float64, k)
	for c, j := range free {
		for i := 0; i < pr.m; i++ {
			scale[c] += J.At(i, j) * J.At(i, j)
		}
		scale[c] = math.Sqrt(scale[c])
		if scale[c] == 0 {
			return se, false
		}
	}
	ata := mat.NewSymDense(k, nil)
	for a, ja := range free {
		for b := a; b < k; b++ {
			jb := free[b]
			s := 0.0
			for i := 0; i < pr.m; i++ {
				s += J.At(i, ja) * J.At(i, jb)
			}
			ata.SetSym(a, b, s/(scale[a]*scale[b]))
		}
	}
	var chol mat.Cholesky
	if !chol.Factorize(ata) || chol.Cond() > 1e14 {
		return se, false
	}
	dof := pr.m - k
	if dof <= 0 {
		return se, true
	}
	var inv mat.SymDense
	if err := chol.InverseTo(&inv); err != nil {
		return se, false
	}
	s2 := sse / float64(dof)
	for c, j := range free {
		se[j] = math.Sqrt(s2*inv.At(c, c)) / scale[c]
	}
	return se, true
}
