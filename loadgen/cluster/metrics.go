package cluster

import (
	"context"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/loadcap/loadcap/loadgen"
)

// latencyBuckets are the upper bounds (seconds) of the exported latency
// histogram.
var latencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// liveMetrics is the Prometheus view of runs in progress, fed with
// snapshots: an agent its own, the coordinator every agent's (as parts).
// Counters are cumulative over the process's life, so that rate() works
// across runs. Safe for concurrent use.
type liveMetrics struct {
	mu        sync.Mutex
	series    []loadgen.Series
	requests  map[string]float64    // by request name
	errors    map[[2]string]float64 // by request name and class
	latSum    map[string]time.Duration
	lat       map[string]*hdr.Histogram               // cumulative, µs
	last      map[int]map[string]*hdr.PackedHistogram // per part: the latest interval's latency by name
	inflight  map[int]int64                           // per part
	vus       map[int]int
	scheduled float64
	dropped   float64
	late      float64
	agents    int // coordinator: agents in the run
	connected int // coordinator: agents streaming
	running   bool

	desc struct {
		requests, errors, inflight, vus, scheduled, dropped, late, latency, recent, agents, connected, running *prometheus.Desc
	}
}

func newLiveMetrics() *liveMetrics {
	m := &liveMetrics{
		requests: map[string]float64{}, errors: map[[2]string]float64{}, latSum: map[string]time.Duration{},
		lat: map[string]*hdr.Histogram{}, last: map[int]map[string]*hdr.PackedHistogram{},
		inflight: map[int]int64{}, vus: map[int]int{},
	}
	d := &m.desc
	d.requests = prometheus.NewDesc("loadcap_requests_total", "Requests finished (completed or failed), by request name.", []string{"name"}, nil)
	d.errors = prometheus.NewDesc("loadcap_request_errors_total", "Failed requests by request name and error class.", []string{"name", "class"}, nil)
	d.inflight = prometheus.NewDesc("loadcap_requests_in_flight", "Requests sent and not yet finished.", nil, nil)
	d.vus = prometheus.NewDesc("loadcap_vus", "Virtual users active.", nil, nil)
	d.scheduled = prometheus.NewDesc("loadcap_arrivals_scheduled_total", "Arrivals scheduled (open model) or iterations begun (closed model).", nil, nil)
	d.dropped = prometheus.NewDesc("loadcap_arrivals_dropped_total", "Arrivals dropped: no VU free in time (k6's dropped_iterations).", nil, nil)
	d.late = prometheus.NewDesc("loadcap_arrivals_late_total", "Arrivals the pacer dispatched more than 10 ms behind schedule (generator short of CPU).", nil, nil)
	d.latency = prometheus.NewDesc("loadcap_request_duration_seconds", "Request latency from the intended send time.", []string{"name"}, nil)
	d.recent = prometheus.NewDesc("loadcap_request_duration_last_interval_seconds", "Request latency quantiles over the last 1-second interval.", []string{"name"}, nil)
	d.agents = prometheus.NewDesc("loadcap_cluster_agents", "Agents in the distributed run.", nil, nil)
	d.connected = prometheus.NewDesc("loadcap_cluster_agents_connected", "Agents of the distributed run still streaming results.", nil, nil)
	d.running = prometheus.NewDesc("loadcap_agent_running", "1 while this agent runs a plan.", nil, nil)
	return m
}

// setSeries names the series of the run about to start.
func (m *liveMetrics) setSeries(s []loadgen.Series) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.series = s
	m.last = map[int]map[string]*hdr.PackedHistogram{}
	m.inflight = map[int]int64{}
	m.vus = map[int]int{}
}

