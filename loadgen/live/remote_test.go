package live

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	prompb "buf.build/gen/go/prometheus/prometheus/protocolbuffers/go"
	"github.com/klauspost/compress/snappy"
	"google.golang.org/protobuf/proto"
)

// receiver is a remote-write endpoint that decodes what it gets; fail
// decides each request's status (0: 204).
type receiver struct {
	mu       sync.Mutex
	requests int
	series   []*prompb.TimeSeries
	fail     func(n int) int
	srv      *httptest.Server
}

func newReceiver(t *testing.T, fail func(n int) int) *receiver {
	rc := &receiver{fail: fail}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.mu.Lock()
		rc.requests++
		n := rc.requests
		rc.mu.Unlock()
		if r.Header.Get("Content-Encoding") != "snappy" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "want snappy protobuf", http.StatusBadRequest)
			return
		}
		if rc.fail != nil {
			if code := rc.fail(n); code != 0 {
				http.Error(w, "no", code)
				return
			}
		}
		b, _ := io.ReadAll(r.Body)
		raw, err := snappy.Decode(nil, b)
		var wr prompb.WriteRequest
		if err == nil {
			err = proto.Unmarshal(raw, &wr)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		rc.series = append(rc.series, wr.Timeseries...)
		rc.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// last is the latest value of the series with these labels (name first).
func (rc *receiver) last(name string, labels ...string) (float64, bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	v, ok := 0.0, false
next:
	for _, s := range rc.series {
		have := map[string]string{}
		for _, l := range s.Labels {
			have[l.Name] = l.Value
		}
		if have["__name__"] != name {
			continue
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		v, ok = s.Samples[len(s.Samples)-1].Value, true
	}
	return v, ok
}

func TestPusherFlushesAtClose(t *testing.T) {
	rc := newReceiver(t, nil)
	m := New()
	p, err := NewPusher(m.Registry(), PushConfig{URL: rc.srv.URL, Every: time.Hour, Labels: map[string]string{"job": "loadcap", "instance": "test"}})
	if err != nil {
		t.Fatal(err)
	}
	p.Start()
	for _, iv := range intervals(t) {
		m.Observe(iv)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if v, ok := rc.last("loadcap_requests_total", "name", "checkout", "job", "loadcap", "instance", "test"); !ok || v != 3 {
		t.Errorf("the receiver has checkout's requests at %v (%v), want 3 after the last flush", v, ok)
	}
	if v, _ := rc.last("loadcap_request_duration_seconds_bucket", "name", "checkout", "le", "+Inf"); v != 3 {
		t.Errorf("checkout's +Inf bucket is %v, want 3", v)
	}
	if v, _ := rc.last("loadcap_request_failures_total", "class", "5xx"); v != 1 {
		t.Errorf("5xx failures %v, want 1", v)
	}
	rc.mu.Lock()
	for _, s := range rc.series {
		for i := 1; i < len(s.Labels); i++ {
			if s.Labels[i-1].Name >= s.Labels[i].Name {
				t.Fatalf("labels not sorted: %v", s.Labels)
			}
		}
	}
	rc.mu.Unlock()
	if sent, dropped := p.Stats(); sent == 0 || dropped != 0 {
		t.Errorf("sent %d dropped %d samples: want all sent", sent, dropped)
	}
}

func TestPusherRetriesWhatTheReceiverMayTakeLater(t *testing.T) {
	for _, tc := range []struct {
		name     string
		code     int
		requests int // that the one batch takes
		dropped  bool
	}{
		{"unavailable twice", http.StatusServiceUnavailable, 3, false},
		{"too many requests twice", http.StatusTooManyRequests, 3, false},
		{"bad request", http.StatusBadRequest, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := newReceiver(t, func(n int) int {
				if n <= 2 {
					return tc.code
				}
				return 0
			})
			m := New()
			p, err := NewPusher(m.Registry(), PushConfig{URL: rc.srv.URL, Every: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			p.Start()
			m.Observe(intervals(t)[0])
			err = p.Close()
			rc.mu.Lock()
			n := rc.requests
			rc.mu.Unlock()
			if n != tc.requests {
				t.Errorf("%d requests, want %d", n, tc.requests)
			}
			_, dropped := p.Stats()
			if (dropped > 0) != tc.dropped || (err != nil) != tc.dropped {
				t.Errorf("dropped %d, Close: %v; want dropped %v", dropped, err, tc.dropped)
			}
		})
	}
}

// A receiver that hangs never holds up gathering (the load's side): the
// queue stays bounded, the oldest batches go and are counted, and Close
// gives up at its cutoff.
func TestPusherDropsWhenTheReceiverCannotKeepUp(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	m := New()
	m.Observe(intervals(t)[0])
	p, err := NewPusher(m.Registry(), PushConfig{URL: srv.URL, Every: time.Hour, MaxPending: 3,
		Timeout: 50 * time.Millisecond, FlushTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	p.Start()
	start := time.Now()
	for range 50 {
		p.gather()
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("50 gathers took %v with the receiver hanging: the load would wait", took)
	}
	p.mu.Lock()
	queued := len(p.queue)
	p.mu.Unlock()
	if queued > 3 {
		t.Errorf("%d batches queued, the bound is 3", queued)
	}
	closed := time.Now()
	err = p.Close()
	if took := time.Since(closed); took > 2*time.Second {
		t.Errorf("Close took %v, the flush timeout is 300ms", took)
	}
	if err == nil || !strings.Contains(err.Error(), "dropped") {
		t.Errorf("Close: %v, want the dropped samples said", err)
	}
	if _, dropped := p.Stats(); dropped == 0 {
		t.Error("no sample counted as dropped")
	}
	if calls.Load() == 0 {
		t.Error("the pusher never tried the receiver")
	}
}

func TestPusherRefusesABadURL(t *testing.T) {
	for _, u := range []string{"", "localhost:9090/api/v1/write", "ftp://x/y", "http://"} {
		if _, err := NewPusher(New().Registry(), PushConfig{URL: u}); err == nil {
			t.Errorf("NewPusher(%q) accepted", u)
		}
	}
}

// Credentials in the URL authenticate the push and never show in an error.
func TestPusherBasicAuthStaysSecret(t *testing.T) {
	var user, pass string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, _ = r.BasicAuth()
		http.Error(w, "refused", http.StatusBadRequest)
	}))
	defer srv.Close()
	m := New()
	p, err := NewPusher(m.Registry(), PushConfig{URL: strings.Replace(srv.URL, "http://", "http://loadcap:s3cret@", 1), Every: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	p.Start()
	err = p.Close()
	if user != "loadcap" || pass != "s3cret" {
		t.Errorf("the receiver got user %q password %q", user, pass)
	}
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "400") {
		t.Errorf("Close: %v; want the refusal, without the password", err)
	}
}
