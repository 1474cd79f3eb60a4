package live

import (
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/loadcap/loadcap/loadgen"
)

// LatencyBuckets are the upper bounds (seconds) of the classic buckets of
// loadcap_request_duration_seconds.
var LatencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// NativeSchema is the schema of the native histogram buckets: each bucket
// is 2^(2^-3) ≈ 1.09 times as wide as the one below it, about the
// resolution of a 3-digit HDR histogram's report.
const NativeSchema = 3

// Rule is one guard rule's state as the metrics show it.
type Rule struct {
	Name  string
	State string // pending, ok, bad, no data, error
}

// RuleStates are the states loadcap_guard_rule_state has a series for,
// per rule (one of them 1, the others 0).
var RuleStates = []string{"pending", "ok", "bad", "no data", "error"}

// Metrics is the Prometheus view of a load in progress, fed with the
// run's closed 1-second intervals (Observe; merged over agents for a
// distributed run), a drill's stage (Stage) and its guard's rules
// (Rules). Counters are cumulative over the Metrics' life, so that rate()
// works across the runs of a long-lived process (an agent, capacity
// find's steps). Safe for concurrent use; Observe takes a lock for the
// time of a few histogram merges, never for I/O.
type Metrics struct {
	reg *prometheus.Registry

	mu        sync.Mutex
	requests  map[string]float64 // finished requests by name
	failures  map[string]float64 // by class name
	lat       map[string]*latency
	sent      float64
	scheduled float64
	dropped   float64
	bytesOut  float64
	bytesIn   float64
	inflight  int64
	elapsed   time.Duration
	stall     time.Duration
	steal     float64 // -1 unknown
	disturbed float64
	observed  bool

	stage     int // 1-based; 0: no stage
	stageName string
	stageRate float64
	rules     []Rule

	agents, connected int  // a coordinator's agents
	agent, running    bool // an agent, and whether it runs a plan

	desc descs
}

type descs struct {
	requests, failures, sent, inflight, scheduled, dropped, bytesOut, bytesIn,
	latency, elapsed, stall, steal, disturbed, stage, stageRate, rule,
	agents, connected, running *prometheus.Desc
}

// New returns empty metrics registered, with the Go collector left out, on
// a registry of their own (Registry), where callers add their own
// collectors (a coordinator its agents, a remote writer its counts).
func New() *Metrics {
	m := &Metrics{
		reg:      prometheus.NewRegistry(),
		requests: map[string]float64{}, failures: map[string]float64{},
		lat:   map[string]*latency{},
		steal: -1,
	}
	d := &m.desc
	d.requests = prometheus.NewDesc("loadcap_requests_total", "Requests finished (completed or failed), by request name.", []string{"name"}, nil)
	d.failures = prometheus.NewDesc("loadcap_request_failures_total", "Failed requests by error class (timeout, refused, 4xx, 5xx, grpc_unavailable, ...).", []string{"class"}, nil)
	d.sent = prometheus.NewDesc("loadcap_requests_sent_total", "Requests sent (written to the target).", nil, nil)
	d.inflight = prometheus.NewDesc("loadcap_requests_in_flight", "Requests sent and not yet finished, at the end of the last interval.", nil, nil)
	d.scheduled = prometheus.NewDesc("loadcap_arrivals_scheduled_total", "Arrivals scheduled (open model) or iterations begun (closed model).", nil, nil)
	d.dropped = prometheus.NewDesc("loadcap_arrivals_dropped_total", "Arrivals dropped: no VU free in time (k6's dropped_iterations).", nil, nil)
	d.bytesOut = prometheus.NewDesc("loadcap_sent_bytes_total", "Bytes of the requests sent.", nil, nil)
	d.bytesIn = prometheus.NewDesc("loadcap_received_bytes_total", "Bytes of the responses received.", nil, nil)
	d.latency = prometheus.NewDesc("loadcap_request_duration_seconds", "Request latency from the intended send time, by request name (native buckets too, when the scraper asks for them).", []string{"name"}, nil)
	d.elapsed = prometheus.NewDesc("loadcap_run_elapsed_seconds", "Time since the load's start, at the end of the last interval.", nil, nil)
	d.stall = prometheus.NewDesc("loadcap_generator_stall_seconds", "Longest the generator's process was kept from running in the last interval.", nil, nil)
	d.steal = prometheus.NewDesc("loadcap_generator_steal_ratio", "Share of the host's CPU time its hypervisor gave to other guests in the last interval (absent when unknown).", nil, nil)
	d.disturbed = prometheus.NewDesc("loadcap_generator_disturbed_intervals_total", "Intervals whose latency figures the generator's host may have set (stall over 10ms or steal over 5%).", nil, nil)
	d.stage = prometheus.NewDesc("loadcap_drill_stage", "The drill's current stage, numbered from 1, labelled with its name.", []string{"stage"}, nil)
	d.stageRate = prometheus.NewDesc("loadcap_drill_stage_planned_requests_per_second", "The rate the drill's current stage holds.", nil, nil)
	d.rule = prometheus.NewDesc("loadcap_guard_rule_state", "1 for the state of the guard rule's last evaluation, 0 for the others.", []string{"rule", "state"}, nil)
	d.agents = prometheus.NewDesc("loadcap_cluster_agents", "Agents in the distributed run.", nil, nil)
	d.connected = prometheus.NewDesc("loadcap_cluster_agents_connected", "Agents of the distributed run still streaming results.", nil, nil)
	d.running = prometheus.NewDesc("loadcap_agent_running", "1 while this agent runs a plan.", nil, nil)
	m.reg.MustRegister(m)
	return m
}

