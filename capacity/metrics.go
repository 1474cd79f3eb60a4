package capacity

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// MetricsSource is a service's Prometheus text endpoint, scraped at the
// edges of every step's measured window.
type MetricsSource struct {
	Name string // how reports call the service
	URL  string
}

// ParseMetricsSource reads "name=URL" or a bare URL (named by its host).
func ParseMetricsSource(s string) (MetricsSource, error) {
	name, raw, ok := strings.Cut(s, "=")
	if !ok || strings.Contains(name, "/") {
		name, raw = "", s
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return MetricsSource{}, fmt.Errorf("metrics endpoint %q: want [name=]http://host:port/metrics", s)
	}
	if name == "" {
		name = u.Host
	}
	return MetricsSource{Name: name, URL: raw}, nil
}

// ServiceStats is what one service's metrics said about one step's window.
type ServiceStats struct {
	Name        string  `json:"name"`
	RequestRate float64 `json:"request_rate"` // Δ *_requests_total per second
	// GoodRate is the part of RequestRate that succeeded: series whose
	// code or status label is 5xx or 429, or whose grpc_code is not OK,
	// are left out. Equal to RequestRate when the counter has no such
	// label. A service's capacity is its goodput.
	GoodRate      float64 `json:"good_rate"`
	FanOut        float64 `json:"fan_out,omitempty"` // request rate / the first service's
	MeanLatencyMs float64 `json:"mean_latency_ms"`   // Δsum/Δcount of a *_duration_seconds histogram
	CPUCores      float64 `json:"cpu_cores"`         // Δ process_cpu_seconds_total per second
	// Utilization is the share of the service's workers busy over the
	// window, when it exports a *_busy_seconds_total counter and a
	// *_workers gauge; 0 when it does not.
	Utilization float64 `json:"utilization,omitempty"`
	// Requests is the growth of the request counter over the window;
	// BusySeconds that of the busy-time counter (worker-seconds) and
	// Workers the gauge at the window's end, both 0 when not exported.
	// They are the utilization law's inputs, kept so that windows can be
	// pooled: capacity = Workers · Requests / BusySeconds.
	Requests    float64 `json:"requests,omitempty"`
	BusySeconds float64 `json:"busy_seconds,omitempty"`
	Workers     float64 `json:"workers,omitempty"`
	Error       string  `json:"error,omitempty"` // the scrape failed
	Series      string  `json:"request_metric,omitempty"`
}

// scraper takes the two scrapes of one step in the background.
type scraper struct {
	srcs   []MetricsSource
	window time.Duration
	wg     sync.WaitGroup
	before []scrape
	after  []scrape
}

type scrape struct {
	fams map[string]*dto.MetricFamily
	err  error
}

func newScraper(srcs []MetricsSource, warmup, window time.Duration) *scraper {
	s := &scraper{srcs: srcs, window: window, before: make([]scrape, len(srcs)), after: make([]scrape, len(srcs))}
	s.wg.Add(2)
	time.AfterFunc(warmup, func() { defer s.wg.Done(); s.scrapeAll(s.before) })
	time.AfterFunc(warmup+window, func() { defer s.wg.Done(); s.scrapeAll(s.after) })
	return s
}

func (s *scraper) scrapeAll(into []scrape) {
	var wg sync.WaitGroup
	for i, src := range s.srcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			into[i].fams, into[i].err = fetch(src.URL)
		}()
	}
	wg.Wait()
}

var scrapeClient = &http.Client{Timeout: 2 * time.Second}

