package reports

import (
	"encoding/json"
	"fmt"
	"html/template"
	"image/color"
	"math"
	"slices"
	"strconv"
	"sync"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/loadcap/loadcap/capacity"
	"github.com/loadcap/loadcap/reports/chart"
)

// render draws c as the figure id, with its caption and the frame the
// hover script reads.
func render(id string, c *chart.Chart, caption string) (figure, error) {
	s, err := chart.Render(c)
	if err != nil {
		return figure{}, fmt.Errorf("chart %s: %w", id, err)
	}
	f := s.Frame
	frame, err := json.Marshal(map[string]any{
		"w": f.Width, "h": f.Height, "l": f.Left, "r": f.Right, "t": f.Top, "b": f.Bottom,
		"x0": f.XMin, "x1": f.XMax, "y0": f.YMin, "y1": f.YMax, "lx": f.LogX, "ly": f.LogY,
		"xl": c.X.Label, "yl": c.Y.Label,
	})
	if err != nil {
		return figure{}, fmt.Errorf("chart %s: %w", id, err)
	}
	// The markup is ours: vgsvg escapes every text it writes.
	return figure{ID: id, Caption: caption, SVG: template.HTML(s.Markup), Frame: string(frame)}, nil
}

var (
	green = color.RGBA{0x2c, 0xa0, 0x2c, 0xff}
	red   = color.RGBA{0xd6, 0x27, 0x28, 0xff}
	grey  = color.RGBA{0x70, 0x70, 0x70, 0xff}
)

// timeline places a run's intervals on a time axis: seconds, or minutes
// for runs over a quarter of an hour.
type timeline struct {
	x     []float64 // the interval's start, in axis units
	dur   []float64 // the interval's length, s
	label string
}

func newTimeline(r *Run) timeline {
	tl := timeline{label: "seconds since start"}
	scale := 1.0
	if r.DurationS > 900 {
		tl.label, scale = "minutes since start", 60
	}
	prev := 0.0
	for _, iv := range r.Intervals {
		d := iv.EndS - prev
		if d <= 0 || iv.EndS == 0 {
			d = 1
		}
		prev = iv.EndS
		tl.x = append(tl.x, float64(iv.T)/scale)
		tl.dur = append(tl.dur, d)
	}
	return tl
}

// perSecond is the series f(interval) over the timeline; nan marks an
// interval without data.
func perSecond(r *Run, f func(iv *Interval) float64) []float64 {
	out := make([]float64, len(r.Intervals))
	for i := range r.Intervals {
		out[i] = f(&r.Intervals[i])
	}
	return out
}

func latencyFigures(r *Run, tl timeline) ([]figure, error) {
	var figs []figure
	pick := func(get func(l Latency) float64) []float64 {
		return perSecond(r, func(iv *Interval) float64 {
			if iv.LatencyMs.Count == 0 {
				return math.NaN()
			}
			return get(iv.LatencyMs)
		})
	}
	c := &chart.Chart{
		Title: "Latency percentiles per second, all requests",
		X:     chart.Axis{Label: tl.label},
		Y:     chart.Axis{Label: "ms", Log: true},
		Series: []chart.Series{
			{Name: "p50", X: tl.x, Y: pick(func(l Latency) float64 { return l.P50 })},
			{Name: "p90", X: tl.x, Y: pick(func(l Latency) float64 { return l.P90 })},
			{Name: "p99", X: tl.x, Y: pick(func(l Latency) float64 { return l.P99 })},
			{Name: "p99.9", X: tl.x, Y: pick(func(l Latency) float64 { return l.P999 })},
			{Name: "max", X: tl.x, Y: pick(func(l Latency) float64 { return l.Max }), Dashed: true},
		},
	}
	for _, l := range thresholdLimits(r) {
		c.HLines = append(c.HLines, chart.Ref{At: l.ms, Label: l.label})
	}
	f, err := render("latency-all", c, "Each second's latency percentiles, from that second's histogram; "+r.LatencyNote()+". Dashed red lines are the latency thresholds. Gaps are seconds without a response.")
	if err != nil {
		return nil, err
	}
	figs = append(figs, f)
	names := r.RequestNames()
	if len(names) < 2 {
		return figs, nil
	}
	p99, err := intervalP99(r, names)
	if err != nil {
		return nil, err
	}
	c = &chart.Chart{
		Title: "p99 latency per second, by request",
		X:     chart.Axis{Label: tl.label},
		Y:     chart.Axis{Label: "ms", Log: true},
	}
	for _, n := range names {
		c.Series = append(c.Series, chart.Series{Name: n, X: tl.x, Y: p99[n]})
	}
	f, err = render("latency-by-request", c, "Each second's p99 of every request name, from its per-second histogram.")
	if err != nil {
		return nil, err
	}
	return append(figs, f), nil
}

