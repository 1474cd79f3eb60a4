package reports

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"text/tabwriter"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/loadcap/loadcap/scenarios/slo"
)

// Check is one allowance tested against one request name (or "all").
type Check struct {
	Request   string  // a request name, or "all"
	Allowance string  // as written: "p(99)+10%"
	Unit      string  // of Delta and CI: "%" (relative), "ms" or "pp"
	Baseline  float64 // the figure: ms, req/s or a fraction (error rate); NaN without data
	Run       float64
	Change    string // "+12.3%", "-4.0 ms", "+0.20pp"
	// Delta is the change from the baseline to the run in Unit, signed:
	// positive when the figure went up. NaN when either run has no data.
	Delta float64
	// CI is the 95% bootstrap interval of Delta, or nil when the noise
	// could not be assessed; Noise then says why.
	CI        *CI
	Noise     string
	Regressed bool
}

// CI is a confidence interval, Low ≤ High, in the unit of its Check.
type CI struct{ Low, High float64 }

// Comparison is a run measured against a baseline.
type Comparison struct {
	Checks    []Check
	Regressed bool
	Resamples int // bootstrap resamples drawn per run and request name
}

// Defaults of the noise assessment.
const (
	// DefaultResamples is how many bootstrap resamples Compare draws from
	// each run.
	DefaultResamples = 1000
	// Confidence is the coverage of the interval that must lie beyond an
	// allowance for a regression.
	Confidence = 0.95
	// MinNoiseIntervals is the fewest one-second intervals each run needs
	// for its noise to be assessed.
	MinNoiseIntervals = 10
	// bootstrapSeed fixes the resamples: comparing the same files gives
	// the same intervals every time.
	bootstrapSeed = 0x6c6f6164636170
)

// CompareOption tunes Compare.
type CompareOption func(*compareConfig)

type compareConfig struct{ resamples int }

// Resamples sets the number of bootstrap resamples per run (default
// DefaultResamples); fewer are faster and give rougher intervals.
func Resamples(n int) CompareOption {
	return func(c *compareConfig) {
		if n > 0 {
			c.resamples = n
		}
	}
}

// Compare tests run against baseline, overall and for every request name
// both have, with every allowance.
//
// Each figure is first computed on the whole of both runs: latencies from
// the merged HDR histograms, exact; rps as (completed+failed)/duration; the
// error rate as failed/(completed+failed). Their change is the check's
// Change and Delta. A check regresses only when that change exceeds the
// allowance and the change is beyond noise: the whole 95% confidence
// interval of the change lies beyond the allowance too.
//
// The interval comes from a non-overlapping block bootstrap over the runs'
// one-second intervals. Each run's T intervals are cut into K = ⌈T/L⌉
// consecutive blocks of about L = round(∛T) seconds (so that the
// autocorrelation within a few seconds stays inside a block). One resample
// draws K blocks uniformly with replacement and merges their per-interval
// histograms (of the request name checked, or of all) and counters; the
// figure is computed on that merge exactly as on the whole run, rps over
// the drawn blocks' duration. Compare draws DefaultResamples resamples (or
// as many as Resamples says) of the baseline and, independently, of the
// run, pairs them in order, and takes the change of each pair; the
// interval is the 2.5th and 97.5th percentiles (nearest rank) of those
// changes. The random generator is seeded with a constant, so the same
// files always give the same verdict.
//
// The noise is not assessed, and the point change alone decides as it did
// before, when either run has fewer than MinNoiseIntervals intervals or no
// per-interval histograms, and for a single request's error rate (the run
// result counts failures per second for all requests only); Check.Noise
// says why and Check.CI is nil.
func Compare(baseline, run *Run, allow []slo.Allowance, opts ...CompareOption) (*Comparison, error) {
	cfg := compareConfig{resamples: DefaultResamples}
	for _, o := range opts {
		o(&cfg)
	}
	c := &Comparison{Resamples: cfg.resamples}
	names := []string{""}
	for _, n := range run.RequestNames() {
		if _, ok := baseline.Requests[n]; ok {
			names = append(names, n)
		}
	}
	bi, ri := inflate(baseline), inflate(run)
	for _, name := range names {
		bv, err := figures(baseline, name)
		if err != nil {
			return nil, fmt.Errorf("baseline: %w", err)
		}
		rv, err := figures(run, name)
		if err != nil {
			return nil, fmt.Errorf("run: %w", err)
		}
		bs := resample(baseline, bi, name, allow, cfg.resamples, 1)
		rs := resample(run, ri, name, allow, cfg.resamples, 2)
		label := name
		if label == "" {
			label = "all"
		}
		for _, a := range allow {
			ch := check(a, bv, rv)
			ch.Request = label
			noise(&ch, a, bs, rs)
			c.Checks = append(c.Checks, ch)
			c.Regressed = c.Regressed || ch.Regressed
		}
	}
	return c, nil
}

