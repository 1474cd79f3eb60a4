package capture

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/loadgen/httpc"
	"github.com/loadcap/loadcap/scenarios"
)

// ReplayConfig tunes a replay source beyond what the scenario file says.
type ReplayConfig struct {
	// Options are passed to the reader (a log_format, a record size cap).
	Options []Option
	// Keep, when set, selects the records this process replays by their
	// index in the recording (distributed runs split a recording without
	// overlap); nil keeps all.
	Keep func(index int64) bool
	// Progress, when set, is told about the pre-scan of the recording.
	Progress io.Writer
}

// ReplaySource feeds a recording to the engine (loadgen.ReplaySource): it reads
// the file in its own goroutine, rewrites each record (once per amplified
// copy), aims it at the scenario's target, and hands out ready requests
// through a bounded queue, so memory stays flat whatever the file's size.
type ReplaySource struct {
	f       *scenarios.File
	rw      *Rewriter
	keep    func(int64) bool
	opts    []Option
	format  Format
	routes  map[string]int
	other   int // index of OtherRoutes, -1 when every route has its own
	scheme  string
	host    string // authority with the port
	base    string // the target's base path without a trailing slash
	baggage string // the drill's W3C baggage member

	items chan *loadgen.ReplayItem
	pool  sync.Pool
	stop  chan struct{}
	once  sync.Once
	done  chan struct{}

	mu        sync.Mutex
	err       error
	malformed Malformed
	first     time.Time

	wholeSeconds bool // no record time has a fraction of a second

	// spread: the recording times requests to the whole second (access
	// logs), so a timed replay spreads each second's requests evenly over
	// it instead of sending them in one burst. perSec counts them; seen
	// counts those already queued (a second's requests need not be
	// adjacent in the file).
	spread bool
	perSec map[int64]int64
	seen   map[int64]int64
}

// sourceQueue bounds the items read ahead of the engine.
const sourceQueue = 4096

// NewReplaySource prepares the replay of f (a file with replay:): it scans the
// recording once for its routes, span and count, installs them in f
// (scenarios.File.SetReplayRequests: one series per route; a timed replay's
// scenario), and starts reading. Close it when the run is over.
func NewReplaySource(f *scenarios.File, cfg ReplayConfig) (*ReplaySource, error) {
	s, err := prepare(f, cfg)
	if err != nil {
		return nil, err
	}
	go s.run()
	return s, nil
}

// PrepareReplay installs f's replay requests and scenario as NewReplaySource
// does, without reading on: a coordinator that merges agents' results needs
// the same series as they record.
func PrepareReplay(f *scenarios.File, cfg ReplayConfig) error {
	s, err := prepare(f, cfg)
	if err != nil {
		return err
	}
	close(s.items)
	close(s.done)
	return nil
}

// Hosts are the destinations of a replay's requests (host:port): the
// scenario's target, and hosts the rewrite rules map recorded hosts to.
func (s *ReplaySource) Hosts() []string {
	hosts := []string{s.host}
	if s.rw != nil {
		for _, h := range s.rw.Hosts() {
			hosts = append(hosts, withPort(h, s.scheme))
		}
	}
	return hosts
}