// intervalP99 decodes every per-second histogram of the named requests and
// returns their p99 (ms) by second, NaN where a name had no response. The
// names are decoded side by side.
func intervalP99(r *Run, names []string) (map[string][]float64, error) {
	out := make(map[string][]float64, len(names))
	errs := make([]error, len(names))
	series := make([][]float64, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Go(func() {
			var hr hdrReader
			ys := make([]float64, len(r.Intervals))
			for j, iv := range r.Intervals {
				ys[j] = math.NaN()
				enc, ok := iv.Histograms[n]
				if !ok {
					continue
				}
				v, count, err := hr.percentile(enc, 99)
				if err != nil {
					errs[i] = fmt.Errorf("second %d: histogram of %q: %w", iv.T, n, err)
					return
				}
				if count > 0 {
					ys[j] = float64(v) / 1000
				}
			}
			series[i] = ys
		})
	}
	wg.Wait()
	for i, n := range names {
		if errs[i] != nil {
			return nil, errs[i]
		}
		out[n] = series[i]
	}
	return out, nil
}

func trafficFigures(r *Run, tl timeline) ([]figure, error) {
	per := func(get func(iv *Interval) int64) []float64 {
		out := make([]float64, len(r.Intervals))
		for i := range r.Intervals {
			out[i] = float64(get(&r.Intervals[i])) / tl.dur[i]
		}
		return out
	}
	c := &chart.Chart{
		Title: "Requests per second",
		X:     chart.Axis{Label: tl.label},
		Y:     chart.Axis{Label: "req/s", Zero: true},
		Series: []chart.Series{
			{Name: "scheduled", X: tl.x, Y: per(func(iv *Interval) int64 { return iv.Scheduled }), Dashed: true, Color: grey},
			{Name: "sent", X: tl.x, Y: per(func(iv *Interval) int64 { return iv.Sent }), Color: chart.Palette[0]},
			{Name: "completed", X: tl.x, Y: per(func(iv *Interval) int64 { return iv.Completed }), Color: green},
		},
	}
	if r.Totals.Failed > 0 {
		c.Series = append(c.Series, chart.Series{Name: "failed", X: tl.x, Y: per(func(iv *Interval) int64 { return iv.Failed }), Color: red})
	}
	if r.Totals.Dropped > 0 {
		c.Series = append(c.Series, chart.Series{Name: "dropped", X: tl.x, Y: per(func(iv *Interval) int64 { return iv.Dropped }), Color: chart.Palette[1]})
	}
	f1, err := render("traffic-rate", c, "Arrivals the schedule asked for, requests sent, and responses per second by outcome. Sent below scheduled means arrivals waited for a VU or were dropped.")
	if err != nil {
		return nil, err
	}
	c = &chart.Chart{
		Title:  "Requests in flight",
		X:      chart.Axis{Label: tl.label},
		Y:      chart.Axis{Label: "requests", Zero: true},
		Series: []chart.Series{{Name: "in flight", X: tl.x, Y: perSecond(r, func(iv *Interval) float64 { return float64(iv.Inflight) })}},
	}
	f2, err := render("traffic-inflight", c, "Requests sent and not yet answered at the end of each second. A rising line at a steady rate is a queue growing at the target.")
	if err != nil {
		return nil, err
	}
	return []figure{f1, f2}, nil
}

func errorFigures(r *Run, tl timeline) ([]figure, error) {
	classes := sortedClasses(r)
	if len(classes) == 0 {
		return nil, nil
	}
	c := &chart.Chart{
		Title: "Errors per second, by class",
		X:     chart.Axis{Label: tl.label},
		Y:     chart.Axis{Label: "errors/s", Zero: true},
	}
	for _, cl := range classes {
		c.Series = append(c.Series, chart.Series{Name: cl, X: tl.x, Y: perSecond(r, func(iv *Interval) float64 { return float64(iv.Errors[cl]) })})
	}
	f, err := render("errors-by-class", c, "Failed requests per second by error class: transport classes (timeout, refused, reset, …), 4xx and 5xx.")
	if err != nil {
		return nil, err
	}
	return []figure{f}, nil
}