// figs is what the allowances read from one run for one request name
// ("" = all): its latency histogram, rps and error rate.
type figs struct {
	h          *hdr.Histogram
	rps, errRt float64
}

func figures(r *Run, name string) (figs, error) {
	var f figs
	names := r.RequestNames()
	t := r.Totals
	if name != "" {
		names = []string{name}
		t = r.Requests[name].Totals
	}
	for _, n := range names {
		h, err := r.Histogram(n)
		if err != nil {
			return f, err
		}
		if f.h == nil {
			f.h = hdr.New(1, h.HighestTrackableValue(), int(h.SignificantFigures()))
		}
		f.h.Merge(h)
	}
	f.rps = t.RPS
	if n := t.Completed + t.Failed; n > 0 {
		f.errRt = float64(t.Failed) / float64(n)
	}
	return f, nil
}

// latencyMs is the allowance's latency figure of h in ms; NaN when empty.
func latencyMs(a slo.Allowance, h *hdr.Histogram) float64 { return a.Expr().OfTrend(h) }

// delta is the change from b to r in the allowance's unit.
func delta(a slo.Allowance, b, r float64) float64 {
	d := r - b
	switch {
	case a.Unit == "ms":
		return d
	case a.Unit == "pp":
		return 100 * d
	case b != 0:
		return 100 * d / b
	case d == 0:
		return 0
	}
	return math.Inf(int(math.Copysign(1, d)))
}

// beyond reports whether a change d (in the allowance's unit) exceeds the
// allowance in the metric's bad direction: down for rps, up otherwise.
func beyond(a slo.Allowance, d float64) bool {
	if a.Metric == "rps" {
		return -d > a.Limit
	}
	return d > a.Limit
}

func check(a slo.Allowance, b, r figs) Check {
	ch := Check{Allowance: a.Text, Unit: a.Unit}
	switch a.Metric {
	case "rps":
		ch.Baseline, ch.Run = b.rps, r.rps
	case "error_rate":
		ch.Baseline, ch.Run = b.errRt, r.errRt
	default:
		ch.Baseline, ch.Run = latencyMs(a, b.h), latencyMs(a, r.h)
	}
	if math.IsNaN(ch.Baseline) || math.IsNaN(ch.Run) {
		ch.Change, ch.Delta = "no data", math.NaN()
		return ch
	}
	ch.Delta = delta(a, ch.Baseline, ch.Run)
	ch.Change = formatDelta(a.Unit, ch.Delta)
	ch.Regressed = beyond(a, ch.Delta)
	return ch
}

func formatDelta(unit string, d float64) string {
	switch unit {
	case "ms":
		return fmt.Sprintf("%+.2f ms", d)
	case "pp":
		return fmt.Sprintf("%+.2fpp", d)
	}
	return fmt.Sprintf("%+.1f%%", d)
}

// noise sets the check's confidence interval from the resamples of both
// runs, and withdraws a regression that is within it.
func noise(ch *Check, a slo.Allowance, b, r *resampled) {
	if math.IsNaN(ch.Delta) {
		return
	}
	switch {
	case b.reason != "":
		ch.Noise = "baseline: " + b.reason
		return
	case r.reason != "":
		ch.Noise = "run: " + r.reason
		return
	}
	bs, rs := b.series(a), r.series(a)
	if bs == nil || rs == nil {
		ch.Noise = "no failure counts per second for one request"
		return
	}
	ds := make([]float64, 0, len(bs))
	for i := range bs {
		if d := delta(a, bs[i], rs[i]); !math.IsNaN(d) {
			ds = append(ds, d)
		}
	}
	if len(ds) < len(bs)/2 {
		ch.Noise = "too few resamples with data"
		return
	}
	slices.Sort(ds)
	rank := func(q float64) float64 { return ds[max(0, int(math.Ceil(q*float64(len(ds))))-1)] }
	tail := (1 - Confidence) / 2
	ch.CI = &CI{Low: rank(tail), High: rank(1 - tail)}
	// The whole interval beyond the allowance: its best end is.
	best := ch.CI.Low
	if a.Metric == "rps" {
		best = ch.CI.High
	}
	ch.Regressed = ch.Regressed && beyond(a, best)
}

