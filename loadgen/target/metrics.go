package target

import (
	"bytes"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// latencyBounds are the histogram's upper bounds (le) in seconds: server
// time from arrival to response, including queueing and stalls.
var latencyBounds = [...]float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// histogram is a Prometheus-style latency histogram with atomic buckets.
type histogram struct {
	buckets [len(latencyBounds) + 1]atomic.Int64 // non-cumulative; last is +Inf
	sumNs   atomic.Int64
	count   atomic.Int64
}

func (h *histogram) observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(latencyBounds) && s > latencyBounds[i] {
		i++
	}
	h.buckets[i].Add(1)
	h.sumNs.Add(int64(d))
	h.count.Add(1)
}

func (h *histogram) reset() {
	for i := range h.buckets {
		h.buckets[i].Store(0)
	}
	h.sumNs.Store(0)
	h.count.Store(0)
}

// writeMetrics renders the counters in the Prometheus text exposition
// format (version 0.0.4). Counters restart from zero on Reset, which
// Prometheus' rate() treats as a counter reset.
func (s *Server) writeMetrics(w http.ResponseWriter) {
	c := &s.c
	var b bytes.Buffer
	metric := func(name, typ, help string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	value := func(name string, v float64) {
		b.WriteString(name)
		b.WriteByte(' ')
		b.WriteString(formatFloat(v))
		b.WriteByte('\n')
	}

	metric("loadcap_target_requests_total", "counter", "Responses by HTTP status code (rejected 503s included, resets excluded).")
	for code := range c.codes {
		if v := c.codes[code].Load(); v != 0 {
			fmt.Fprintf(&b, "loadcap_target_requests_total{code=\"%d\"} %d\n", code, v)
		}
	}
	for _, m := range []struct {
		name, help string
		v          *atomic.Int64
	}{
		{"loadcap_target_arrived_total", "Requests that arrived (not /stats or /metrics).", &c.arrived},
		{"loadcap_target_served_total", "Requests answered after service.", &c.served},
		{"loadcap_target_rejected_total", "Requests answered 503 at once because the queue was full.", &c.rejected},
		{"loadcap_target_resets_total", "Connections reset with TCP RST by the reset fault.", &c.resets},
		{"loadcap_target_injected_errors_total", "Requests answered 500 by the error-rate fault.", &c.errors},
		{"loadcap_target_stalled_total", "Requests held by a stall window.", &c.stalled},
		{"loadcap_target_canceled_total", "Requests abandoned by the client or by shutdown.", &c.canceled},
	} {
		metric(m.name, "counter", m.help)
		value(m.name, float64(m.v.Load()))
	}
	for _, m := range []struct {
		name, help string
		v          float64
	}{
		{"loadcap_target_in_flight", "Requests arrived and not yet answered, including queued.", float64(c.inFlight.Load())},
		{"loadcap_target_max_in_flight", "Highest in-flight count since start or reset.", float64(c.maxInFlight.Load())},
		{"loadcap_target_queue_length", "Requests waiting for a worker.", float64(c.queue.Load())},
		{"loadcap_target_workers", "Configured workers (0 = unlimited).", float64(s.cfg.Workers)},
		{"loadcap_target_service_time_seconds", "Configured (mean) service time.", s.cfg.ServiceTime.Seconds()},
		{"loadcap_target_capacity_per_second", "Workers / service time.", s.cfg.CapacityPerSec()},
	} {
		metric(m.name, "gauge", m.help)
		value(m.name, m.v)
	}

	const hname = "loadcap_target_request_duration_seconds"
	metric(hname, "histogram", "Server time from arrival to response, queueing and stalls included.")
	var cum int64
	for i := range c.latency.buckets {
		cum += c.latency.buckets[i].Load()
		le := math.Inf(1)
		if i < len(latencyBounds) {
			le = latencyBounds[i]
		}
		fmt.Fprintf(&b, "%s_bucket{le=\"%s\"} %d\n", hname, formatFloat(le), cum)
	}
	value(hname+"_sum", time.Duration(c.latency.sumNs.Load()).Seconds())
	// The count is the +Inf bucket so the exposition stays self-consistent
	// while observations race with the scrape.
	value(hname+"_count", float64(cum))

	if cpu, ok := processCPU(); ok {
		metric("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.")
		value("process_cpu_seconds_total", cpu.Seconds())
	}

	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Write(b.Bytes())
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
