package capacity

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
)

// uslJSON is the `capacity fit --json` document (docs/ARCHITECTURE.md). Values that do
// not exist are null rather than 0, NaN or Inf: peak_n and x_max when there
// is no peak (x_max only when there is no Amdahl limit either), amdahl_limit
// when σ = 0, a standard error when it is not available.
type uslJSON struct {
	Sigma       float64  `json:"sigma"`
	Kappa       float64  `json:"kappa"`
	Lambda      float64  `json:"lambda"`
	SigmaSE     *float64 `json:"sigma_se"`
	KappaSE     *float64 `json:"kappa_se"`
	LambdaSE    *float64 `json:"lambda_se"`
	R2          float64  `json:"r2"`
	PeakN       *float64 `json:"peak_n"`
	XMax        *float64 `json:"x_max"`
	AmdahlLimit *float64 `json:"amdahl_limit"`
	Points      int      `json:"points"`
	Warnings    []string `json:"warnings"`
}

// MarshalJSON writes the fit as {"sigma", "kappa", "lambda", "sigma_se",
// "kappa_se", "lambda_se", "r2", "peak_n", "x_max", "amdahl_limit",
// "points", "warnings"}. Throughputs are in requests per second, peak_n in
// requests in flight. peak_n is null without a peak (κ = 0); x_max is then
// the Amdahl limit, null when that is infinite too (σ = 0); a standard error
// is null when not available (see USL.SigmaSE). warnings is [] when none.
// The measured points are not included.
func (u *USL) MarshalJSON() ([]byte, error) {
	j := uslJSON{
		Sigma:       u.Sigma,
		Kappa:       u.Kappa,
		Lambda:      u.Lambda,
		SigmaSE:     jsonFloat(u.SigmaSE),
		KappaSE:     jsonFloat(u.KappaSE),
		LambdaSE:    jsonFloat(u.LambdaSE),
		R2:          u.R2,
		XMax:        jsonFloat(u.XMax),
		AmdahlLimit: jsonFloat(u.AmdahlLimit),
		Points:      u.Points,
		Warnings:    u.Warnings,
	}
	if u.HasPeak {
		j.PeakN = jsonFloat(u.PeakN)
	}
	if !finite(j.Sigma) || !finite(j.Kappa) || !finite(j.Lambda) || !finite(j.R2) {
		return nil, fmt.Errorf("usl: cannot encode a fit with non-finite coefficients (sigma %v, kappa %v, lambda %v, r2 %v)",
			u.Sigma, u.Kappa, u.Lambda, u.R2)
	}
	if j.Warnings == nil {
		j.Warnings = []string{}
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes (the "usl" object of
// find.json, for instance). null standard errors become NaN, a null x_max or
// amdahl_limit +Inf. Data stays empty: the document holds no points.
func (u *USL) UnmarshalJSON(b []byte) error {
	var j uslJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*u = USL{
		Sigma:       j.Sigma,
		Kappa:       j.Kappa,
		Lambda:      j.Lambda,
		SigmaSE:     orFloat(j.SigmaSE, math.NaN()),
		KappaSE:     orFloat(j.KappaSE, math.NaN()),
		LambdaSE:    orFloat(j.LambdaSE, math.NaN()),
		R2:          j.R2,
		HasPeak:     j.PeakN != nil,
		PeakN:       orFloat(j.PeakN, 0),
		XMax:        orFloat(j.XMax, math.Inf(1)),
		AmdahlLimit: orFloat(j.AmdahlLimit, math.Inf(1)),
		Points:      j.Points,
		Warnings:    j.Warnings,
	}
	return nil
}

func jsonFloat(v float64) *float64 {
	if !finite(v) {
		return nil
	}
	return &v
}

func orFloat(p *float64, def float64) float64 {
	if p == nil {
		return def
	}
	return *p
}

// WriteText writes a human summary of the fit: the coefficients with their
// standard errors, the peak concurrency N* and the throughput there, the
// Amdahl limit, R², the warnings, and measured against fitted throughput for
// each point. Concurrency is in requests in flight (VUs), throughput in
// requests per second.
func (u *USL) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	p := func(format string, a ...any) { fmt.Fprintf(bw, format, a...) }

	p("Universal Scalability Law fit, %d points\n", u.Points)
	p("  X(N) = λN / (1 + σ(N−1) + κN(N−1)),  N = requests in flight, X = req/s\n\n")
	p("  σ  contention         %-10s ± %s\n", fmtG(u.Sigma), fmtSE(u.SigmaSE))
	p("  κ  coherency          %-10s ± %s\n", fmtG(u.Kappa), fmtSE(u.KappaSE))
	p("  λ  one in flight      %-10s ± %s req/s\n", fmtG(u.Lambda), fmtSE(u.LambdaSE))
	p("  R²                    %.4f\n", u.R2)
	if u.HasPeak {
		p("  peak concurrency N*   %s\n", fmtG(u.PeakN))
		p("  X at N*               %s req/s\n", fmtG(u.XMax))
	} else {
		p("  peak concurrency N*   none (κ = 0: throughput never falls)\n")
		if math.IsInf(u.XMax, 1) {
			p("  X max                 none (σ = 0: linear scaling)\n")
		} else {
			p("  X max                 %s req/s, approached but not reached\n", fmtG(u.XMax))
		}
	}
	p("  Amdahl limit λ/σ      %s\n", fmtLimit(u.AmdahlLimit))

	if len(u.Warnings) > 0 {
		p("\nWarnings:\n")
		for _, w := range u.Warnings {
			p("  - %s\n", w)
		}
	}

	if len(u.Data) > 0 {
		p("\n  %10s  %12s  %12s  %9s\n", "N", "measured X", "fitted X", "diff")
		for _, pt := range u.Data {
			fit := u.Throughput(pt.N)
			p("  %10s  %12s  %12s  %+8.1f%%\n", strconv.FormatFloat(pt.N, 'g', 5, 64), fmtFixed(pt.X), fmtFixed(fit), 100*(pt.X-fit)/fit)
		}
	}
	return bw.Flush()
}

// fmtG prints 4 significant digits, the precision the fit is trusted to.
func fmtG(v float64) string {
	a := math.Abs(v)
	if v != 0 && (a < 1e-3 || a >= 1e6) {
		return strconv.FormatFloat(v, 'e', 3, 64)
	}
	decimals := 0
	if v != 0 {
		decimals = max(0, 3-int(math.Floor(math.Log10(a))))
	}
	return strconv.FormatFloat(v, 'f', decimals, 64)
}

func fmtFixed(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

func fmtSE(v float64) string {
	if !finite(v) {
		return "n/a"
	}
	return strconv.FormatFloat(v, 'g', 2, 64)
}

func fmtLimit(v float64) string {
	if math.IsInf(v, 1) {
		return "none (σ = 0: linear scaling)"
	}
	return fmtG(v) + " req/s"
}
