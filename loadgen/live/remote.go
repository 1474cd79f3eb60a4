package live

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	prompb "buf.build/gen/go/prometheus/prometheus/protocolbuffers/go"
	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// Defaults of PushConfig.
const (
	DefaultPushEvery    = 5 * time.Second
	DefaultMaxPending   = 120 // batches: 10 minutes at DefaultPushEvery
	DefaultPushTimeout  = 10 * time.Second
	DefaultFlushTimeout = 15 * time.Second
	// maxPerRequest caps how many queued batches one request carries.
	maxPerRequest = 10
)

// PushConfig configures a Pusher.
type PushConfig struct {
	// URL is the receiver: Prometheus's /api/v1/write, Mimir's
	// /api/v1/push, ...; user:password@ in it is sent as basic
	// authentication and never shown in messages.
	URL string
	// Every is how often the metrics are gathered into a batch.
	Every time.Duration
	// Labels are added to every series (job and instance, say).
	Labels map[string]string
	// MaxPending bounds the batches waiting for the receiver: past it the
	// oldest is dropped (and counted), so memory stays bounded and the
	// load never waits for the receiver.
	MaxPending int
	// Timeout bounds one request, FlushTimeout the last flush (Close).
	Timeout, FlushTimeout time.Duration
	// Client sends the requests; nil is a client with Timeout.
	Client *http.Client
}

// Pusher sends a gatherer's metrics to a Prometheus remote-write receiver
// (protocol 1.0: snappy-compressed protobuf WriteRequest): every Every it
// gathers them into a batch (one sample per series, all with the gather's
// time), and a sender posts the queued batches in order, several per
// request, retrying failures with exponential backoff (100 ms doubling up
// to 5 s) for as long as the queue lets it. Counters are cumulative, so a
// dropped batch loses resolution, never counts: the next carries them.
// Start it, then Close it when the run ended, which gathers once more and
// flushes.
type Pusher struct {
	g      prometheus.Gatherer
	cfg    PushConfig
	url    string
	shown  string // url without its password, for messages
	labels []*prompb.Label

	mu      sync.Mutex
	queue   [][]*prompb.TimeSeries
	wake    chan struct{}
	stop    chan struct{} // closed by Close: no more gathering
	drain   chan struct{} // closed by Close after the last gather
	done    chan struct{} // closed by the sender once drained
	started bool
	closed  bool // Close was called
	closing bool // the last batch is queued: drain until cutoff
	cutoff  time.Time

	sent, dropped float64 // samples
	lastErr       error

	descSent, descDropped *prometheus.Desc
}

// NewPusher checks cfg and returns a pusher of g.
func NewPusher(g prometheus.Gatherer, cfg PushConfig) (*Pusher, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		shown := cfg.URL
		if err == nil {
			shown = u.Redacted()
		} else if strings.Contains(shown, "@") {
			shown = "(a URL with credentials)"
		}
		return nil, fmt.Errorf("prometheus-rw=%s: want an http:// or https:// URL of a remote-write receiver", shown)
	}
	if cfg.Every <= 0 {
		cfg.Every = DefaultPushEvery
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultPushTimeout
	}
	if cfg.FlushTimeout <= 0 {
		cfg.FlushTimeout = DefaultFlushTimeout
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: cfg.Timeout}
	}
	p := &Pusher{g: g, cfg: cfg, url: u.String(), shown: u.Redacted(), wake: make(chan struct{}, 1), stop: make(chan struct{}), drain: make(chan struct{}), done: make(chan struct{})}
	for _, k := range sortedKeys(cfg.Labels) {
		p.labels = append(p.labels, &prompb.Label{Name: k, Value: cfg.Labels[k]})
	}
	p.descSent = prometheus.NewDesc("loadcap_remote_write_samples_sent_total", "Samples the remote-write receiver accepted.", nil, nil)
	p.descDropped = prometheus.NewDesc("loadcap_remote_write_samples_dropped_total", "Samples dropped: the receiver refused them, or could not keep up.", nil, nil)
	return p, nil
}