// percentileCurve is h's latency (ms) at percentiles spaced evenly on the
// 1/(1−q) axis, 20 per decade, up to the percentile its count still
// resolves. Every value is read off the histogram.
func percentileCurve(h *hdr.Histogram) (xs, ys []float64) {
	n := h.TotalCount()
	if n == 0 {
		return nil, nil
	}
	var ps []float64
	for i := 0; ; i++ {
		x := math.Pow(10, float64(i)/20)
		if x > float64(n) || x > 1e6 {
			break
		}
		xs = append(xs, x)
		ps = append(ps, 100*(1-1/x))
	}
	for _, v := range h.ValueAtPercentilesSlice(ps) {
		ys = append(ys, float64(v)/1000)
	}
	return xs, ys
}

func distFigures(r *Run, hists map[string]*hdr.Histogram, all *hdr.Histogram) ([]figure, error) {
	c := &chart.Chart{
		Title: "Latency by percentile",
		X:     chart.Axis{Label: "percentile", Log: true, Ticks: chart.PercentileTicks},
		Y:     chart.Axis{Label: "ms", Zero: true},
	}
	x, y := percentileCurve(all)
	c.Series = append(c.Series, chart.Series{Name: "all", X: x, Y: y, Color: color.Black})
	names := r.RequestNames()
	if len(names) > 1 {
		for i, n := range names {
			x, y := percentileCurve(hists[n])
			c.Series = append(c.Series, chart.Series{Name: n, X: x, Y: y, Color: chart.Palette[i%len(chart.Palette)]})
		}
	}
	f, err := render("distribution", c, "The whole run's latency distribution from its HDR histograms: each further nine of the percentile takes the same width, so the tail is as readable as the median.")
	if err != nil {
		return nil, err
	}
	return []figure{f}, nil
}

