// Package dashboard serves a run's live dashboard (--dashboard ADDR on run
// and drill): one self-contained page, with no external asset (its script,
// style and charts are inline, so it works offline), whose charts follow
// the load every second over server-sent events: latency percentiles,
// sent, completed and failed per second, errors by class, requests in
// flight; for a drill also the stages planned against achieved, each guard
// rule with its value and limit, each service's measured load and, where
// known, its capacity, and the stop button.
//
// The stop button is the guard's hot switch (guard.Guard.Stop), not a
// second stop path; it needs the token the command prints with the
// dashboard's URL (which carries it after #). After the run the page says
// it ended, with the verdict, and links the HTML report, which the server
// serves when one was written.
//
// The server is fed from runner.Config.OnInterval (Observe) and never
// slows the load: Observe only queues, and a page that does not keep up is
// dropped (it reconnects and starts again from a snapshot).
package dashboard

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/loadcap/loadcap/internal/guard"
	"github.com/loadcap/loadcap/loadgen"
)

// Defaults of a Server.
const (
	DefaultHost    = "127.0.0.1"     // the host when Config.Addr names only a port
	DefaultBuffer  = 32              // events buffered per page before it is dropped
	DefaultHistory = 3600            // points (seconds) a page that connects late is sent
	DefaultLinger  = 3 * time.Second // how long Close waits for the pages to read the end
	statusEvery    = time.Second
	writeTimeout   = 5 * time.Second // one event's write to a page
)

//go:embed page.html
var page []byte

// Config sets up a Server.
type Config struct {
	// Addr is where to listen: "host:port", or ":port" (and "port") for
	// DefaultHost, loopback only. Name a host to listen elsewhere.
	Addr string
	// Token guards the stop button; "" generates one.
	Token string
	// Title names the run on the page ("drill presale-1").
	Title   string
	Buffer  int           // 0: DefaultBuffer
	History int           // 0: DefaultHistory
	Linger  time.Duration // 0: DefaultLinger
}

// Stage is one planned stage of a drill.
type Stage struct {
	Name       string
	Start      time.Duration // since the load's start
	Ramp, Hold time.Duration
	RatePerSec float64 // the planned rate it ramps to and holds
}

// Service is one service's load as last measured (a drill measures its
// services over each stage's hold).
type Service struct {
	Name           string  `json:"name"`
	Stage          string  `json:"stage,omitempty"` // the stage the figures come from
	RatePerSec     float64 `json:"rate"`            // requests/s it received
	GoodPerSec     float64 `json:"good"`            // of which succeeded
	Utilization    float64 `json:"utilization"`     // of its workers, 0..1; 0: not exported
	CapacityPerSec float64 `json:"capacity"`        // all replicas, requests/s; 0: not known yet
	Method         string  `json:"method,omitempty"`
}

// Outcome is how the run ended, for the page.
type Outcome struct {
	Verdict string // one line: "passed", "stopped: hot switch: ..."
	Code    int    // the process exit code
	Report  string // the HTML report's path; "" when none was written
}

// Server is a live dashboard. Its methods are safe for concurrent use.
type Server struct {
	cfg   Config
	ln    net.Listener
	srv   *http.Server
	hub   *hub
	quit  chan struct{} // closed by Close: the event streams end
	ticks chan struct{} // closed by End or Close: no more status events
	wg    sync.WaitGroup

	mu       sync.Mutex
	points   []point // the last History (up to twice as many kept)
	stages   []Stage
	status   func() guard.Status
	stop     func(ctx context.Context, via, reason string) error
	services func() []Service
	end      *Outcome

	endOnce, closeOnce sync.Once
}

// New listens on cfg.Addr and serves the dashboard until Close.
func New(cfg Config) (*Server, error) {
	if cfg.Token == "" {
		cfg.Token = rand.Text()
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = DefaultBuffer
	}
	if cfg.History <= 0 {
		cfg.History = DefaultHistory
	}
	if cfg.Linger <= 0 {
		cfg.Linger = DefaultLinger
	}
	ln, err := net.Listen("tcp", listenAddr(cfg.Addr))
	if err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	s := &Server{cfg: cfg, ln: ln, hub: newHub(cfg.Buffer), quit: make(chan struct{}), ticks: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.servePage)
	mux.HandleFunc("GET /events", s.serveEvents)
	mux.HandleFunc("POST /stop", s.serveStop)
	mux.HandleFunc("GET /report", s.serveReport)
	// No WriteTimeout: the event streams are long; each write has its own
	// deadline.
	var h http.Handler = mux
	if ip := net.ParseIP(ln.Addr().(*net.TCPAddr).IP.String()); ip.IsLoopback() {
		h = loopbackHost(mux)
	}
	s.srv = &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute}
	s.wg.Go(func() { _ = s.srv.Serve(ln) })
	s.wg.Go(s.tick)
	return s, nil
}

// listenAddr puts DefaultHost before a bare port.
func listenAddr(a string) string {
	if !strings.Contains(a, ":") {
		a = ":" + a
	}
	if strings.HasPrefix(a, ":") {
		return DefaultHost + a
	}
	return a
}