func prepare(f *scenarios.File, cfg ReplayConfig) (*ReplaySource, error) {
	r := f.Replay
	if r == nil {
		return nil, fmt.Errorf("%s: no replay: section", f.Path)
	}
	var format Format // "": guessed from the file's first bytes
	var err error
	if r.Format != "" {
		if format, err = ParseFormat(r.Format); err != nil {
			return nil, err
		}
	}
	s := &ReplaySource{f: f, keep: cfg.Keep, opts: cfg.Options, format: format, other: -1,
		stop: make(chan struct{}), done: make(chan struct{}), items: make(chan *loadgen.ReplayItem, sourceQueue)}
	s.pool.New = func() any { return new(loadgen.ReplayItem) }
	if r.Rewrite != "" {
		if s.rw, err = LoadRules(r.Rewrite); err != nil {
			return nil, err
		}
	}
	if err := s.aim(f.Target); err != nil {
		return nil, err
	}
	if f.DrillID != "" {
		s.baggage = scenarios.ShadowBaggageKey + "=" + f.DrillID
	}

	start := time.Now()
	stats, err := s.scan()
	if err != nil {
		return nil, err
	}
	if stats.Requests == 0 {
		return nil, &scenarios.Error{File: f.Path, Pos: r.Pos, Path: "replay.file", Msg: fmt.Sprintf("%s holds no request that can be replayed", r.File)}
	}
	if cfg.Progress != nil {
		fmt.Fprintf(cfg.Progress, "replay: %s: %d requests over %v, %d routes (scanned in %v)\n",
			r.File, stats.Requests, stats.Span().Round(time.Millisecond), len(stats.Routes()), time.Since(start).Round(time.Millisecond))
	}
	var names []string
	s.routes = map[string]int{}
	for i, c := range stats.Routes() {
		names = append(names, c.Key)
		s.routes[c.Key] = i
		if c.Key == OtherRoutes {
			s.other = i
		}
	}
	if s.other < 0 && len(names) >= MaxRoutes {
		s.other = len(names)
		names = append(names, OtherRoutes)
	}
	if err := f.SetReplayRequests(names, scenarios.RecordingStats{Count: stats.Requests, Span: stats.Span()}); err != nil {
		return nil, err
	}
	s.first = stats.First
	if s.spread = r.Mode == scenarios.ReplayTimed && s.wholeSeconds; s.spread {
		s.perSec, s.seen = map[int64]int64{}, map[int64]int64{}
		for _, sec := range stats.PerSecond() {
			s.perSec[sec.Time.Unix()] = sec.N
		}
	}
	return s, nil
}

// aim takes the scheme, authority (with its port) and base path that
// every replayed request goes to.
func (s *ReplaySource) aim(target string) error {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s: target %q is not an http(s) URL", s.f.Path, target)
	}
	s.scheme, s.host = u.Scheme, u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		s.host = net.JoinHostPort(u.Hostname(), port)
	}
	s.base = strings.TrimSuffix(u.EscapedPath(), "/")
	return nil
}

// scan reads the recording once: its routes, count and span, as replayed
// (only the records this process keeps, after rewrite rules drop routes).
func (s *ReplaySource) scan() (*Stats, error) {
	rd, err := Open(s.f.Replay.File, s.format, s.opts...)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	st := NewStats()
	s.wholeSeconds = true
	for i := int64(0); ; i++ {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if s.keep != nil && !s.keep(i) {
			continue
		}
		c := rec // routes are named after the requests as sent: rewritten
		if s.rw != nil && !s.rw.Apply(&c, 0) {
			continue
		}
		if rec.Time.Nanosecond() != 0 {
			s.wholeSeconds = false
		}
		c.Time = rec.Time
		st.Add(&c)
	}
	st.Malformed = rd.Malformed()
	return st, nil
}

// run reads the recording into the queue: once when timed, round and round
// at a rate, until Close.
func (s *ReplaySource) run() {
	defer close(s.done)
	defer close(s.items)
	r := s.f.Replay
	var last time.Duration
	for pass := 0; ; pass++ {
		n, err := s.pass(&last)
		if err != nil {
			s.fail(err)
			return
		}
		if r.Mode == scenarios.ReplayTimed || n == 0 {
			return
		}
		select {
		case <-s.stop:
			return
		default:
		}
	}
}