// Describe implements prometheus.Collector: the pusher's own counts.
func (p *Pusher) Describe(ch chan<- *prometheus.Desc) {
	ch <- p.descSent
	ch <- p.descDropped
}

// Collect implements prometheus.Collector.
func (p *Pusher) Collect(ch chan<- prometheus.Metric) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(p.descSent, prometheus.CounterValue, p.sent)
	ch <- prometheus.MustNewConstMetric(p.descDropped, prometheus.CounterValue, p.dropped)
}

// Start gathers every Every and sends in the background until Close.
func (p *Pusher) Start() {
	p.mu.Lock()
	if p.started {
		p.mu.Unlock()
		return
	}
	p.started = true
	p.mu.Unlock()
	go p.send()
	go func() {
		t := time.NewTicker(p.cfg.Every)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.gather()
			}
		}
	}()
}

// Close gathers the metrics a last time and waits until every queued
// batch is sent, or FlushTimeout passed (then the rest is dropped). Its
// error says how many samples were dropped and why.
func (p *Pusher) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	started := p.started
	p.started = true
	p.mu.Unlock()
	if !started {
		go p.send()
	}
	close(p.stop)
	p.gather()
	p.mu.Lock()
	p.closing = true
	p.cutoff = time.Now().Add(p.cfg.FlushTimeout)
	p.mu.Unlock()
	close(p.drain)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dropped > 0 {
		return fmt.Errorf("prometheus-rw: %.0f samples dropped (sent %.0f): %v", p.dropped, p.sent, p.lastErr)
	}
	return nil
}

// Stats returns the samples sent and dropped so far.
func (p *Pusher) Stats() (sent, dropped int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return int64(p.sent), int64(p.dropped)
}