// resampled is one run's figures for one request name ("" = all) over
// the bootstrap resamples, in the units of Check.Baseline.
type resampled struct {
	lat    map[string][]float64 // by latencyKey
	rps    []float64
	errRt  []float64 // nil: no per-second failure counts for this name
	reason string    // why the noise cannot be assessed; "" when it can
}

func latencyKey(a slo.Allowance) string { return a.Metric + strconv.FormatFloat(a.Pct, 'g', -1, 64) }

func (r *resampled) series(a slo.Allowance) []float64 {
	switch a.Metric {
	case "rps":
		return r.rps
	case "error_rate":
		return r.errRt
	}
	return r.lat[latencyKey(a)]
}

// block is consecutive intervals of a run, merged: latency counts by slot
// of the run's bucket table (ascending, with running totals), requests,
// failures and duration.
type block struct {
	slots        []int32
	cum          []int64 // cum[i]: the counts at slots[0..i]
	dense        []int64 // when not nil, dense[s] is countTo(s) for every slot
	sumMid       float64 // Σ count·median equivalent value, µs
	done, failed int64
	durS         float64
}

// maxDense bounds the running counts kept for every block and bucket (8
// bytes each); beyond it, countTo searches.
const maxDense = 1 << 22

// countTo is the block's count at slots ≤ s.
func (b *block) countTo(s int32) int64 {
	if b.dense != nil {
		return b.dense[s]
	}
	i, found := slices.BinarySearch(b.slots, s)
	if found {
		return b.cum[i]
	}
	if i == 0 {
		return 0
	}
	return b.cum[i-1]
}

func (b *block) total() int64 {
	if len(b.cum) == 0 {
		return 0
	}
	return b.cum[len(b.cum)-1]
}

// buckets is the table of the HDR buckets a run's intervals use, by value,
// with the values a histogram reports for each: the highest equivalent
// value (percentiles, max) and the median equivalent value (mean), in µs.
type buckets struct {
	hi  []int64
	mid []float64
}