// pass reads the file once and queues its records; it returns how many it
// queued.
func (s *ReplaySource) pass(last *time.Duration) (int64, error) {
	rd, err := Open(s.f.Replay.File, s.format, s.opts...)
	if err != nil {
		return 0, err
	}
	defer rd.Close()
	r := s.f.Replay
	var queued int64
	for i := int64(0); ; i++ {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			s.mu.Lock()
			s.malformed = rd.Malformed()
			s.mu.Unlock()
			return queued, nil
		}
		if err != nil {
			return queued, err
		}
		if s.keep != nil && !s.keep(i) {
			continue
		}
		// Arrivals keep the recorded spacing divided by speed; a record
		// logged slightly out of order is sent with its predecessor
		// rather than counted as the pacer falling behind.
		recorded := rec.Time.Sub(s.first)
		if s.spread {
			sec := rec.Time.Unix()
			if n := s.perSec[sec]; n > 1 {
				recorded += time.Duration(s.seen[sec] * int64(time.Second) / n)
			}
			s.seen[sec]++
		}
		at := time.Duration(float64(recorded) / r.Speed)
		if at < *last {
			at = *last
		}
		*last = at
		for k := 0; k < r.Amplify; k++ {
			c := rec
			if s.rw != nil && !s.rw.Apply(&c, k) {
				break
			}
			it := s.item(&rec, &c, at)
			select {
			case s.items <- it:
				queued++
			case <-s.stop:
				return queued, nil
			}
		}
	}
}

// item builds the request for one copy c of the recorded rec.
func (s *ReplaySource) item(rec, c *Record, at time.Duration) *loadgen.ReplayItem {
	it := s.pool.Get().(*loadgen.ReplayItem)
	it.At = at
	it.Method = c.Method
	it.Scheme, it.Host = s.scheme, s.host
	// A rewrite rule that mapped the recorded host aims there instead;
	// the recorded host itself is never a destination.
	if c.Host != rec.Host && c.Host != "" {
		it.Host = withPort(c.Host, c.Scheme)
		if c.Scheme != "" {
			it.Scheme = c.Scheme
		}
	}
	idx, ok := s.routes[Route(c.Method, c.PathOnly())]
	if !ok {
		idx = max(s.other, 0)
	}
	it.Request = idx
	it.Target = append(append(it.Target[:0], s.base...), c.Path...)
	it.Body = append(it.Body[:0], c.Body...)
	// The drill's tag: the engine sets X-Loadcap-Shadow and adds the
	// file's Baggage header when the recording has none; a recorded
	// Baggage keeps its members and gets the drill's.
	hs := it.Header[:0]
	for _, h := range c.Header {
		v := h.Value
		if s.baggage != "" && strings.EqualFold(h.Name, "Baggage") {
			v = withBaggage(v, s.baggage)
		}
		hs = append(hs, httpc.Header{Name: h.Name, Value: []byte(v)})
	}
	it.Header = hs
	return it
}

// withPort adds the scheme's default port to an authority without one.
func withPort(host, scheme string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	if scheme == "https" {
		return net.JoinHostPort(strings.Trim(host, "[]"), "443")
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), "80")
}

// withBaggage replaces any loadcap.shadow member of a recorded W3C baggage
// value with the drill's, keeping the other members.
func withBaggage(v, member string) string {
	var out []string
	for _, m := range strings.Split(v, ",") {
		key, _, _ := strings.Cut(strings.TrimSpace(m), "=")
		if strings.TrimSpace(key) == scenarios.ShadowBaggageKey || strings.TrimSpace(m) == "" {
			continue
		}
		out = append(out, strings.TrimSpace(m))
	}
	return strings.Join(append(out, member), ",")
}

func (s *ReplaySource) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
}

// Next hands out the next request; false when a timed recording is over,
// the source was closed, or reading failed (Err says).
func (s *ReplaySource) Next() (*loadgen.ReplayItem, bool) {
	it, ok := <-s.items
	return it, ok
}

// Release takes back an item the engine is done with.
func (s *ReplaySource) Release(it *loadgen.ReplayItem) { s.pool.Put(it) }

// Close stops reading and waits for the reader goroutine.
func (s *ReplaySource) Close() error {
	s.once.Do(func() { close(s.stop) })
	for range s.items {
		// drain, so the reader is not blocked on a full queue
	}
	<-s.done
	return s.Err()
}

// Err is the error that ended reading early, if any.
func (s *ReplaySource) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Malformed reports the records of the last pass that could not be read.
func (s *ReplaySource) Malformed() Malformed {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.malformed
}
