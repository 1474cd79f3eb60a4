package shop

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/loadcap/loadcap/shadow"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// metrics is one service's Prometheus registry and instruments. Every
// series carries the constant label service="<name>".
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec   // method, route, shadow, code
	errors   *prometheus.CounterVec   // method, route, shadow
	latency  *prometheus.HistogramVec // method, route, shadow
	inflight *prometheus.GaugeVec     // shadow
	extra    prometheus.Registerer    // for service-specific metrics
}

// latencyBuckets are the histogram's upper bounds in seconds: 250 µs to
// about 16 s, doubling.
var latencyBuckets = prometheus.ExponentialBuckets(0.00025, 2, 17)

func newMetrics(service string, p *shadow.Policy, l pool) *metrics {
	reg := prometheus.NewRegistry()
	r := prometheus.WrapRegistererWith(prometheus.Labels{"service": service}, reg)
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shop_requests_total",
			Help: "Requests handled, by method (HTTP method, or grpc), route (HTTP route pattern or gRPC method), shadow (tagged or not) and code (HTTP status or gRPC code).",
		}, []string{"method", "route", "shadow", "code"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shop_request_errors_total",
			Help: "Requests that failed on the server's side: HTTP 5xx, gRPC codes other than OK and the caller's own mistakes.",
		}, []string{"method", "route", "shadow"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shop_request_duration_seconds",
			Help:    "Time from a request's arrival to its response, waiting for a worker included.",
			Buckets: latencyBuckets,
		}, []string{"method", "route", "shadow"}),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shop_requests_in_flight",
			Help: "Requests being handled now.",
		}, []string{"shadow"}),
		extra: r,
	}
	r.MustRegister(m.requests, m.errors, m.latency, m.inflight,
		&policyCollector{p: p},
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector())
	ready := func() float64 { return float64(l.replicas().Ready) }
	r.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "shop_capacity_workers", Help: "Workers of the ready replicas: configured workers per replica × ready replicas."},
			func() float64 { return float64(l.capacity().Workers) * ready() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "shop_replicas_ready", Help: "Replicas serving requests."}, ready),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "shop_replicas_desired", Help: "Replicas asked for (POST /admin/replicas); the missing ones are starting."},
			func() float64 { return float64(l.replicas().Desired) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "shop_capacity_service_time_seconds", Help: "Configured (mean) service time."},
			func() float64 { return l.capacity().ServiceTime.Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "shop_capacity_requests_per_second", Help: "Capacity of the ready replicas: workers / service time × ready replicas (+Inf when unlimited)."},
			func() float64 { return l.capacity().PerSec() * ready() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "shop_queue_waiting", Help: "Requests waiting for a worker now."},
			func() float64 { w, _, _ := l.load(); return float64(w) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "shop_overload_rejected_total", Help: "Requests refused because the wait queue was full."},
			func() float64 { _, r, _ := l.load(); return float64(r) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "shop_worker_busy_seconds_total", Help: "Worker time spent serving requests: its rate over shop_capacity_workers is the utilization."},
			func() float64 { _, _, b := l.load(); return b.Seconds() }),
	)
	return m
}

// handler serves the registry (the /metrics endpoint).
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

func shadowLabel(ctx context.Context) string {
	if _, ok := shadow.FromContext(ctx); ok {
		return "true"
	}
	return "false"
}

// begin counts a request in flight; the returned func records its end.
func (m *metrics) begin(ctx context.Context, method, route string) func(code string, failed bool) {
	sh := shadowLabel(ctx)
	g := m.inflight.WithLabelValues(sh)
	g.Inc()
	start := time.Now()
	return func(code string, failed bool) {
		g.Dec()
		m.latency.WithLabelValues(method, route, sh).Observe(time.Since(start).Seconds())
		m.requests.WithLabelValues(method, route, sh, code).Inc()
		if failed {
			m.errors.WithLabelValues(method, route, sh).Inc()
		}
	}
}

// unary is the metrics and capacity interceptor of a gRPC service; it runs
// inside the shadow policy's, so it sees the tag.
func unary(m *metrics, l *limiter) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		end := m.begin(ctx, "grpc", info.FullMethod)
		var resp any
		err := l.serve(ctx)
		switch {
		case errors.Is(err, errOverloaded):
			err = status.Error(codes.ResourceExhausted, err.Error())
		case err != nil:
			err = status.FromContextError(err).Err()
		default:
			resp, err = handler(ctx, req)
		}
		code := status.Code(err)
		end(code.String(), serverFault(code))
		return resp, err
	}
}

// serverFault tells the codes that count as the server's errors.
func serverFault(c codes.Code) bool {
	switch c {
	case codes.OK, codes.Canceled, codes.InvalidArgument, codes.NotFound, codes.AlreadyExists,
		codes.PermissionDenied, codes.FailedPrecondition, codes.OutOfRange, codes.Unauthenticated:
		return false
	}
	return true
}

// route is the metrics and capacity middleware of one gateway route; it
// runs inside the shadow middleware, so it sees the tag.
func route(m *metrics, l *limiter, pattern string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		end := m.begin(r.Context(), r.Method, pattern)
		rec := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		switch err := l.serve(r.Context()); {
		case errors.Is(err, errOverloaded):
			writeError(rec, http.StatusServiceUnavailable, err.Error())
		case err != nil:
			writeError(rec, http.StatusServiceUnavailable, "request ended while waiting for a worker")
		default:
			h(rec, r)
		}
		end(strconv.Itoa(rec.code), rec.code >= 500)
	})
}

type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.code, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

// policyCollector exports a policy's counters (shadow.Policy.Stats) at
// every scrape.
type policyCollector struct{ p *shadow.Policy }

var (
	descShadowRequests = prometheus.NewDesc("shop_shadow_requests_total",
		"Requests, calls and queue messages that came in through the service's shadow policy, by whether they were tagged.",
		[]string{"shadow"}, nil)
	descShadowRejected = prometheus.NewDesc("shop_shadow_rejected_total",
		"Tagged work refused by the shadow policy (fail closed), by the kind and name of the resource it would have touched.",
		[]string{"kind", "resource"}, nil)
)

func (c *policyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descShadowRequests
	ch <- descShadowRejected
}

func (c *policyCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.p.Stats()
	ch <- prometheus.MustNewConstMetric(descShadowRequests, prometheus.CounterValue, float64(st.Tagged), "true")
	ch <- prometheus.MustNewConstMetric(descShadowRequests, prometheus.CounterValue, float64(st.Untagged), "false")
	for r, n := range st.Rejected {
		ch <- prometheus.MustNewConstMetric(descShadowRejected, prometheus.CounterValue, float64(n), string(r.Kind), r.Name)
	}
}
