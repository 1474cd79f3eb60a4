package capacity

import (
	"math"

	"gonum.org/v1/gonum/mat"
)

// boxLSQ is a small nonlinear least-squares problem with box constraints:
// minimise S(θ) = Σ r_i(θ)² subject to lower ≤ θ ≤ upper. gonum has no
// bounded solver, so this is a projected (active-set) Levenberg–Marquardt:
// a parameter sitting on a bound with the descent direction pointing out of
// the box is frozen there for the iteration, the others take a damped
// Gauss–Newton step, and the trial point is projected back into the box.
type boxLSQ struct {
	m, p         int                                   // residuals, parameters
	residuals    func(dst, theta []float64)            // dst[i] = r_i(θ)
	jacobian     func(dst *mat.Dense, theta []float64) // dst(i, j) = ∂r_i/∂θ_j
	lower, upper []float64                             // bounds; ±Inf for none
}

// lmResult is where the solver stopped.
type lmResult struct {
	theta       []float64
	sse         float64 // S(θ) = Σ r_i²
	iterations  int     // Jacobian evaluations
	evaluations int     // residual evaluations
	converged   bool    // false when maxIter ran out first
}

// Tunables of the solver. The tolerances are tight on purpose: problems are
// tiny (3 parameters, tens of points), so driving S to machine precision
// costs microseconds and removes any doubt about the 4th digit.
const (
	lmMaxIter = 500
	lmFtol    = 1e-14 // relative decrease of S below which a near-Gauss–Newton step counts as no progress
	lmXtol    = 1e-11 // relative size of a near-Gauss–Newton step, in scaled units, below which θ has converged
	lmGtol    = 1e-13 // cosine between the residual and the scaled Jacobian columns (MINPACK's gtol)
	lmMuStart = 1e-3
	lmMuMax   = 1e16 // damping beyond which no step can decrease S: stop
)

// solve runs projected Levenberg–Marquardt from theta0 (clamped into the box).
// fixed, when not nil, marks parameters held at their start value.
func (pr *boxLSQ) solve(theta0 []float64, fixed []bool) lmResult {
	m, p := pr.m, pr.p
	theta := make([]float64, p)
	for j := range theta {
		theta[j] = clamp(theta0[j], pr.lower[j], pr.upper[j])
	}
	r := make([]float64, m)
	pr.residuals(r, theta)
	res := lmResult{theta: theta, sse: sumSquares(r), evaluations: 1}
	if !finite(res.sse) {
		return res
	}

	J := mat.NewDense(m, p, nil)
	trial := make([]float64, p)
	rt := make([]float64, m)
	free := make([]int, 0, p)
	scale := make([]float64, p)
	var qr mat.QR
	mu := lmMuStart

	for res.iterations < lmMaxIter {
		res.iterations++
		pr.jacobian(J, theta)
		if res.sse == 0 {
			res.converged = true
			return res
		}

		// Active set: ∇(S/2) = Jᵀr; a parameter on its lower bound whose
		// descent direction −∇ points further down is frozen, and likewise
		// at the upper bound. Columns with no effect are frozen too.
		free = free[:0]
		gmax := 0.0
		for j := 0; j < p; j++ {
			if fixed != nil && fixed[j] {
				continue
			}
			g, norm := 0.0, 0.0
			for i := 0; i < m; i++ {
				v := J.At(i, j)
				g += v * r[i]
				norm += v * v
			}
			norm = math.Sqrt(norm)
			if norm == 0 || !finite(norm) {
				continue
			}
			if (theta[j] <= pr.lower[j] && g >= 0) || (theta[j] >= pr.upper[j] && g <= 0) {
				continue
			}
			scale[j] = norm
			free = append(free, j)
			// The gradient test is scale-free: |cos| between r and column j.
			gmax = math.Max(gmax, math.Abs(g)/(norm*math.Sqrt(res.sse)))
		}
		if len(free) == 0 || gmax <= lmGtol {
			res.converged = true
			return res
		}

		// Damped step on the free parameters, in scaled coordinates
		// z_j = scale_j·δ_j (Marquardt's scaling, so σ ~ 1e-2, κ ~ 1e-4 and
		// λ ~ 1e2 are treated alike). Solve the augmented least-squares
		// problem [J·D⁻¹; √μ·I] z ≈ [−r; 0] by QR rather than forming JᵀJ,
		// which would square the condition number.
		k := len(free)
		a := mat.NewDense(m+k, k, nil)
		b := mat.NewVecDense(m+k, nil)
		z := mat.NewVecDense(k, nil)
		for {
			for c, j := range free {
				for i := 0; i < m; i++ {
					a.Set(i, c, J.At(i, j)/scale[j])
				}
				for c2 := range free {
					a.Set(m+c2, c, 0)
				}
				a.Set(m+c, c, math.Sqrt(mu))
			}
			for i := 0; i < m; i++ {
				b.SetVec(i, -r[i])
			}
			for c := range free {
				b.SetVec(m+c, 0)
			}
			qr.Factorize(a)
			if err := qr.SolveVecTo(z, false, b); err != nil {
				mu *= 10
				if mu > lmMuMax {
					res.converged = true
					return res
				}
				continue
			}
			// A step close to Gauss–Newton (μ ≤ 1) this small relative
			// to θ, in the same scaled units, leaves nothing to gain:
			// stop rather than raise μ until rounding noise is rejected.
			if mu <= 1 {
				step, size := 0.0, 0.0
				for c, j := range free {
					step += z.AtVec(c) * z.AtVec(c)
					size += theta[j] * scale[j] * theta[j] * scale[j]
				}
				if math.Sqrt(step) <= lmXtol*math.Sqrt(size) {
					res.converged = true
					return res
				}
			}
			copy(trial, theta)
			for c, j := range free {
				trial[j] = clamp(theta[j]+z.AtVec(c)/scale[j], pr.lower[j], pr.upper[j])
			}
			pr.residuals(rt, trial)
			res.evaluations++
			st := sumSquares(rt)
			if finite(st) && st < res.sse {
				gain := res.sse - st
				prev := res.sse
				copy(theta, trial)
				copy(r, rt)
				res.sse = st
				// A step that was nearly Gauss–Newton and still gained
				// nothing measurable means we are at the minimum.
				if mu <= 1 && gain <= lmFtol*prev {
					res.converged = true
					return res
				}
				mu = math.Max(mu/10, 1e-12)
				break
			}
			mu *= 10
			if mu > lmMuMax {
				// No direction in the box decreases S any more.
				res.converged = true
				return res
			}
		}
	}
	return res
}

func clamp(v, lo, hi float64) float64 {
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}

func sumSquares(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x * x
	}
	return s
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