// loopbackHost refuses requests that name another host than loopback: a
// web page elsewhere whose name it re-pointed at 127.0.0.1 (DNS
// rebinding) must not read a loopback dashboard.
func loopbackHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			http.Error(w, "a loopback dashboard answers only to a loopback address", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Addr is the address the dashboard listens on ("127.0.0.1:8090").
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the dashboard's address for a browser, the stop token after #
// (a fragment never leaves the browser: no log or Referer carries it).
func (s *Server) URL() string { return "http://" + s.Addr() + "/#token=" + s.cfg.Token }

// Token is what the stop button asks for.
func (s *Server) Token() string { return s.cfg.Token }

// Observe takes one closed interval of the load (merged over agents):
// pass it to runner.Config.OnInterval. It never waits for a page.
func (s *Server) Observe(iv loadgen.Interval) {
	p := pointOf(iv)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.points = append(s.points, p)
	if len(s.points) >= 2*s.cfg.History { // keep the last History, copying once per History points
		s.points = append(make([]point, 0, 2*s.cfg.History), s.points[len(s.points)-s.cfg.History:]...)
	}
	s.hub.publish(event("point", p))
}

// Stages sets a drill's planned stages.
func (s *Server) Stages(st []Stage) {
	s.mu.Lock()
	s.stages = append([]Stage(nil), st...)
	s.mu.Unlock()
}

// Guard shows a drill's guard: status is read every second, and stop is
// what the stop button calls (the guard's Stop: the hot switch).
func (s *Server) Guard(status func() guard.Status, stop func(ctx context.Context, via, reason string) error) {
	s.mu.Lock()
	s.status, s.stop = status, stop
	s.mu.Unlock()
}

// Services sets what tells each service's last measured load, read every
// second.
func (s *Server) Services(f func() []Service) {
	s.mu.Lock()
	s.services = f
	s.mu.Unlock()
}

// End tells the pages the run ended, and how; the report, when o names
// one, is served from then on. Only the first call counts.
func (s *Server) End(o Outcome) {
	s.endOnce.Do(func() {
		close(s.ticks)
		st := s.snapshotStatus() // the guard's last word
		s.mu.Lock()
		defer s.mu.Unlock()
		s.end = &o
		s.hub.publish(event("status", st))
		s.hub.publish(event("end", s.endLocked()))
	})
}

// Close stops the dashboard. After End it first gives the pages up to
// Config.Linger to read the end (and fetch the report), which they say by
// disconnecting.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		ended := s.end != nil
		s.mu.Unlock()
		if ended {
			deadline := time.Now().Add(s.cfg.Linger)
			for s.hub.len() > 0 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
		}
		s.endOnce.Do(func() { close(s.ticks) })
		close(s.quit)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if s.srv.Shutdown(ctx) != nil {
			_ = s.srv.Close()
		}
		s.wg.Wait()
	})
	return nil
}

// tick sends the status (guard, stages, services) every second.
func (s *Server) tick() {
	t := time.NewTicker(statusEvery)
	defer t.Stop()
	for {
		select {
		case <-s.ticks:
			return
		case <-t.C:
			st := s.snapshotStatus()
			s.mu.Lock()
			if s.end == nil {
				s.hub.publish(event("status", st))
			}
			s.mu.Unlock()
		}
	}
}

// point is one second of the load, as the charts plot it.
type point struct {
	T         int              `json:"t"` // seconds since the start
	Scheduled int64            `json:"scheduled"`
	Sent      int64            `json:"sent"`
	Completed int64            `json:"completed"`
	Failed    int64            `json:"failed"`
	Dropped   int64            `json:"dropped"`
	Inflight  int64            `json:"inflight"`
	P50       float64          `json:"p50"` // ms, of the requests done in the second
	P90       float64          `json:"p90"`
	P99       float64          `json:"p99"`
	Max       float64          `json:"max"`
	Classes   map[string]int64 `json:"classes,omitempty"` // failures by class
}

func pointOf(iv loadgen.Interval) point {
	p := point{T: iv.T, Scheduled: iv.Scheduled, Sent: iv.Sent, Completed: iv.Completed, Failed: iv.Failed,
		Dropped: iv.Dropped, Inflight: iv.Inflight,
		P50: iv.Latency.P50, P90: iv.Latency.P90, P99: iv.Latency.P99, Max: iv.Latency.Max}
	for c, n := range iv.Classes {
		if n > 0 {
			if p.Classes == nil {
				p.Classes = map[string]int64{}
			}
			p.Classes[loadgen.ClassName(uint8(c))] = n
		}
	}
	return p
}

// status is what changes besides the points: the drill's stages, guard
// and services.
type status struct {
	Elapsed  int                `json:"elapsed"` // seconds of load seen
	Stage    string             `json:"stage,omitempty"`
	Stages   []stageStatus      `json:"stages,omitempty"`
	Stop     bool               `json:"stop"` // the stop button works
	Rules    []guard.RuleStatus `json:"rules,omitempty"`
	Stopped  *guard.Breach      `json:"stopped,omitempty"`
	Services []Service          `json:"services,omitempty"`
}