// findFigures draws a capacity search, or with drill a drill's stages.
func findFigures(f *capacity.FindResult, drill bool) ([]figure, error) {
	var figs []figure
	add := func(id string, c *chart.Chart, caption string) error {
		fig, err := render(id, c, caption)
		if err == nil {
			figs = append(figs, fig)
		}
		return err
	}
	var pass, fail chart.Series
	pass = chart.Series{Name: "step passed", Kind: chart.Points, Color: green}
	fail = chart.Series{Name: "step failed", Kind: chart.Points, Color: red}
	top := 0.0
	for _, st := range f.Steps {
		s := &fail
		if st.Passed {
			s = &pass
		}
		s.X, s.Y = append(s.X, st.Offered), append(s.Y, st.Achieved)
		top = max(top, st.Offered, st.Achieved)
	}
	c := &chart.Chart{
		Title: "Goodput achieved against rate offered",
		X:     chart.Axis{Label: "offered, req/s", Zero: true},
		Y:     chart.Axis{Label: "achieved, req/s", Zero: true},
		Series: []chart.Series{
			{Name: "ideal (achieved = offered)", X: []float64{0, top * 1.05}, Y: []float64{0, top * 1.05}, Dashed: true, Color: grey},
			pass, fail,
		},
	}
	if f.MaxQPS > 0 {
		c.VLines = append(c.VLines, chart.Ref{At: f.MaxQPS, Label: "max QPS " + rate(f.MaxQPS), Color: green})
	}
	if k := f.Knee; k != nil {
		for _, st := range f.Steps {
			if st.N == k.Step {
				c.VLines = append(c.VLines, chart.Ref{At: st.Offered, Label: "knee"})
			}
		}
	}
	if drill {
		c.Title = "Throughput achieved against the stages' rates"
	}
	if err := add("find-throughput", c, "Each step's achieved throughput against its offered rate. On the ideal line the target keeps up; below it, it saturates."); err != nil {
		return nil, err
	}

	type pt struct{ x, p50, p99 float64 }
	var pts []pt
	for _, st := range f.Steps {
		if st.Phase != "soak" && st.Achieved > 0 {
			pts = append(pts, pt{st.Achieved, st.LatencyMs.P50, st.LatencyMs.P99})
		}
	}
	slices.SortStableFunc(pts, func(a, b pt) int { return cmpFloat(a.x, b.x) })
	xs, p50, p99 := make([]float64, len(pts)), make([]float64, len(pts)), make([]float64, len(pts))
	for i, p := range pts {
		xs[i], p50[i], p99[i] = p.x, p.p50, p.p99
	}
	slos := sloLimits(f.SLO)
	c = &chart.Chart{
		Title: "Latency against throughput",
		X:     chart.Axis{Label: "achieved, req/s", Zero: true},
		Y:     chart.Axis{Label: "ms", Log: true},
		Series: []chart.Series{
			{Name: "p50", X: xs, Y: p50, Kind: chart.LinePoints},
			{Name: "p99", X: xs, Y: p99, Kind: chart.LinePoints},
		},
	}
	for _, l := range slos {
		c.HLines = append(c.HLines, chart.Ref{At: l.ms, Label: l.label})
	}
	if k := f.Knee; k != nil {
		c.VLines = append(c.VLines, chart.Ref{At: k.Throughput, Label: "knee"})
	}
	caption := "The hockey stick: latency stays flat while the target keeps up and turns up at the knee. Ramp and search steps, by throughput."
	if drill {
		caption = "The hockey stick: latency stays flat while the target keeps up and turns up at the knee. Every stage, by throughput."
	}
	if err := add("find-hockey", c, caption); err != nil {
		return nil, err
	}

	n := make([]float64, len(f.Steps))
	s50, s99 := make([]float64, len(f.Steps)), make([]float64, len(f.Steps))
	c = &chart.Chart{
		Title: "Latency by step, in search order",
		X:     chart.Axis{Label: "step"},
		Y:     chart.Axis{Label: "ms", Log: true},
	}
	for i, st := range f.Steps {
		n[i], s50[i], s99[i] = float64(st.N), st.LatencyMs.P50, st.LatencyMs.P99
		if i == 0 || st.Phase != f.Steps[i-1].Phase {
			c.VLines = append(c.VLines, chart.Ref{At: float64(st.N) - 0.5, Label: st.Phase})
		}
	}
	c.Series = []chart.Series{{Name: "p50", X: n, Y: s50, Kind: chart.LinePoints}, {Name: "p99", X: n, Y: s99, Kind: chart.LinePoints}}
	for _, l := range slos {
		c.HLines = append(c.HLines, chart.Ref{At: l.ms, Label: l.label})
	}
	if len(f.Steps) > 0 {
		c.X.Min, c.X.Max = 0.5, float64(f.Steps[len(f.Steps)-1].N)+0.5
	}
	caption = "Every step of the search in the order it ran; dotted lines mark where the ramp, the bisection and the soak begin."
	if drill {
		c.Title, c.X.Label = "Latency by stage", "stage"
		caption = "Every stage in the order it ran, measured over its hold; dotted lines name the stages."
	}
	if err := add("find-steps", c, caption); err != nil {
		return nil, err
	}

	if u := f.USL; u != nil {
		meas := chart.Series{Name: "measured", Kind: chart.Points}
		maxN := 0.0
		for _, st := range f.Steps {
			if st.Concurrency > 0 && st.Achieved > 0 {
				meas.X, meas.Y = append(meas.X, st.Concurrency), append(meas.Y, st.Achieved)
				maxN = max(maxN, st.Concurrency)
			}
		}
		end := maxN * 1.15
		if u.HasPeak && u.PeakN > maxN && u.PeakN < 4*maxN {
			end = u.PeakN * 1.3
		}
		fit := chart.Series{Name: fmt.Sprintf("USL fit (R² %.3f)", u.R2), Dashed: true}
		for i := range 101 {
			x := end * float64(i) / 100
			fit.X, fit.Y = append(fit.X, x), append(fit.Y, u.Throughput(x))
		}
		c = &chart.Chart{
			Title:  "Universal Scalability Law",
			X:      chart.Axis{Label: "concurrency (requests in flight)", Zero: true},
			Y:      chart.Axis{Label: "req/s", Zero: true},
			Series: []chart.Series{meas, fit},
		}
		if u.HasPeak {
			c.VLines = append(c.VLines, chart.Ref{At: u.PeakN, Label: "N* " + strconv.FormatFloat(u.PeakN, 'f', 1, 64)})
			c.HLines = append(c.HLines, chart.Ref{At: u.XMax, Label: "Xmax " + rate(u.XMax), Color: grey})
		}
		if err := add("find-usl", c, "Throughput against concurrency at each step, and the fitted X(N) = λN / (1 + σ(N−1) + κN(N−1))."); err != nil {
			return nil, err
		}
	}

	var svc []string
	for _, st := range f.Steps {
		for _, sv := range st.Services {
			if !slices.Contains(svc, sv.Name) {
				svc = append(svc, sv.Name)
			}
		}
	}
	if len(svc) == 0 {
		return figs, nil
	}
	ordered := slices.Clone(f.Steps)
	slices.SortStableFunc(ordered, func(a, b capacity.Step) int { return cmpFloat(a.Offered, b.Offered) })
	c = &chart.Chart{
		Title: "Service latency against offered rate",
		X:     chart.Axis{Label: "offered, req/s", Zero: true},
		Y:     chart.Axis{Label: "mean ms", Log: true},
	}
	for _, name := range svc {
		s := chart.Series{Name: name, Kind: chart.LinePoints}
		for _, st := range ordered {
			if st.Phase == "soak" {
				continue
			}
			for _, sv := range st.Services {
				if sv.Name == name && sv.Error == "" && sv.MeanLatencyMs > 0 {
					s.X, s.Y = append(s.X, st.Offered), append(s.Y, sv.MeanLatencyMs)
				}
			}
		}
		c.Series = append(c.Series, s)
	}
	if f.FirstSaturated != "" {
		for _, st := range f.Steps {
			if st.N == f.FirstSaturatedStep {
				c.VLines = append(c.VLines, chart.Ref{At: st.Offered, Label: f.FirstSaturated + " saturates", Color: red})
			}
		}
	}
	if err := add("find-services", c, "Each scraped service's mean latency per step; the first to double its lowest-rate latency saturated first."); err != nil {
		return nil, err
	}
	return figs, nil
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func compareFigures(b, r *Run, ball, rall *hdr.Histogram) ([]figure, error) {
	bx, by := percentileCurve(ball)
	rx, ry := percentileCurve(rall)
	c := &chart.Chart{
		Title: "Latency by percentile: baseline and run",
		X:     chart.Axis{Label: "percentile", Log: true, Ticks: chart.PercentileTicks},
		Y:     chart.Axis{Label: "ms", Zero: true},
		Series: []chart.Series{
			{Name: "baseline", X: bx, Y: by, Dashed: true, Color: grey},
			{Name: "run", X: rx, Y: ry, Color: chart.Palette[0]},
		},
	}
	f1, err := render("compare-distribution", c, "Both runs' whole latency distributions from their histograms. The run above the baseline is slower at those percentiles.")
	if err != nil {
		return nil, err
	}
	// Both on the run's time unit, so that the lines align.
	tb, tr := newTimeline(b), newTimeline(r)
	if b.DurationS > 900 != (r.DurationS > 900) {
		tb = newTimeline(&Run{DurationS: r.DurationS, Intervals: b.Intervals})
	}
	p := func(run *Run, get func(Latency) float64) []float64 {
		return perSecond(run, func(iv *Interval) float64 {
			if iv.LatencyMs.Count == 0 {
				return math.NaN()
			}
			return get(iv.LatencyMs)
		})
	}
	p99 := func(l Latency) float64 { return l.P99 }
	p50 := func(l Latency) float64 { return l.P50 }
	c = &chart.Chart{
		Title: "Latency per second: baseline and run",
		X:     chart.Axis{Label: tr.label},
		Y:     chart.Axis{Label: "ms", Log: true},
		Series: []chart.Series{
			{Name: "baseline p50", X: tb.x, Y: p(b, p50), Dashed: true, Color: chart.Palette[2]},
			{Name: "baseline p99", X: tb.x, Y: p(b, p99), Dashed: true, Color: grey},
			{Name: "run p50", X: tr.x, Y: p(r, p50), Color: green},
			{Name: "run p99", X: tr.x, Y: p(r, p99), Color: chart.Palette[0]},
		},
	}
	f2, err := render("compare-time", c, "Each second's p50 and p99 of both runs, from the start of each.")
	if err != nil {
		return nil, err
	}
	return []figure{f1, f2}, nil
}