// resample draws n block-bootstrap resamples of r (its histograms
// inflated in in) for the named request ("" = all), computing every
// figure allow needs; stream separates the random sequences of the two
// runs. A resample adds up the drawn blocks' bucket counts and reads the
// figures off the sum the way an HDR histogram does: the same rank rule,
// the same bucket values.
func resample(r *Run, in *inflated, name string, allow []slo.Allowance, n int, stream uint64) *resampled {
	out := &resampled{lat: map[string][]float64{}}
	t := len(r.Intervals)
	if t < MinNoiseIntervals {
		out.reason = fmt.Sprintf("%d one-second intervals, fewer than %d", t, MinNoiseIntervals)
		return out
	}
	names := r.RequestNames()
	if name != "" {
		names = []string{name}
	}
	l := max(1, int(math.Round(math.Cbrt(float64(t)))))
	k := (t + l - 1) / l
	blocks, tab, err := buildBlocks(r, in, names, k)
	if err != nil {
		out.reason = err.Error()
		return out
	}
	if name != "" {
		// The per-request counters are the histograms' counts.
		for i := range blocks {
			blocks[i].done = blocks[i].total()
		}
	}
	var pcts []float64
	for _, a := range allow {
		if a.Metric == "p" && !slices.Contains(pcts, a.Pct) {
			pcts = append(pcts, a.Pct)
		}
	}
	slices.Sort(pcts)
	h := fnv.New64a()
	h.Write([]byte(name))
	rng := rand.New(rand.NewPCG(bootstrapSeed, stream<<56^h.Sum64()))
	out.rps = make([]float64, n)
	if name == "" {
		out.errRt = make([]float64, n)
	}
	for _, a := range allow {
		if a.Metric != "rps" && a.Metric != "error_rate" {
			out.lat[latencyKey(a)] = make([]float64, n)
		}
	}
	mult := make([]int64, k)
	drawn := make([]int, 0, k)
	qs := make([]float64, len(pcts))
	for i := range n {
		drawn = drawn[:0]
		for range k {
			j := rng.IntN(k)
			if mult[j] == 0 {
				drawn = append(drawn, j)
			}
			mult[j]++
		}
		var done, failed, total int64
		var dur, mid float64
		top := int32(-1)
		for _, j := range drawn {
			b, m := &blocks[j], mult[j]
			done += m * b.done
			failed += m * b.failed
			dur += float64(m) * b.durS
			total += m * b.total()
			mid += float64(m) * b.sumMid
			if len(b.slots) > 0 {
				top = max(top, b.slots[len(b.slots)-1])
			}
		}
		out.rps[i] = float64(done) / dur
		if out.errRt != nil {
			out.errRt[i] = math.NaN()
			if done > 0 {
				out.errRt[i] = float64(failed) / float64(done)
			}
		}
		mean, maxV := math.NaN(), math.NaN()
		for q := range qs {
			qs[q] = math.NaN()
		}
		if total > 0 {
			mean, maxV = mid/float64(total), float64(tab.hi[top])
			for q, p := range pcts {
				// The first slot whose running count reaches the rank.
				rank := hdrRank(p, total)
				s := sort.Search(int(top)+1, func(s int) bool {
					var c int64
					for _, j := range drawn {
						c += mult[j] * blocks[j].countTo(int32(s))
					}
					return c >= rank
				})
				qs[q] = float64(tab.hi[s])
			}
		}
		for _, j := range drawn {
			mult[j] = 0
		}
		for _, a := range allow {
			var v float64
			switch a.Metric {
			case "rps", "error_rate":
				continue
			case "avg":
				v = mean
			case "max":
				v = maxV
			default:
				v = qs[slices.Index(pcts, a.Pct)]
			}
			out.lat[latencyKey(a)][i] = v / 1000
		}
	}
	return out
}

// hdrRank is the rank of percentile p (0 < p ≤ 100) among total values
// by the rule of hdrhistogram-go's ValueAtPercentile: the nearest rank,
// at least 1, at most total.
func hdrRank(p float64, total int64) int64 {
	rank := p/100*float64(total) + 0.5
	switch {
	case !(rank >= 1):
		return 1
	case rank >= float64(total):
		return total
	}
	return int64(rank)
}

// inflated is a run's per-second histograms, inflated once for every
// request name set Compare resamples: the payloads back to back in arena,
// and for each request name and second the span of its payload (empty:
// no histogram that second).
type inflated struct {
	geom   hdrGeom
	arena  []byte
	spans  map[string][][2]int
	reason string // why the histograms cannot be resampled; "" when they can
}

func inflate(r *Run) *inflated {
	in := &inflated{spans: map[string][][2]int{}}
	if len(r.Intervals) < MinNoiseIntervals {
		return in
	}
	var hr hdrReader
	seen := false
	for i, iv := range r.Intervals {
		for _, nm := range slices.Sorted(maps.Keys(iv.Histograms)) {
			g, err := hr.read(iv.Histograms[nm])
			if err != nil {
				in.reason = fmt.Sprintf("second %d: histogram of %q: %v", iv.T, nm, err)
				return in
			}
			if !seen {
				in.geom, seen = g, true
			} else if g.Lowest != in.geom.Lowest || g.Digits != in.geom.Digits {
				in.reason = fmt.Sprintf("second %d: histogram of %q has another precision than the others", iv.T, nm)
				return in
			}
			if in.spans[nm] == nil {
				in.spans[nm] = make([][2]int, len(r.Intervals))
			}
			from := len(in.arena)
			in.arena = append(in.arena, hr.payload...)
			in.spans[nm][i] = [2]int{from, len(in.arena)}
		}
	}
	if !seen {
		in.reason = "no per-interval histograms"
	}
	return in
}

