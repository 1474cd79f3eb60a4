package k6

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
	"go.k6.io/k6/metrics"

	"github.com/loadcap/loadcap/loadgen/httpc"
)

// Tunables of the child's aggregation.
const (
	// DefaultMaxSeries caps the series (scenario and request name) a run
	// keeps apart; requests of new names beyond it are recorded under
	// OtherName in their scenario. k6 names a request by its URL unless
	// the script tags it, so a script that builds URLs from IDs would
	// otherwise make one series per ID.
	DefaultMaxSeries = 200
	// OtherName is the request name of the requests beyond MaxSeries.
	OtherName = "(other)"

	// closeGrace is how long after its end an interval stays open for late
	// samples: k6 hands samples to outputs in 50 ms batches.
	closeGrace = 200 * time.Millisecond
	histTop    = maxHistTop // µs; longer durations are clamped
	histDigits = 3
)

// Scenario names for samples without a scenario tag: setup() and
// teardown() run outside every scenario.
const (
	scenarioSetup    = "setup"
	scenarioTeardown = "teardown"
	scenarioNone     = "(none)"
)

// aggregator turns k6's samples into interval frames. add is called by k6's
// output manager (never concurrently with itself), due and finish by the
// output's flusher; mu guards everything.
type aggregator struct {
	mu        sync.Mutex
	maxSeries int
	origin    time.Time // when the output started: no activity before it
	start     time.Time // the test's first activity; zero until then
	next      int       // the next interval to close
	open      map[int]*ivAgg
	index     map[seriesName]int
	names     []seriesName
	declared  int                     // names[:declared] went out in a frame
	sampled   map[int]map[string]bool // series → classes whose message went out
	last      map[string]int          // scenario → its most recently used series
	pending   map[string]*[2]int64    // scenario → bytes sent, received not yet attributed
	vus, peak int
}

// ivAgg is one open interval.
type ivAgg struct {
	series  map[int]*seriesAgg
	dropped int64
	bytes   map[string]*[2]int64 // per scenario: sent, received
	iters   map[string]*iterAgg
	checks  map[checkKey]*[2]int64 // pass, fail
}

type seriesAgg struct {
	completed, failed int64
	sum               time.Duration
	hist              *hdr.PackedHistogram
	status            map[int]int64
	classes           map[string]int64
	samples           map[string]string
	bytesSent         int64
	bytesRecv         int64
}

type iterAgg struct {
	count int64
	hist  *hdr.PackedHistogram
}

type checkKey struct{ group, name string }

func newAggregator(origin time.Time, maxSeries int) *aggregator {
	if maxSeries <= 0 {
		maxSeries = DefaultMaxSeries
	}
	return &aggregator{
		maxSeries: maxSeries, origin: origin,
		open: map[int]*ivAgg{}, index: map[seriesName]int{}, sampled: map[int]map[string]bool{},
		last: map[string]int{}, pending: map[string]*[2]int64{},
	}
}

func newHist() *hdr.PackedHistogram { return hdr.NewPacked(1, histTop, histDigits) }

// micros converts a k6 duration value (ms, float) to whole µs within the
// histogram's range.
func micros(ms float64) int64 {
	us := int64(math.Round(ms * 1000))
	return min(max(us, 1), histTop)
}

// durationMetric reports whether samples of m are durations (ms) that end
// at the sample's time.
func durationMetric(m string) bool {
	return m == metrics.HTTPReqDurationName || m == metrics.GRPCReqDurationName || m == metrics.IterationDurationName
}

// add takes a batch of k6's sample containers.
func (a *aggregator) add(batch []metrics.SampleContainer) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.start.IsZero() {
		a.start = a.firstActivity(batch)
	}
	for _, c := range batch {
		ss := c.GetSamples()
		for i := range ss {
			a.sample(ss, &ss[i])
		}
	}
}

// firstActivity estimates when the test started from the first batch that
// holds more than k6's VU gauges: the earliest send of a request or start of
// an iteration in it, never before the output started. Zero when the batch
// holds no activity.
func (a *aggregator) firstActivity(batch []metrics.SampleContainer) time.Time {
	var t time.Time
	for _, c := range batch {
		for _, s := range c.GetSamples() {
			name := s.Metric.Name
			if name == metrics.VUsName || name == metrics.VUsMaxName {
				continue
			}
			at := s.Time
			if durationMetric(name) {
				at = at.Add(-time.Duration(s.Value * float64(time.Millisecond)))
			}
			if t.IsZero() || at.Before(t) {
				t = at
			}
		}
	}
	if !t.IsZero() && t.Before(a.origin) {
		t = a.origin
	}
	return t
}