// stageStatus is a stage planned, and achieved over its hold so far.
type stageStatus struct {
	Name    string   `json:"name"`
	Start   float64  `json:"start"` // s
	End     float64  `json:"end"`
	Planned float64  `json:"planned"` // requests/s
	Sent    *float64 `json:"sent"`    // mean sent/s over the seconds of its hold seen; null before
	Done    *float64 `json:"done"`    // mean completed/s, likewise
}

// snapshotStatus builds the status, calling the guard and services
// functions outside the lock.
func (s *Server) snapshotStatus() status {
	s.mu.Lock()
	statusFn, servicesFn, canStop := s.status, s.services, s.stop != nil
	s.mu.Unlock()
	st := status{Stop: canStop}
	if statusFn != nil {
		g := statusFn()
		st.Rules, st.Stopped = g.Rules, g.Stopped
	}
	if servicesFn != nil {
		st.Services = servicesFn()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.points); n > 0 {
		st.Elapsed = s.points[n-1].T + 1
	}
	for _, sg := range s.stages {
		ss := stageStatus{Name: sg.Name, Start: sg.Start.Seconds(), End: (sg.Start + sg.Ramp + sg.Hold).Seconds(), Planned: sg.RatePerSec}
		from, to := int(math.Ceil((sg.Start + sg.Ramp).Seconds())), int((sg.Start + sg.Ramp + sg.Hold).Seconds())
		var n, sent, done int64
		for _, p := range s.points {
			if p.T >= from && p.T < to {
				n, sent, done = n+1, sent+p.Sent, done+p.Completed
			}
		}
		if n > 0 {
			a, b := float64(sent)/float64(n), float64(done)/float64(n)
			ss.Sent, ss.Done = &a, &b
		}
		if float64(st.Elapsed) > ss.Start && float64(st.Elapsed) <= ss.End {
			st.Stage = sg.Name
		}
		st.Stages = append(st.Stages, ss)
	}
	return st
}

// end is the end event.
type end struct {
	Verdict string `json:"verdict"`
	Code    int    `json:"code"`
	Report  string `json:"report,omitempty"` // the report's URL on this server
}

func (s *Server) endLocked() *end {
	if s.end == nil {
		return nil
	}
	e := &end{Verdict: s.end.Verdict, Code: s.end.Code}
	if s.end.Report != "" {
		e.Report = "report"
	}
	return e
}

// event formats one server-sent event.
func event(name string, v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		data, _ = json.Marshal(map[string]string{"error": err.Error()})
	}
	return fmt.Appendf(nil, "event: %s\ndata: %s\n\n", name, data)
}

func (s *Server) servePage(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// Nothing from elsewhere: the page is whole, and must stay so.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(page)
}

// hello is a page's first event: everything so far.
type hello struct {
	Title  string  `json:"title"`
	Points []point `json:"points"`
	Status status  `json:"status"`
	End    *end    `json:"end"`
}

func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	rc := http.NewResponseController(w)
	st := s.snapshotStatus()
	s.mu.Lock()
	points := s.points[max(0, len(s.points)-s.cfg.History):]
	first := event("hello", hello{Title: s.cfg.Title, Points: points, Status: st, End: s.endLocked()})
	c := s.hub.join(append([]byte("retry: 1000\n\n"), first...))
	s.mu.Unlock()
	defer s.hub.leave(c)
	for {
		select {
		case ev := <-c.events:
			_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
			if _, err := w.Write(ev); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		case <-c.gone: // too slow: dropped; the page reconnects
			return
		case <-r.Context().Done():
			return
		case <-s.quit:
			return
		}
	}
}

// serveStop is the stop button: the token, then the guard's hot switch.
func (s *Server) serveStop(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	s.mu.Lock()
	stop := s.stop
	s.mu.Unlock()
	if stop == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "nothing to stop: only a drill's dashboard has the stop button"})
		return
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		token = r.FormValue("token")
	}
	if subtle.ConstantTimeCompare([]byte(token), []byte(s.cfg.Token)) != 1 {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "wrong token: use the one printed on the terminal with the dashboard's address"})
		return
	}
	err := stop(r.Context(), "the dashboard's stop button from "+r.RemoteAddr, r.FormValue("reason"))
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, map[string]bool{"stopped": true})
	case errors.Is(err, guard.ErrStopped):
		writeJSON(w, http.StatusConflict, map[string]string{"error": "the drill is already stopping"})
	default:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
	}
}

// serveReport serves the HTML report once the run ended with one.
func (s *Server) serveReport(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	path := ""
	if s.end != nil {
		path = s.end.Report
	}
	s.mu.Unlock()
	if path == "" {
		http.Error(w, "no report (yet)", http.StatusNotFound)
		return
	}
	f, err := os.Open(path)
	if err != nil {
		http.Error(w, "the report cannot be read", http.StatusNotFound)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		http.Error(w, "the report cannot be read", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	http.ServeContent(w, r, "report.html", fi.ModTime(), f)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
