package k6

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.k6.io/k6/errext"
	"go.k6.io/k6/lib"
	"go.k6.io/k6/metrics"
	"go.k6.io/k6/output"

	"github.com/loadcap/loadcap/scenarios/slo"
)

// outputName is the k6 output (--out loadcap=FD) that streams to the parent.
const outputName = "loadcap"

// Abort reasons in the final frame: why k6 stopped the test early.
const (
	abortUser      = "user"      // a signal (the parent forwards its own)
	abortThreshold = "threshold" // an abortOnFail threshold of the script
	abortScript    = "script"    // an exception, test.abort(), a timeout, an output
)

// flushEvery is how often the output checks for intervals to close.
const flushEvery = 100 * time.Millisecond

// k6Output is the output extension inside the child: it aggregates k6's
// samples per second and writes frames to the pipe the parent reads. k6
// calls AddMetricSamples from one goroutine; the flusher writes frames.
type k6Output struct {
	w     io.WriteCloser
	bw    *bufio.Writer
	enc   *json.Encoder
	hello helloFrame
	agg   *aggregator

	thresholds map[string]metrics.Thresholds
	builtin    *metrics.BuiltinMetrics
	stopTest   func(error)

	mu   sync.Mutex // guards seen
	seen map[string]*metrics.Metric

	wmu  sync.Mutex // guards writing
	werr error

	done     chan struct{}
	wg       sync.WaitGroup
	stopOnce sync.Once
	stopErr  error
}

var (
	_ output.WithThresholds        = (*k6Output)(nil)
	_ output.WithBuiltinMetrics    = (*k6Output)(nil)
	_ output.WithTestRunStop       = (*k6Output)(nil)
	_ output.WithStopWithTestError = (*k6Output)(nil)
)

// newOutput is the extension's constructor: the config argument is the
// file descriptor of the pipe to the parent.
func newOutput(p output.Params) (output.Output, error) {
	fd, err := strconv.Atoi(p.ConfigArgument)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("output %s: want --out %s=FD with FD ≥ 3, got %q", outputName, outputName, p.ConfigArgument)
	}
	f := os.NewFile(uintptr(fd), "loadcap-pipe")
	if f == nil {
		return nil, fmt.Errorf("output %s: fd %d is not open", outputName, fd)
	}
	return newStreamOutput(f, p), nil
}

func newStreamOutput(w io.WriteCloser, p output.Params) *k6Output {
	o := &k6Output{w: w, bw: bufio.NewWriterSize(w, 64<<10), seen: map[string]*metrics.Metric{}, done: make(chan struct{})}
	o.enc = json.NewEncoder(o.bw)
	for name := range p.ScriptOptions.Scenarios {
		o.hello.Scenarios = append(o.hello.Scenarios, name)
	}
	slices.Sort(o.hello.Scenarios)
	o.hello.Planned = planned(p)
	return o
}

// planned is the test's planned length without graceful stops, for the
// progress line: the latest scenario end; the end of k6's execution plan
// when the scenarios cannot say.
func planned(p output.Params) time.Duration {
	end, _ := lib.GetEndOffset(p.ExecutionPlan)
	opts := p.ScriptOptions
	et, err := lib.NewExecutionTuple(opts.ExecutionSegment, opts.ExecutionSegmentSequence)
	if err != nil || len(opts.Scenarios) == 0 {
		return end
	}
	var last time.Duration
	for _, cfg := range opts.Scenarios {
		e, _ := lib.GetEndOffset(cfg.GetExecutionRequirements(et))
		last = max(last, cfg.GetStartTime()+e-cfg.GetGracefulStop())
	}
	if last <= 0 {
		return end
	}
	return last
}

// Description implements output.Output.
func (o *k6Output) Description() string { return outputName + " (to the parent loadcap)" }

// SetThresholds implements output.WithThresholds: k6's own threshold
// objects, whose verdicts its metrics engine sets before the outputs stop.
func (o *k6Output) SetThresholds(t map[string]metrics.Thresholds) { o.thresholds = t }

// SetBuiltinMetrics implements output.WithBuiltinMetrics.
func (o *k6Output) SetBuiltinMetrics(b *metrics.BuiltinMetrics) { o.builtin = b }

// SetTestRunStopCallback implements output.WithTestRunStop: the test stops
// when the parent no longer reads.
func (o *k6Output) SetTestRunStopCallback(fn func(error)) { o.stopTest = fn }

// Start implements output.Output.
func (o *k6Output) Start() error {
	o.agg = newAggregator(time.Now(), DefaultMaxSeries)
	if err := o.write(&frame{Hello: &o.hello}); err != nil {
		return err
	}
	o.wg.Add(1)
	go o.flusher()
	return nil
}

func (o *k6Output) flusher() {
	defer o.wg.Done()
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-o.done:
			return
		case now := <-t.C:
			for _, f := range o.agg.due(now) {
				if err := o.write(&frame{Interval: f}); err != nil {
					if o.stopTest != nil {
						o.stopTest(fmt.Errorf("loadcap stopped reading the results: %w", err))
					}
					return
				}
			}
		}
	}
}

// write sends one frame; after the first error it sends nothing more.
func (o *k6Output) write(f *frame) error {
	o.wmu.Lock()
	defer o.wmu.Unlock()
	if o.werr != nil {
		return o.werr
	}
	if err := o.enc.Encode(f); err != nil {
		o.werr = err
		return err
	}
	o.werr = o.bw.Flush()
	return o.werr
}