// interval returns the open interval a sample taken at t belongs to. Late
// samples, for an interval already sent, go to the oldest open one.
func (a *aggregator) interval(t time.Time) *ivAgg {
	n := a.next
	if d := t.Sub(a.start); d > 0 {
		n = max(n, int(d/time.Second))
	}
	iv := a.open[n]
	if iv == nil {
		iv = &ivAgg{series: map[int]*seriesAgg{}, bytes: map[string]*[2]int64{}, iters: map[string]*iterAgg{}, checks: map[checkKey]*[2]int64{}}
		a.open[n] = iv
	}
	return iv
}

func tag(s *metrics.Sample, name string) string {
	if s.Tags == nil {
		return ""
	}
	v, _ := s.Tags.Get(name)
	return v
}

// scenarioOf names the scenario of a sample.
func scenarioOf(s *metrics.Sample) string {
	if sc := tag(s, "scenario"); sc != "" {
		return sc
	}
	switch g := tag(s, "group"); {
	case strings.HasPrefix(g, "::setup"):
		return scenarioSetup
	case strings.HasPrefix(g, "::teardown"):
		return scenarioTeardown
	}
	return scenarioNone
}

// series returns the number of a request's series, declaring it when new.
func (a *aggregator) series(scenario, name string) int {
	k := seriesName{Scenario: scenario, Name: name}
	if i, ok := a.index[k]; ok {
		return i
	}
	if len(a.names) >= a.maxSeries && name != OtherName {
		return a.series(scenario, OtherName)
	}
	i := len(a.names)
	a.index[k] = i
	a.names = append(a.names, k)
	return i
}

func (iv *ivAgg) seriesAgg(i int) *seriesAgg {
	sa := iv.series[i]
	if sa == nil {
		sa = &seriesAgg{}
		iv.series[i] = sa
	}
	return sa
}

// sample adds one sample; c is its container (a request's other samples).
// Only the metrics loadcap reports are looked at.
func (a *aggregator) sample(c []metrics.Sample, s *metrics.Sample) {
	if a.start.IsZero() {
		// Before the test's first activity only the VU gauge matters.
		if s.Metric.Name == metrics.VUsName {
			a.vus = int(s.Value)
			a.peak = max(a.peak, a.vus)
		}
		return
	}
	switch s.Metric.Name {
	case metrics.HTTPReqDurationName:
		a.request(s, httpFailed(c, s))
	case metrics.GRPCReqDurationName:
		a.request(s, grpcFailed(s))
	case metrics.IterationDurationName:
		it := a.iter(s)
		if it.hist == nil {
			it.hist = newHist()
		}
		_ = it.hist.RecordValue(micros(s.Value))
	case metrics.IterationsName:
		a.iter(s).count += int64(s.Value)
	case metrics.DroppedIterationsName:
		a.interval(s.Time).dropped += int64(s.Value)
	case metrics.DataSentName, metrics.DataReceivedName:
		iv := a.interval(s.Time)
		sc := scenarioOf(s)
		b := iv.bytes[sc]
		if b == nil {
			b = &[2]int64{}
			iv.bytes[sc] = b
		}
		if s.Metric.Name == metrics.DataSentName {
			b[0] += int64(s.Value)
		} else {
			b[1] += int64(s.Value)
		}
	case metrics.ChecksName:
		iv := a.interval(s.Time)
		k := checkKey{group: tag(s, "group"), name: tag(s, "check")}
		r := iv.checks[k]
		if r == nil {
			r = &[2]int64{}
			iv.checks[k] = r
		}
		if s.Value != 0 {
			r[0]++
		} else {
			r[1]++
		}
	case metrics.VUsName:
		a.vus = int(s.Value)
		a.peak = max(a.peak, a.vus)
	}
}