func fetch(u string) (map[string]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := scrapeClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

// wait returns the per-service figures once both scrapes are done.
func (s *scraper) wait() []ServiceStats {
	s.wg.Wait()
	return serviceDelta(s.srcs, s.before, s.after, s.window.Seconds())
}

// serviceDelta is each service's figures between two scrapes secs apart;
// fan-out is relative to the first service.
func serviceDelta(srcs []MetricsSource, before, after []scrape, secs float64) []ServiceStats {
	out := make([]ServiceStats, len(srcs))
	for i, src := range srcs {
		st := ServiceStats{Name: src.Name}
		a, b := before[i], after[i]
		switch {
		case a.err != nil:
			st.Error = a.err.Error()
		case b.err != nil:
			st.Error = b.err.Error()
		default:
			if name, ok := pick(b.fams, "_requests_total", dto.MetricType_COUNTER, "http_requests_total"); ok {
				st.Series = name
				st.Requests = sum(b.fams[name]) - sum(a.fams[name])
				st.RequestRate = st.Requests / secs
				st.GoodRate = (sumGood(b.fams[name]) - sumGood(a.fams[name])) / secs
			}
			if name, ok := pick(b.fams, "_duration_seconds", dto.MetricType_HISTOGRAM, "http_request_duration_seconds"); ok {
				ds, dc := histDelta(a.fams[name], b.fams[name])
				if dc > 0 {
					st.MeanLatencyMs = 1000 * ds / dc
				}
			}
			if f, ok := b.fams["process_cpu_seconds_total"]; ok {
				st.CPUCores = (sum(f) - sum(a.fams["process_cpu_seconds_total"])) / secs
			}
			busy, okB := pick(b.fams, "_busy_seconds_total", dto.MetricType_COUNTER, "")
			workers, okW := pick(b.fams, "_workers", dto.MetricType_GAUGE, "")
			if okB && okW {
				if w := gauge(b.fams[workers]); w > 0 {
					st.Workers, st.BusySeconds = w, sum(b.fams[busy])-sum(a.fams[busy])
					st.Utilization = st.BusySeconds / secs / w
				}
			}
		}
		out[i] = st
	}
	if len(out) > 0 && out[0].RequestRate > 0 {
		for i := range out {
			out[i].FanOut = out[i].RequestRate / out[0].RequestRate
		}
	}
	return out
}

// pick chooses the family to read: the preferred name when present, else
// the first (by name) of the right type with the suffix.
func pick(fams map[string]*dto.MetricFamily, suffix string, typ dto.MetricType, prefer string) (string, bool) {
	if f, ok := fams[prefer]; ok && f.GetType() == typ {
		return prefer, true
	}
	names := make([]string, 0, len(fams))
	for n, f := range fams {
		if strings.HasSuffix(n, suffix) && f.GetType() == typ {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return "", false
	}
	sort.Strings(names)
	return names[0], true
}

// sum adds a counter family's series.
func sum(f *dto.MetricFamily) float64 {
	if f == nil {
		return 0
	}
	var t float64
	for _, m := range f.GetMetric() {
		if c := m.GetCounter(); c != nil {
			t += c.GetValue()
		} else if u := m.GetUntyped(); u != nil {
			t += u.GetValue()
		}
	}
	return t
}

// sumGood is sum over the series that did not fail (see GoodRate).
func sumGood(f *dto.MetricFamily) float64 {
	if f == nil {
		return 0
	}
	var t float64
	for _, m := range f.GetMetric() {
		if failedSeries(m) {
			continue
		}
		if c := m.GetCounter(); c != nil {
			t += c.GetValue()
		} else if u := m.GetUntyped(); u != nil {
			t += u.GetValue()
		}
	}
	return t
}

// failedSeries reports a request counter's series of failed requests: an
// HTTP code (label code, status or status_code) of 5xx or 429, or a gRPC
// code (grpc_code) other than OK.
func failedSeries(m *dto.Metric) bool {
	for _, l := range m.GetLabel() {
		v := l.GetValue()
		switch l.GetName() {
		case "code", "status", "status_code":
			if (len(v) == 3 && v[0] == '5') || v == "429" {
				return true
			}
		case "grpc_code":
			if v != "" && v != "OK" {
				return true
			}
		}
	}
	return false
}

// gauge adds a gauge family's series.
func gauge(f *dto.MetricFamily) float64 {
	var t float64
	for _, m := range f.GetMetric() {
		if g := m.GetGauge(); g != nil {
			t += g.GetValue()
		}
	}
	return t
}

// histDelta is the growth of a histogram family's sum and count.
func histDelta(a, b *dto.MetricFamily) (dsum, dcount float64) {
	tot := func(f *dto.MetricFamily) (s, c float64) {
		if f == nil {
			return 0, 0
		}
		for _, m := range f.GetMetric() {
			if h := m.GetHistogram(); h != nil {
				s += h.GetSampleSum()
				c += float64(h.GetSampleCount())
			}
		}
		return s, c
	}
	sa, ca := tot(a)
	sb, cb := tot(b)
	return sb - sa, cb - ca
}