// Registry is where the metrics are registered: serve it (Serve), push it
// (Pusher), register more collectors on it.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Hook returns fn followed by m.Observe, as one interval hook; nil when
// both are nil.
func (m *Metrics) Hook(fn func(loadgen.Interval)) func(loadgen.Interval) {
	switch {
	case m == nil:
		return fn
	case fn == nil:
		return m.Observe
	}
	return func(iv loadgen.Interval) {
		fn(iv)
		m.Observe(iv)
	}
}

// Observe adds a closed interval. It is meant for an interval hook
// (loadgen.WithIntervalHook, runner.Config.OnInterval), on the engine's
// ticker goroutine: it does no I/O.
func (m *Metrics) Observe(iv loadgen.Interval) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.observed = true
	m.sent += float64(iv.Sent)
	m.scheduled += float64(iv.Scheduled)
	m.dropped += float64(iv.Dropped)
	m.bytesOut += float64(iv.BytesSent)
	m.bytesIn += float64(iv.BytesRecv)
	m.inflight = iv.Inflight
	m.elapsed = iv.End
	m.stall, m.steal = iv.Stall, iv.Steal
	if loadgen.HostStalled(iv.Stall, iv.Steal) {
		m.disturbed++
	}
	for c, n := range iv.Classes {
		if c > 0 && n > 0 {
			m.failures[loadgen.ClassName(uint8(c))] += float64(n)
		}
	}
	for name, p := range iv.Hists {
		n := p.TotalCount()
		if n == 0 {
			continue
		}
		m.requests[name] += float64(n)
		l := m.lat[name]
		if l == nil {
			l = &latency{}
			m.lat[name] = l
		}
		l.add(p)
	}
}

// Stage sets the drill's current stage: number from 1 (0: none, before
// the first or after the last), its name and planned rate.
func (m *Metrics) Stage(number int, name string, ratePerSec float64) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stage, m.stageName, m.stageRate = number, name, ratePerSec
}

// Rules sets the guard rules' states.
func (m *Metrics) Rules(rules []Rule) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rules = append(m.rules[:0], rules...)
}

// Agents sets a coordinator's agents: in the run, and still streaming.
func (m *Metrics) Agents(total, connected int) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.agents, m.connected = total, connected
}

// Running says whether an agent runs a plan (loadcap_agent_running, which
// only an agent has).
func (m *Metrics) Running(on bool) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.agent, m.running = true, on
}

// Describe implements prometheus.Collector: every metric Metrics may
// export, whether it has a value yet or not.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	d := &m.desc
	for _, desc := range []*prometheus.Desc{d.requests, d.failures, d.sent, d.inflight, d.scheduled, d.dropped, d.bytesOut, d.bytesIn,
		d.latency, d.elapsed, d.stall, d.steal, d.disturbed, d.stage, d.stageRate, d.rule, d.agents, d.connected, d.running} {
		ch <- desc
	}
}

// Collect implements prometheus.Collector. Series with labels appear once
// they have a value; the run-wide counters are there from the start, at 0.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
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
		ch <- newHistogram(d.latency, m.lat[name], name)
	}
	for _, class := range sortedKeys(m.failures) {
		counter(d.failures, m.failures[class], class)
	}
	counter(d.sent, m.sent)
	counter(d.scheduled, m.scheduled)
	counter(d.dropped, m.dropped)
	counter(d.bytesOut, m.bytesOut)
	counter(d.bytesIn, m.bytesIn)
	counter(d.disturbed, m.disturbed)
	gauge(d.inflight, float64(m.inflight))
	if m.observed {
		gauge(d.elapsed, m.elapsed.Seconds())
		gauge(d.stall, m.stall.Seconds())
		if m.steal >= 0 {
			gauge(d.steal, m.steal)
		}
	}
	if m.stage > 0 {
		gauge(d.stage, float64(m.stage), m.stageName)
		gauge(d.stageRate, m.stageRate)
	}
	for _, r := range m.rules {
		for _, s := range RuleStates {
			v := 0.0
			if s == r.State {
				v = 1
			}
			gauge(d.rule, v, r.Name, s)
		}
	}
	if m.agents > 0 {
		gauge(d.agents, float64(m.agents))
		gauge(d.connected, float64(m.connected))
	}
	if m.agent {
		v := 0.0
		if m.running {
			v = 1
		}
		gauge(d.running, v)
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
