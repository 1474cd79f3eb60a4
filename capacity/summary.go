package capacity

import (
	"fmt"
	"io"
	"math"
	"text/tabwriter"
)

// WriteSummary writes the steps as a table (and the services per step
// when scraped), then the figures found and every note, for a terminal.
func (r *FindResult) WriteSummary(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "step\tphase\toffered/s\tgoodput/s\tN\tp50 ms\tp99 ms\tp99.9 ms\terrors\tSLO\t")
	for _, s := range r.Steps {
		verdict := "pass"
		switch {
		case s.Repeated:
			verdict = "repeated"
		case !s.Passed:
			verdict = "FAIL"
		}
		fmt.Fprintf(tw, "%d\t%s\t%.1f\t%.1f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f%%\t%s\t\n", s.N, s.Phase, s.Offered, s.Achieved,
			s.Concurrency, s.LatencyMs.P50, s.LatencyMs.P99, s.LatencyMs.P999, 100*s.ErrorRate, verdict)
	}
	tw.Flush()
	if len(r.Steps) > 0 && len(r.Steps[0].Services) > 0 {
		fmt.Fprintln(w, "\nservices per step (from their metrics):")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "step\tservice\treq/s\tfan-out\tmean ms\tCPU cores\t")
		for _, s := range r.Steps {
			for _, sv := range s.Services {
				if sv.Error != "" {
					fmt.Fprintf(tw, "%d\t%s\tscrape failed: %s\t\t\t\t\n", s.N, sv.Name, sv.Error)
					continue
				}
				fmt.Fprintf(tw, "%d\t%s\t%.1f\t%.2f\t%.2f\t%.2f\t\n", s.N, sv.Name, sv.RequestRate, sv.FanOut, sv.MeanLatencyMs, sv.CPUCores)
			}
		}
		tw.Flush()
		if r.FirstSaturated != "" {
			fmt.Fprintf(w, "first to saturate: %s (its mean latency doubled by step %d)\n", r.FirstSaturated, r.FirstSaturatedStep)
		}
	}
	fmt.Fprintln(w)
	switch {
	case len(r.Steps) > 0 && r.Steps[0].Phase != "ramp": // a drill's stages
		slo := r.SLO
		if slo == "" {
			slo = "(no drill rule: every stage that kept its rate)"
		}
		fmt.Fprintf(w, "highest stage rate that passed %s: %.1f req/s\n", slo, r.MaxQPS)
	case r.Partial:
		fmt.Fprintf(w, "PARTIAL: the search was interrupted after %d steps; max sustainable QPS not found under %s\n", len(r.Steps), r.SLO)
	case r.Confirmed:
		fmt.Fprintf(w, "max sustainable QPS: %.1f req/s (confirmed by a soak) under %s\n", r.MaxQPS, r.SLO)
	default:
		fmt.Fprintf(w, "max sustainable QPS: %.1f req/s (NOT confirmed) under %s\n", r.MaxQPS, r.SLO)
	}
	fmt.Fprintf(w, "saturation throughput: %.1f req/s\n", r.SaturationQPS)
	if r.Knee != nil {
		fmt.Fprintf(w, "latency knee: %.1f req/s (p99 %.2f ms, step %d)\n", r.Knee.Throughput, r.Knee.P99Ms, r.Knee.Step)
	}
	for _, st := range r.Steps {
		if st.Repeated {
			fmt.Fprintf(w, "note: step %d failed while %s: not judged, repeated\n", st.N, st.Disturbed)
		} else if st.Disturbed != "" {
			fmt.Fprintf(w, "note: in step %d %s\n", st.N, st.Disturbed)
		}
		if !st.LittleOK && !st.Repeated {
			fmt.Fprintf(w, "note: step %d was not in steady state (mean in flight %.2f vs Little's law X·R %.2f)\n", st.N, st.Concurrency, st.LittleN)
		}
	}
	if r.USL != nil {
		u := r.USL
		fmt.Fprintf(w, "USL fit over %d steps: sigma %.4g%s, kappa %.4g%s, lambda %.4g%s, R² %.3f\n", u.Points,
			u.Sigma, plusMinus(u.SigmaSE), u.Kappa, plusMinus(u.KappaSE), u.Lambda, plusMinus(u.LambdaSE), u.R2)
	} else if r.USLError != "" {
		fmt.Fprintf(w, "USL fit: %s\n", r.USLError)
	}
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note:", n)
	}
}

// MarkPartial notes on an interrupted search's result that it is partial,
// with the highest rate that passed so far as a lower bound: MaxQPS stays
// 0, as the search did not find it.
func (r *FindResult) MarkPartial(reason string) {
	best := 0.0
	for _, s := range r.Steps {
		if s.Passed && !s.Repeated {
			best = max(best, s.Offered)
		}
	}
	note := fmt.Sprintf("partial: the search was %s after %d steps; max_qps was not found", reason, len(r.Steps))
	if best > 0 {
		note += fmt.Sprintf(" (the highest rate that passed so far, a lower bound: %.1f req/s)", best)
	}
	r.Notes = append(r.Notes, note)
	r.Partial = true
	r.MaxQPS, r.Confirmed = 0, false
}

// AllPassed reports whether every step passed.
func (r *FindResult) AllPassed() bool {
	for _, s := range r.Steps {
		if !s.Passed {
			return false
		}
	}
	return true
}

// plusMinus writes a standard error as " ± se", or nothing when the fit
// could not give one (a parameter at its bound, no degrees of freedom).
func plusMinus(se float64) string {
	if math.IsNaN(se) || math.IsInf(se, 0) {
		return ""
	}
	return fmt.Sprintf(" ± %.2g", se)
}