// buildBlocks cuts r's intervals into k blocks of consecutive seconds and
// sums, per block, the per-second histograms of names (inflated in in) by
// bucket, and the requests, failures and seconds. The buckets are numbered
// in value order over all blocks (the returned table); each block keeps
// the running totals of the buckets it has.
func buildBlocks(r *Run, in *inflated, names []string, k int) ([]block, buckets, error) {
	if in.reason != "" {
		return nil, buckets{}, errors.New(in.reason)
	}
	t := len(r.Intervals)
	blocks := make([]block, k)
	geom := in.geom
	// Pass 1: which buckets (by flat index) any of them uses.
	var present []bool
	for _, nm := range names {
		for _, sp := range in.spans[nm] {
			err := walkPayload(in.arena[sp[0]:sp[1]], func(idx, _ int64) bool {
				if idx >= int64(len(present)) {
					present = append(present, make([]bool, idx-int64(len(present))+1)...)
				}
				present[idx] = true
				return true
			})
			if err != nil {
				return nil, buckets{}, err
			}
		}
	}
	if len(present) == 0 {
		return nil, buckets{}, errors.New("no per-interval histograms")
	}
	slotOf := make([]int32, len(present))
	var tab buckets
	for idx, ok := range present {
		if ok {
			slotOf[idx] = int32(len(tab.hi))
			lo, hi := geom.bucket(int64(idx))
			// What a histogram reports there: the highest equivalent value
			// for percentiles and the maximum, the median one for the mean.
			tab.hi = append(tab.hi, hi)
			tab.mid = append(tab.mid, float64(lo+(hi-lo+1)/2))
		}
	}
	u := len(tab.hi)
	dense := u*k <= maxDense

	// Pass 2: the blocks' counts, one block at a time (blocks are
	// consecutive seconds).
	acc := make([]int64, u)
	cur := 0
	finish := func(bi int) {
		b := &blocks[bi]
		var cum int64
		if dense {
			b.dense = make([]int64, u)
		}
		for s, c := range acc {
			if c > 0 {
				cum += c
				b.slots = append(b.slots, int32(s))
				b.cum = append(b.cum, cum)
				b.sumMid += float64(c) * tab.mid[s]
			}
			if dense {
				b.dense[s] = cum
			}
		}
		clear(acc)
	}
	prevEnd := 0.0
	for i, iv := range r.Intervals {
		bi := i * k / t
		if bi != cur {
			finish(cur)
			cur = bi
		}
		b := &blocks[bi]
		dur := iv.EndS - prevEnd
		if dur <= 0 {
			dur = 1
		}
		prevEnd = iv.EndS
		b.durS += dur
		b.done += iv.Completed + iv.Failed
		b.failed += iv.Failed
		for _, nm := range names {
			if sp := in.spans[nm]; sp != nil {
				_ = walkPayload(in.arena[sp[i][0]:sp[i][1]], func(idx, c int64) bool {
					acc[slotOf[idx]] += c
					return true
				})
			}
		}
	}
	finish(cur)
	return blocks, tab, nil
}

// WriteText prints the comparison as a table and a verdict.
func (c *Comparison) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "request\tallowed\tbaseline\trun\tchange\t95% interval\tverdict")
	unassessed := false
	for _, ch := range c.Checks {
		verdict := "ok"
		if ch.Regressed {
			verdict = "REGRESSED"
		} else if beyondPoint(ch) {
			verdict = "ok (within noise)"
		}
		ci := "n/a"
		if ch.CI != nil {
			ci = ch.CI.String(ch.Unit)
		} else if !math.IsNaN(ch.Delta) {
			unassessed = true
		}
		fmt.Fprintf(tw, "%s\t%s\t%.4g\t%.4g\t%s\t%s\t%s\n", ch.Request, ch.Allowance, ch.Baseline, ch.Run, ch.Change, ci, verdict)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "a limit is exceeded only when the whole 95%% interval of the change is beyond it (block bootstrap over the runs' seconds, %d resamples)\n", c.Resamples)
	if unassessed {
		fmt.Fprintf(w, "n/a: noise not assessed (runs under %d s of per-second histograms, or a single request's error rate): the change alone decides\n", MinNoiseIntervals)
	}
	verdict := "no regression"
	if c.Regressed {
		verdict = "REGRESSION against the baseline"
	}
	_, err := fmt.Fprintln(w, verdict)
	return err
}