func (a *aggregator) iter(s *metrics.Sample) *iterAgg {
	iv := a.interval(s.Time)
	sc := scenarioOf(s)
	it := iv.iters[sc]
	if it == nil {
		it = &iterAgg{}
		iv.iters[sc] = it
	}
	return it
}

// failure is why a request failed: its loadgen class and a sample message.
type failure struct {
	class, msg string
}

// httpFailed reports whether k6 counts the request of duration sample d
// as failed (its http_req_failed sample in the same container is 1), and why.
// Without such a sample (a script that set no response callback) k6 counts
// no failure, and neither does loadcap.
func httpFailed(c []metrics.Sample, d *metrics.Sample) *failure {
	failed := false
	for i := range c {
		s := &c[i]
		if s.Metric.Name == metrics.HTTPReqFailedName && s.Tags == d.Tags && s.Time.Equal(d.Time) {
			failed = s.Value != 0
			break
		}
	}
	if !failed {
		return nil
	}
	status, _ := strconv.Atoi(tag(d, "status"))
	switch {
	case status >= 500:
		return &failure{"5xx", httpMessage(d, status)}
	case status >= 400:
		return &failure{"4xx", httpMessage(d, status)}
	case status > 0:
		return &failure{httpc.ClassOther.String(), httpMessage(d, status)}
	}
	code, _ := strconv.Atoi(tag(d, "error_code"))
	msg := tag(d, "error")
	if msg == "" {
		msg = "k6 error code " + strconv.Itoa(code)
	}
	return &failure{errorClass(code).String(), msg}
}

func httpMessage(d *metrics.Sample, status int) string {
	u := tag(d, "url")
	if u == "" {
		u = tag(d, "name")
	}
	return fmt.Sprintf("%s %s: HTTP %d", tag(d, "method"), u, status)
}

// errorClass maps k6's error codes of a request without a response
// (https://grafana.com/docs/k6/latest/javascript-api/error-codes/) to
// loadgen's transport classes.
func errorClass(code int) httpc.Class {
	switch {
	case code == 1050 || code == 1211:
		return httpc.ClassTimeout
	case code == 1212:
		return httpc.ClassRefused
	case code == 1201 || code == 1220:
		return httpc.ClassReset
	case code >= 1100 && code < 1200:
		return httpc.ClassDNS
	case code >= 1300 && code < 1400:
		return httpc.ClassTLS
	case code >= 1600 && code < 1700:
		return httpc.ClassProtocol
	}
	return httpc.ClassOther
}

// grpcFailed fails a gRPC call whose status is not OK (0).
func grpcFailed(s *metrics.Sample) *failure {
	st := tag(s, "status")
	if st == "" || st == "0" {
		return nil
	}
	return &failure{httpc.ClassOther.String(), tag(s, "name") + ": gRPC status " + st}
}

// request records one finished request (HTTP or gRPC).
func (a *aggregator) request(s *metrics.Sample, f *failure) {
	sc := scenarioOf(s)
	name := tag(s, "name")
	if name == "" {
		name = tag(s, "url")
	}
	i := a.series(sc, name)
	a.last[sc] = i
	sa := a.interval(s.Time).seriesAgg(i)
	if sa.hist == nil {
		sa.hist = newHist()
	}
	us := micros(s.Value)
	_ = sa.hist.RecordValue(us)
	sa.sum += time.Duration(us) * time.Microsecond
	if code, err := strconv.Atoi(tag(s, "status")); err == nil && code > 0 && s.Metric.Name == metrics.HTTPReqDurationName {
		if sa.status == nil {
			sa.status = map[int]int64{}
		}
		sa.status[code]++
	}
	if f == nil {
		sa.completed++
		return
	}
	sa.failed++
	if sa.classes == nil {
		sa.classes = map[string]int64{}
	}
	sa.classes[f.class]++
	if !a.sampled[i][f.class] {
		if a.sampled[i] == nil {
			a.sampled[i] = map[string]bool{}
		}
		a.sampled[i][f.class] = true
		if sa.samples == nil {
			sa.samples = map[string]string{}
		}
		sa.samples[f.class] = f.msg
	}
}

// startTime is the test's start as estimated; zero before any activity.
func (a *aggregator) startTime() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.start
}