// gather queues one batch of the gatherer's metrics, dropping the oldest
// batch when the queue is full.
func (p *Pusher) gather() {
	mfs, err := p.g.Gather()
	batch := toSeries(mfs, time.Now(), p.labels)
	p.mu.Lock()
	if err != nil {
		p.lastErr = err
	}
	if len(p.queue) >= p.cfg.MaxPending {
		p.dropped += float64(samples(p.queue[0]))
		p.lastErr = errors.New("the receiver could not keep up")
		p.queue = p.queue[1:]
	}
	p.queue = append(p.queue, batch)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// send posts the queue in order until Close, then drains it. The batches
// of a request leave the queue when it starts, so that the queue's bound
// holds the memory of the batches waiting besides the one request.
func (p *Pusher) send() {
	defer close(p.done)
	for {
		p.mu.Lock()
		n := min(len(p.queue), maxPerRequest)
		var ts []*prompb.TimeSeries
		for _, b := range p.queue[:n] {
			ts = append(ts, b...)
		}
		p.queue = p.queue[n:]
		closing := p.closing
		p.mu.Unlock()
		if n == 0 {
			if closing {
				return
			}
			select {
			case <-p.wake:
			case <-p.drain:
			}
			continue
		}
		err := p.post(ts)
		p.mu.Lock()
		if err != nil {
			p.dropped += float64(samples(ts))
			p.lastErr = err
		} else {
			p.sent += float64(samples(ts))
		}
		p.mu.Unlock()
	}
}

// post sends one request, retrying what a receiver may accept later
// (transport errors, 5xx, 429) with backoff, until newer batches fill the
// queue (the receiver cannot keep up: the oldest data goes) or, when
// closing, until the cutoff.
func (p *Pusher) post(ts []*prompb.TimeSeries) error {
	raw, err := proto.Marshal(&prompb.WriteRequest{Timeseries: ts})
	if err != nil {
		return err
	}
	body := snappy.Encode(nil, raw)
	backoff := 100 * time.Millisecond
	for {
		retry, err := p.postOnce(body)
		if err == nil || !retry {
			return err
		}
		p.mu.Lock()
		closing, cutoff := p.closing, p.cutoff
		full := len(p.queue) >= p.cfg.MaxPending
		p.mu.Unlock()
		if full || (closing && time.Now().Add(backoff).After(cutoff)) {
			return err
		}
		if closing {
			time.Sleep(backoff)
		} else {
			select {
			case <-time.After(backoff):
			case <-p.drain: // closing now: retry at once, under the cutoff
			}
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (p *Pusher) postOnce(body []byte) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	req.Header.Set("User-Agent", "loadcap")
	resp, err := p.cfg.Client.Do(req)
	if err != nil {
		return true, fmt.Errorf("POST %s: %w", p.shown, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 == 2 {
		return false, nil
	}
	err = fmt.Errorf("POST %s: %s: %s", p.shown, resp.Status, bytes.TrimSpace(msg))
	return resp.StatusCode/100 == 5 || resp.StatusCode == http.StatusTooManyRequests, err
}

func samples(ts []*prompb.TimeSeries) int {
	n := 0
	for _, s := range ts {
		n += len(s.Samples)
	}
	return n
}

// toSeries converts gathered metric families into remote-write series, one
// sample each at time at, with labels added (sorted by name, as the
// protocol wants). Histograms and summaries become their classic series
// (_bucket with le, _sum, _count; quantile): what PromQL over a
// remote-written receiver expects without native-histogram support.
func toSeries(mfs []*dto.MetricFamily, at time.Time, labels []*prompb.Label) []*prompb.TimeSeries {
	ts := at.UnixMilli()
	var out []*prompb.TimeSeries
	add := func(name string, m *dto.Metric, v float64, extra ...*prompb.Label) {
		ls := make([]*prompb.Label, 0, len(m.GetLabel())+len(labels)+len(extra)+1)
		ls = append(ls, &prompb.Label{Name: "__name__", Value: name})
		for _, l := range m.GetLabel() {
			ls = append(ls, &prompb.Label{Name: l.GetName(), Value: l.GetValue()})
		}
		ls = append(ls, extra...)
		for _, l := range labels {
			if !hasLabel(ls, l.Name) { // the metric's own label wins
				ls = append(ls, l)
			}
		}
		sort.Slice(ls, func(i, j int) bool { return ls[i].Name < ls[j].Name })
		out = append(out, &prompb.TimeSeries{Labels: ls, Samples: []*prompb.Sample{{Value: v, Timestamp: ts}}})
	}
	for _, mf := range mfs {
		name := mf.GetName()
		for _, m := range mf.GetMetric() {
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				add(name, m, m.GetCounter().GetValue())
			case dto.MetricType_GAUGE:
				add(name, m, m.GetGauge().GetValue())
			case dto.MetricType_UNTYPED:
				add(name, m, m.GetUntyped().GetValue())
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				h := m.GetHistogram()
				for _, b := range h.GetBucket() {
					add(name+"_bucket", m, float64(b.GetCumulativeCount()), &prompb.Label{Name: "le", Value: formatFloat(b.GetUpperBound())})
				}
				add(name+"_bucket", m, float64(h.GetSampleCount()), &prompb.Label{Name: "le", Value: "+Inf"})
				add(name+"_sum", m, h.GetSampleSum())
				add(name+"_count", m, float64(h.GetSampleCount()))
			case dto.MetricType_SUMMARY:
				s := m.GetSummary()
				for _, q := range s.GetQuantile() {
					add(name, m, q.GetValue(), &prompb.Label{Name: "quantile", Value: formatFloat(q.GetQuantile())})
				}
				add(name+"_sum", m, s.GetSampleSum())
				add(name+"_count", m, float64(s.GetSampleCount()))
			}
		}
	}
	return out
}

func hasLabel(ls []*prompb.Label, name string) bool {
	for _, l := range ls {
		if l.Name == name {
			return true
		}
	}
	return false
}

func formatFloat(f float64) string {
	if math.IsInf(f, 1) {
		return "+Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}