// beyondPoint reports whether the check's point change exceeds its
// allowance, whatever the noise.
func beyondPoint(ch Check) bool {
	a, err := slo.ParseAllowance(ch.Allowance)
	return err == nil && !math.IsNaN(ch.Delta) && beyond(a, ch.Delta)
}

// String writes the interval in unit, like Check.Change.
func (ci CI) String(unit string) string {
	return formatDelta(unit, ci.Low) + " … " + formatDelta(unit, ci.High)
}

// CompareSchema names the JSON form of a Comparison.
const CompareSchema = "loadcap.compare/v1"

// compareJSON is the JSON form of a Comparison. Figures without data and
// infinite changes are null.
type compareJSON struct {
	Schema     string      `json:"schema"`
	Regressed  bool        `json:"regressed"`
	Confidence float64     `json:"confidence"`
	Resamples  int         `json:"resamples"`
	Method     string      `json:"method"`
	Checks     []checkJSON `json:"checks"`
}

type checkJSON struct {
	Request         string   `json:"request"`
	Allowance       string   `json:"allowance"`
	Unit            string   `json:"unit"`
	Baseline        *float64 `json:"baseline"`
	Run             *float64 `json:"run"`
	Change          string   `json:"change"`
	Delta           *float64 `json:"delta"`
	CI              *ciJSON  `json:"ci_95"`
	Noise           string   `json:"noise,omitempty"`
	BeyondAllowance bool     `json:"beyond_allowance"` // the change alone exceeds the allowance
	Regressed       bool     `json:"regressed"`
}

type ciJSON struct {
	Low  *float64 `json:"low"`
	High *float64 `json:"high"`
}

// MarshalJSON writes c as schema loadcap.compare/v1: {"schema",
// "regressed", "confidence", "resamples", "method", "checks": [{"request",
// "allowance", "unit", "baseline", "run", "change", "delta", "ci_95":
// {"low", "high"}, "noise", "beyond_allowance", "regressed"}]}. Figures
// without data, and infinite changes, are null; ci_95 is null when the
// noise was not assessed.
func (c *Comparison) MarshalJSON() ([]byte, error) {
	out := compareJSON{Schema: CompareSchema, Regressed: c.Regressed, Confidence: Confidence, Resamples: c.Resamples,
		Method: "block bootstrap over one-second intervals; a regression when the change and its whole 95% interval exceed the allowance",
		Checks: []checkJSON{}}
	for _, ch := range c.Checks {
		x := checkJSON{Request: ch.Request, Allowance: ch.Allowance, Unit: ch.Unit, Baseline: jsonNum(ch.Baseline), Run: jsonNum(ch.Run),
			Change: ch.Change, Delta: jsonNum(ch.Delta), Noise: ch.Noise, BeyondAllowance: beyondPoint(ch), Regressed: ch.Regressed}
		if ch.CI != nil {
			x.CI = &ciJSON{Low: jsonNum(ch.CI.Low), High: jsonNum(ch.CI.High)}
		}
		out.Checks = append(out.Checks, x)
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads what MarshalJSON writes; nulls become NaN.
func (c *Comparison) UnmarshalJSON(b []byte) error {
	var in compareJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	if in.Schema != CompareSchema {
		return fmt.Errorf("comparison: schema %q, want %q", in.Schema, CompareSchema)
	}
	num := func(p *float64) float64 {
		if p == nil {
			return math.NaN()
		}
		return *p
	}
	*c = Comparison{Regressed: in.Regressed, Resamples: in.Resamples}
	for _, x := range in.Checks {
		ch := Check{Request: x.Request, Allowance: x.Allowance, Unit: x.Unit, Baseline: num(x.Baseline), Run: num(x.Run),
			Change: x.Change, Delta: num(x.Delta), Noise: x.Noise, Regressed: x.Regressed}
		if x.CI != nil {
			ch.CI = &CI{Low: num(x.CI.Low), High: num(x.CI.High)}
		}
		c.Checks = append(c.Checks, ch)
	}
	return nil
}

// WriteJSON writes c as indented JSON (see MarshalJSON).
func (c *Comparison) WriteJSON(w io.Writer) error {
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode comparison: %w", err)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err = w.Write(out.Bytes())
	return err
}

func jsonNum(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}