// due closes the intervals that ended more than closeGrace before now.
func (a *aggregator) due(now time.Time) []*intervalFrame {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.start.IsZero() {
		return nil
	}
	var out []*intervalFrame
	for !now.Before(a.start.Add(time.Duration(a.next+1)*time.Second + closeGrace)) {
		out = append(out, a.close(time.Duration(a.next+1)*time.Second))
	}
	return out
}

// finish closes every interval still open; the last one ends at now.
func (a *aggregator) finish(now time.Time) []*intervalFrame {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.start.IsZero() {
		return nil
	}
	end := now.Sub(a.start)
	last := int(end / time.Second)
	for t := range a.open {
		last = max(last, t)
	}
	var out []*intervalFrame
	for a.next <= last {
		e := time.Duration(a.next+1) * time.Second
		if a.next == last {
			e = max(end, time.Duration(a.next)*time.Second+time.Millisecond)
		}
		out = append(out, a.close(e))
	}
	return out
}

// close turns interval a.next into a frame and moves on.
func (a *aggregator) close(end time.Duration) *intervalFrame {
	t := a.next
	iv := a.open[t]
	delete(a.open, t)
	a.next++
	f := &intervalFrame{T: t, End: end, VUs: a.vus, PeakVUs: a.peak}
	if t == 0 {
		f.Start = a.start.UnixNano()
	}
	if iv != nil {
		a.attributeBytes(iv)
		f.Dropped = iv.dropped
		for _, i := range sortedKeys(iv.series) {
			sa := iv.series[i]
			f.Series = append(f.Series, seriesDelta{
				I: i, Completed: sa.completed, Failed: sa.failed, Sum: sa.sum, Hist: encodeHist(sa.hist),
				Status: sa.status, Classes: sa.classes, Samples: sa.samples,
				BytesSent: sa.bytesSent, BytesRecv: sa.bytesRecv,
			})
		}
		for _, sc := range sortedKeys(iv.iters) {
			it := iv.iters[sc]
			f.Iters = append(f.Iters, iterDelta{Scenario: sc, Count: it.count, Hist: encodeHist(it.hist)})
		}
		for k, r := range iv.checks {
			f.Checks = append(f.Checks, checkDelta{Group: k.group, Name: k.name, Pass: r[0], Fail: r[1]})
		}
		slices.SortFunc(f.Checks, func(x, y checkDelta) int {
			if c := strings.Compare(x.Group, y.Group); c != 0 {
				return c
			}
			return strings.Compare(x.Name, y.Name)
		})
	}
	// Declare the series after attributeBytes, which may add one.
	f.NewSeries = slices.Clone(a.names[a.declared:])
	a.declared = len(a.names)
	return f
}

// attributeBytes spreads each scenario's bytes (k6 counts them per
// connection and iteration, not per request) over the scenario's series by
// their requests in the interval; with no request in it, to the series the
// scenario used last; with none yet, they wait for one.
func (a *aggregator) attributeBytes(iv *ivAgg) {
	for sc, b := range a.pending {
		add := iv.bytes[sc]
		if add == nil {
			add = &[2]int64{}
			iv.bytes[sc] = add
		}
		add[0] += b[0]
		add[1] += b[1]
		delete(a.pending, sc)
	}
	for _, sc := range sortedKeys(iv.bytes) {
		b := iv.bytes[sc]
		var idx []int
		var total int64
		for i, sa := range iv.series {
			if a.names[i].Scenario == sc {
				idx = append(idx, i)
				total += sa.completed + sa.failed
			}
		}
		if total == 0 {
			i, ok := a.last[sc]
			if !ok {
				a.pending[sc] = b
				continue
			}
			iv.seriesAgg(i).bytesSent += b[0]
			iv.seriesAgg(i).bytesRecv += b[1]
			continue
		}
		slices.Sort(idx)
		var given [2]int64
		for _, i := range idx {
			sa := iv.series[i]
			n := sa.completed + sa.failed
			s, r := b[0]*n/total, b[1]*n/total
			sa.bytesSent += s
			sa.bytesRecv += r
			given[0] += s
			given[1] += r
		}
		// Integer division leaves a remainder: it goes to the first series.
		iv.series[idx[0]].bytesSent += b[0] - given[0]
		iv.series[idx[0]].bytesRecv += b[1] - given[1]
	}
}

func sortedKeys[K int | string, V any](m map[K]V) []K {
	ks := make([]K, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
