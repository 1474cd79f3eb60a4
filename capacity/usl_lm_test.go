package capacity

import (
	"math"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// TestBoxLSQ checks the bounded Levenberg–Marquardt on problems whose
// answers are known, inside the box and on its faces.
func TestBoxLSQ(t *testing.T) {
	inf := math.Inf(1)
	// Rosenbrock as least squares: r = (10(θ1 − θ0²), 1 − θ0).
	rosenbrock := func(lower, upper []float64) *boxLSQ {
		return &boxLSQ{
			m: 2, p: 2, lower: lower, upper: upper,
			residuals: func(dst, th []float64) {
				dst[0] = 10 * (th[1] - th[0]*th[0])
				dst[1] = 1 - th[0]
			},
			jacobian: func(dst *mat.Dense, th []float64) {
				dst.Set(0, 0, -20*th[0])
				dst.Set(0, 1, 10)
				dst.Set(1, 0, -1)
				dst.Set(1, 1, 0)
			},
		}
	}
	// Distance to a point c: r = θ − c, the answer is c clamped to the box.
	distance := func(c, lower, upper []float64) *boxLSQ {
		return &boxLSQ{
			m: len(c), p: len(c), lower: lower, upper: upper,
			residuals: func(dst, th []float64) {
				for i := range c {
					dst[i] = th[i] - c[i]
				}
			},
			jacobian: func(dst *mat.Dense, th []float64) {
				for i := range c {
					for j := range c {
						dst.Set(i, j, 0)
					}
					dst.Set(i, i, 1)
				}
			},
		}
	}
	tests := []struct {
		name   string
		pr     *boxLSQ
		start  []float64
		fixed  []bool
		want   []float64
		wantSS float64
	}{
		{"Rosenbrock, free", rosenbrock([]float64{-inf, -inf}, []float64{inf, inf}), []float64{-1.2, 1}, nil, []float64{1, 1}, 0},
		// With θ0 ≤ 0.5 the valley floor θ1 = θ0² is followed to the bound.
		{"Rosenbrock, upper bound active", rosenbrock([]float64{-inf, -inf}, []float64{0.5, inf}), []float64{-1.2, 1}, nil, []float64{0.5, 0.25}, 0.25},
		{"Rosenbrock, start outside the box is clamped", rosenbrock([]float64{-2, -2}, []float64{0.5, 2}), []float64{3, 5}, nil, []float64{0.5, 0.25}, 0.25},
		{"point outside a box", distance([]float64{3, -2, 0.5}, []float64{0, 0, 0}, []float64{1, 1, 1}), []float64{0.5, 0.5, 0.5}, nil,
			[]float64{1, 0, 0.5}, 4 + 4},
		{"fixed parameter stays", distance([]float64{3, -2}, []float64{-inf, -inf}, []float64{inf, inf}), []float64{0, 7}, []bool{false, true},
			[]float64{3, 7}, 81},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.pr.solve(tt.start, tt.fixed)
			if !r.converged {
				t.Errorf("not converged after %d iterations", r.iterations)
			}
			for j, w := range tt.want {
				if math.Abs(r.theta[j]-w) > 1e-8 {
					t.Errorf("θ = %v, want %v", r.theta, tt.want)
					break
				}
			}
			if math.Abs(r.sse-tt.wantSS) > 1e-10 {
				t.Errorf("S = %v, want %v", r.sse, tt.wantSS)
			}
			for j, v := range r.theta {
				if v < tt.pr.lower[j] || v > tt.pr.upper[j] {
					t.Errorf("θ%d = %v outside [%v, %v]", j, v, tt.pr.lower[j], tt.pr.upper[j])
				}
			}
		})
	}
}