// AddMetricSamples implements output.Output. It aggregates in place: a
// few map lookups per sample.
func (o *k6Output) AddMetricSamples(batch []metrics.SampleContainer) {
	if len(o.thresholds) > 0 {
		o.mu.Lock()
		for _, c := range batch {
			for _, s := range c.GetSamples() {
				if _, ok := o.seen[s.Metric.Name]; !ok {
					o.seen[s.Metric.Name] = s.Metric
				}
			}
		}
		o.mu.Unlock()
	}
	o.agg.add(batch)
}

// Stop implements output.Output.
func (o *k6Output) Stop() error { return o.StopWithTestError(nil) }

// StopWithTestError implements output.WithStopWithTestError: k6 calls it
// after its last threshold evaluation, with the error the test ended with.
func (o *k6Output) StopWithTestError(testErr error) error {
	o.stopOnce.Do(func() { o.stopErr = o.stop(testErr) })
	return o.stopErr
}

func (o *k6Output) stop(testErr error) error {
	if o.agg == nil { // never started
		return o.w.Close()
	}
	close(o.done)
	o.wg.Wait()
	now := time.Now()
	var err error
	for _, f := range o.agg.finish(now) {
		err = errors.Join(err, o.write(&frame{Interval: f}))
	}
	fin := &finalFrame{}
	if start := o.agg.startTime(); !start.IsZero() {
		fin.End = now.Sub(start)
	}
	fin.Thresholds = o.verdicts(fin.End)
	if testErr != nil {
		fin.Error = testErr.Error()
		fin.AbortReason = abortReason(testErr)
		var ec errext.HasExitCode
		if errors.As(testErr, &ec) {
			fin.ExitCode = int(ec.ExitCode())
		}
	}
	err = errors.Join(err, o.write(&frame{Final: fin}), o.w.Close())
	return err
}

func abortReason(err error) string {
	var ar errext.HasAbortReason
	if !errors.As(err, &ar) {
		return abortScript
	}
	switch ar.AbortReason() {
	case errext.AbortedByUser:
		return abortUser
	case errext.AbortedByThreshold:
		return abortThreshold
	case errext.AbortedByThresholdsAfterTestEnd:
		return "" // failed thresholds, not an early stop
	}
	return abortScript
}

// verdicts lists k6's verdict on every threshold of the script, with the
// value k6 tested (from its own sinks, so exact), sorted by metric. dur is
// the test's length, for rates of counters.
func (o *k6Output) verdicts(dur time.Duration) []thresholdResult {
	var out []thresholdResult
	for _, key := range sortedKeys(o.thresholds) {
		m := o.metricFor(key)
		for _, t := range o.thresholds[key].Thresholds {
			out = append(out, thresholdResult{
				Metric: key, Expr: t.Source, Failed: t.LastFailed, Abort: t.AbortOnFail,
				Value: sinkValue(m, t.Source, dur),
			})
		}
	}
	return out
}

// metricFor finds the metric (or sub-metric) a threshold key names among
// the metrics seen in samples and k6's built-in ones; nil when none.
func (o *k6Output) metricFor(key string) *metrics.Metric {
	name, sub, _ := strings.Cut(key, "{")
	name = strings.TrimSpace(name)
	o.mu.Lock()
	m := o.seen[name]
	o.mu.Unlock()
	if m == nil && o.builtin != nil {
		m = builtinByName(o.builtin, name)
	}
	if m == nil || sub == "" {
		return m
	}
	want := normTags(strings.TrimSuffix(strings.TrimSpace(sub), "}"))
	for _, sm := range m.Submetrics {
		if sm.Name == key || normTags(sm.Suffix) == want {
			return sm.Metric
		}
	}
	return nil
}

// normTags normalizes "k: 'v', k2:v2" for comparison.
func normTags(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		k, v, _ := strings.Cut(p, ":")
		parts[i] = strings.Trim(strings.TrimSpace(k), `"'`) + ":" + strings.Trim(strings.TrimSpace(v), `"'`)
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

func builtinByName(b *metrics.BuiltinMetrics, name string) *metrics.Metric {
	for _, m := range []*metrics.Metric{
		b.HTTPReqs, b.HTTPReqFailed, b.HTTPReqDuration, b.Iterations, b.IterationDuration,
		b.DroppedIterations, b.Checks, b.DataSent, b.DataReceived, b.VUs, b.VUsMax,
	} {
		if m != nil && m.Name == name {
			return m
		}
	}
	return nil
}

// sinkValue is the aggregate a threshold expression tests, from k6's sink
// of m, as k6 computes it; nil without data. dur is the test's duration,
// for the rate of a counter.
func sinkValue(m *metrics.Metric, expr string, dur time.Duration) *float64 {
	if m == nil || m.Sink == nil || m.Sink.IsEmpty() {
		return nil
	}
	e, err := slo.ParseThreshold(expr)
	if err != nil {
		return nil
	}
	agg := string(e.Agg)
	v := math.NaN()
	switch s := m.Sink.(type) {
	case *metrics.TrendSink:
		switch e.Agg {
		case slo.P:
			v = s.P(e.Pct / 100)
		case slo.Avg:
			v = s.Avg()
		case slo.Min:
			v = s.Min()
		case slo.Max:
			v = s.Max()
		case slo.Med:
			v = s.P(0.5)
		}
	case *metrics.CounterSink:
		switch agg {
		case "count":
			v = s.Value
		case "rate":
			if dur > 0 {
				v = s.Value / dur.Seconds()
			}
		}
	case *metrics.RateSink:
		if agg == "rate" && s.Total > 0 {
			v = float64(s.Trues) / float64(s.Total)
		}
	case *metrics.GaugeSink:
		if agg == "value" {
			v = s.Value
		}
	}
	if math.IsNaN(v) {
		return nil
	}
	return &v
}
