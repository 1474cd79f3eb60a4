package reports

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
)

// WriteSummary prints the end-of-run table: per request count, rate,
// errors and percentiles, the totals with their invariant, the thresholds
// and the verdict.
func WriteSummary(w io.Writer, r *Run) error {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	// Names read best left-aligned, numbers right-aligned: pad the names to
	// one width so that right-aligning the column leaves them flush left.
	width := len("request")
	for n := range r.Requests {
		width = max(width, len(n))
	}
	pad := func(s string) string { return s + strings.Repeat(" ", width-len(s)) }
	fmt.Fprintln(tw, pad("request")+"\tcount\trps\terrors\tp50\tp90\tp99\tp99.9\tmax\t")
	row := func(name string, t Totals, l Latency) {
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t\n", pad(name), t.Completed+t.Failed, t.RPS,
			errCell(t), ms(l.P50), ms(l.P90), ms(l.P99), ms(l.P999), ms(l.Max))
	}
	for _, n := range r.RequestNames() {
		q := r.Requests[n]
		row(n, q.Totals, q.LatencyMs)
	}
	if len(r.Requests) > 1 {
		row("all", r.Totals, r.LatencyMs)
	}
	tw.Flush()
	t := r.Totals
	if r.Meta.Engine == EngineK6 {
		fmt.Fprintf(&b, "\n%s\n", r.LatencyNote())
	} else {
		fmt.Fprintf(&b, "\n%s; service time (from the actual send) p99 %s\n", r.LatencyNote(), ms(r.ServiceMs.P99))
	}
	if r.Partial {
		fmt.Fprintf(&b, "scheduled %d = sent %d + dropped %d + lost %d\n", t.Scheduled, t.Sent, t.Dropped, t.Lost)
	} else {
		fmt.Fprintf(&b, "scheduled %d = sent %d + dropped %d\n", t.Scheduled, t.Sent, t.Dropped)
	}
	for _, l := range r.Lost {
		fmt.Fprintf(&b, "PARTIAL: agent %s lost at %.1fs (%.1f%% of the load, %d planned arrivals not reported sent", l.Agent, l.AtS, 100*l.Share, l.Unsent)
		if l.Uncounted != "" {
			fmt.Fprintf(&b, "; %s", l.Uncounted)
		}
		fmt.Fprintf(&b, "): %s\n", l.Reason)
	}
	fmt.Fprintf(&b, "sent %d = completed %d + failed %d + in flight at stop %d\n", t.Sent, t.Completed, t.Failed, t.InflightAtStop)
	fmt.Fprintf(&b, "duration %.1fs, %.1f req/s, %s sent, %s received, peak VUs %d\n",
		r.DurationS, t.RPS, byteSize(t.BytesSent), byteSize(t.BytesReceived), r.Meta.MaxVUs)
	if t.Dropped > 0 {
		fmt.Fprintf(&b, "note: %d arrivals were never sent: they queued for a VU (peak %d in use) until the backlog was full, "+
			"they had waited longer than the request timeout, or the scenario ended; raise maxVUs, or the target is saturated\n",
			t.Dropped, r.Meta.MaxVUs)
	}
	if n := r.HostNote(); n != "" {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	if n := r.IntervalsNote(); n != "" {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	if t.LateArrivals > 0 {
		fmt.Fprintf(&b, "note: the generator fell behind its schedule: %d arrivals were sent over 10ms late (worst %s); "+
			"latency includes that delay: give loadcap more CPU or spread the load over agents\n", t.LateArrivals, ms(t.MaxLagMs))
	}
	errs := map[string]int64{}
	samples := map[string]string{}
	for _, n := range r.RequestNames() {
		for c, k := range r.Requests[n].Errors {
			errs[c] += k
			if s, ok := r.Requests[n].ErrorSamples[c]; ok && samples[c] == "" {
				samples[c] = s
			}
		}
	}
	if len(errs) > 0 {
		fmt.Fprintln(&b, "errors:")
		for _, c := range slices.Sorted(maps.Keys(errs)) {
			fmt.Fprintf(&b, "  %-9s %d", c, errs[c])
			if s := samples[c]; s != "" {
				fmt.Fprintf(&b, "  e.g. %s", s)
			}
			fmt.Fprintln(&b)
		}
	}
	if len(r.Thresholds) > 0 {
		fmt.Fprintln(&b, "thresholds:")
		for _, th := range r.Thresholds {
			mark := "ok  "
			if !th.Passed {
				mark = "FAIL"
			}
			val := "no data"
			if th.Value != nil {
				val = fmt.Sprintf("%.4g", *th.Value)
			}
			fmt.Fprintf(&b, "  %s %s %s (value %s)", mark, th.Metric, th.Expr, val)
			if th.Note != "" {
				fmt.Fprintf(&b, " [%s]", th.Note)
			}
			fmt.Fprintln(&b)
		}
	}
	fmt.Fprintf(&b, "status: %s", r.Status)
	if r.AbortReason != "" {
		fmt.Fprintf(&b, " (%s)", r.AbortReason)
	}
	if r.Partial {
		fmt.Fprintf(&b, ", PARTIAL: %d of %d scheduled arrivals lost with %d agent(s)", r.Totals.Lost, r.Totals.Scheduled, len(r.Lost))
	}
	fmt.Fprintln(&b)
	_, err := io.WriteString(w, b.String())
	return err
}

func errCell(t Totals) string {
	n := t.Completed + t.Failed
	if t.Failed == 0 || n == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%.2f%%)", t.Failed, 100*float64(t.Failed)/float64(n))
}

func ms(v float64) string {
	switch {
	case v == 0:
		return "-"
	case v < 10:
		return fmt.Sprintf("%.2fms", v)
	case v < 1000:
		return fmt.Sprintf("%.1fms", v)
	}
	return fmt.Sprintf("%.2fs", v/1000)
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