// observe adds part's snapshot.
func (m *liveMetrics) observe(part int, s *loadgen.Snapshot) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(s.Series) != len(m.series) {
		return
	}
	m.scheduled += float64(s.Scheduled)
	m.dropped += float64(s.Dropped)
	m.late += float64(s.Late)
	m.inflight[part] = s.Inflight
	m.vus[part] = s.VUs
	last := map[string]*hdr.PackedHistogram{}
	for j := range s.Series {
		sd := &s.Series[j]
		name := m.series[j].Name
		m.requests[name] += float64(sd.Completed + sd.Failed)
		for c, n := range sd.Classes {
			if c > 0 && n > 0 {
				m.errors[[2]string{name, loadgen.ClassName(uint8(c))}] += float64(n)
			}
		}
		m.latSum[name] += sd.LatencySum
		if sd.Latency == nil {
			continue
		}
		h := m.lat[name]
		if h == nil {
			h = loadgen.NewHistogram(time.Duration(sd.Latency.HighestTrackableValue()) * time.Microsecond)
			m.lat[name] = h
		}
		sd.Latency.MergeInto(h)
		if l := last[name]; l != nil {
			l.Merge(sd.Latency)
		} else {
			last[name] = sd.Latency.Clone()
		}
	}
	m.last[part] = last
}

// ended notes that part stopped streaming: it has nothing in flight.
func (m *liveMetrics) ended(part int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.inflight, part)
	delete(m.vus, part)
	delete(m.last, part)
}

func (m *liveMetrics) setAgents(total, connected int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.agents, m.connected = total, connected
}

func (m *liveMetrics) setRunning(on bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.running = on
}

// Describe implements prometheus.Collector.
func (m *liveMetrics) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(m, ch) }

// Collect implements prometheus.Collector.
func (m *liveMetrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := &m.desc
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	counter := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, v, labels...)
	}
	for _, name := range sortedKeys(m.requests) {
		counter(d.requests, m.requests[name], name)
	}
	for k, v := range m.errors {
		counter(d.errors, v, k[0], k[1])
	}
	var inflight int64
	for _, n := range m.inflight {
		inflight += n
	}
	vus := 0
	for _, n := range m.vus {
		vus += n
	}
	gauge(d.inflight, float64(inflight))
	gauge(d.vus, float64(vus))
	counter(d.scheduled, m.scheduled)
	counter(d.dropped, m.dropped)
	counter(d.late, m.late)
	for name, h := range m.lat {
		buckets := make(map[float64]uint64, len(latencyBuckets))
		var cum uint64
		bars := h.Distribution()
		k := 0
		for _, ub := range latencyBuckets {
			for ; k < len(bars) && float64(bars[k].To)/1e6 <= ub; k++ {
				cum += uint64(bars[k].Count)
			}
			buckets[ub] = cum
		}
		ch <- prometheus.MustNewConstHistogram(d.latency, uint64(h.TotalCount()), m.latSum[name].Seconds(), buckets, name)
	}
	recent := map[string]*hdr.PackedHistogram{}
	for _, byName := range m.last {
		for name, h := range byName {
			if r := recent[name]; r != nil {
				r.Merge(h)
			} else {
				recent[name] = h.Clone()
			}
		}
	}
	for name, h := range recent {
		q := h.ValueAtPercentilesSlice([]float64{50, 90, 99})
		ch <- prometheus.MustNewConstSummary(d.recent, uint64(h.TotalCount()), h.Mean()*float64(h.TotalCount())/1e6,
			map[float64]float64{0.5: float64(q[0]) / 1e6, 0.9: float64(q[1]) / 1e6, 0.99: float64(q[2]) / 1e6}, name)
	}
	if m.agents > 0 {
		gauge(d.agents, float64(m.agents))
		gauge(d.connected, float64(m.connected))
	}
	if m.running {
		gauge(d.running, 1)
	} else {
		gauge(d.running, 0)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// serveMetrics serves m in Prometheus text format on addr at /metrics until
// ctx is done; it returns the bound address.
func serveMetrics(ctx context.Context, addr string, m *liveMetrics) (net.Addr, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(m); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }() // ends with Shutdown
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return ln.Addr(), nil
}
