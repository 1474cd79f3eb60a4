package target

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Limits on request parameters.
const (
	maxSleep = time.Hour
	maxBytes = 1 << 30
)

// maxCatchUp is the least lateness a worker's ideal timeline absorbs (up to
// one ServiceTime when that is longer): enough for timer overshoot and the
// scheduling delays of a busy shared machine, short enough that a real
// process pause shows as lost capacity rather than a burst of answers.
const maxCatchUp = 10 * time.Millisecond

var (
	okBody      = []byte("ok\n")
	errorBody   = []byte("injected error\n")
	fullBody    = []byte("queue full\n")
	closingBody = []byte("server closing\n")
	ctText      = []string{"text/plain; charset=utf-8"}
	ctBytes     = []string{"application/octet-stream"}
	byteFill    = func() []byte {
		b := make([]byte, 32<<10)
		for i := range b {
			b[i] = 'a' + byte(i%26)
		}
		return b
	}()
)

// ServeHTTP implements http.Handler; Start serves it, and it can be mounted
// in a test server too (stall windows then count from Start).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.enter() {
		w.Header()["Content-Type"] = ctText
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write(closingBody)
		return
	}
	defer s.leave()
	switch r.URL.Path {
	case "/stats":
		s.handleStats(w, r)
		return
	case "/metrics":
		s.writeMetrics(w)
		return
	}
	s.handle(w, r)
}

// route is what a counted request asks for.
type route struct {
	code   int
	body   []byte
	nbytes int64         // /bytes/N: body length, -1 otherwise
	sleep  time.Duration // /sleep: extra delay outside the pool
}

func parseRoute(r *http.Request) (route, string) {
	rt := route{code: http.StatusOK, body: okBody, nbytes: -1}
	p := r.URL.Path
	switch {
	case p == "/sleep":
		v := r.URL.Query().Get("ms")
		if v == "" {
			return rt, ""
		}
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms < 0 || ms > maxSleep.Milliseconds() {
			return rt, fmt.Sprintf("ms: want an integer in [0, %d], got %q", maxSleep.Milliseconds(), v)
		}
		rt.sleep = time.Duration(ms) * time.Millisecond
	case strings.HasPrefix(p, "/status/"):
		v := p[len("/status/"):]
		code, err := strconv.Atoi(v)
		if err != nil || code < 200 || code > 599 {
			return rt, fmt.Sprintf("status: want a code in [200, 599], got %q", v)
		}
		rt.code = code
		rt.body = []byte(fmt.Sprintf("%d %s\n", code, http.StatusText(code)))
	case strings.HasPrefix(p, "/bytes/"):
		v := p[len("/bytes/"):]
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || n > maxBytes {
			return rt, fmt.Sprintf("bytes: want a length in [0, %d], got %q", maxBytes, v)
		}
		rt.nbytes = n
	}
	return rt, ""
}

// handle serves a counted request: arrival, faults, the pool, the answer.
func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	t0 := time.Now()
	n := s.c.arrive(t0)
	defer s.c.inFlight.Add(-1)

	if s.cfg.ResetEvery > 0 && n%int64(s.cfg.ResetEvery) == 0 {
		s.c.resets.Add(1)
		resetConn(w)
		return
	}
	rt, bad := parseRoute(r)
	if bad != "" {
		w.Header()["Content-Type"] = ctText
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintln(w, bad)
		s.served(http.StatusBadRequest, t0)
		return
	}

	ctx := r.Context()
	stalled := false
	if !s.hold(ctx, &stalled) {
		s.c.canceled.Add(1)
		return
	}
	switch s.service(ctx, n, &stalled) {
	case rejected:
		s.c.rejected.Add(1)
		w.Header()["Content-Type"] = ctText
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write(fullBody)
		s.c.answered(http.StatusServiceUnavailable, t0, time.Now())
		return
	case canceled:
		s.c.canceled.Add(1)
		return
	}
	if rt.sleep > 0 && !s.sleeper.sleepUntil(s.sleeper.now()+rt.sleep, ctx.Done()) {
		s.c.canceled.Add(1)
		return
	}
	// Nothing is answered inside a stall window.
	if !s.hold(ctx, &stalled) {
		s.c.canceled.Add(1)
		return
	}

	if s.cfg.ErrorRate > 0 && uniform(s.errKey, n) < s.cfg.ErrorRate {
		s.c.errors.Add(1)
		rt = route{code: http.StatusInternalServerError, body: errorBody, nbytes: -1}
	}
	h := w.Header()
	if rt.nbytes >= 0 {
		h["Content-Type"] = ctBytes
		h.Set("Content-Length", strconv.FormatInt(rt.nbytes, 10))
		w.WriteHeader(rt.code)
		for left := rt.nbytes; left > 0; {
			k := min(left, int64(len(byteFill)))
			if _, err := w.Write(byteFill[:k]); err != nil {
				break
			}
			left -= k
		}
	} else {
		h["Content-Type"] = ctText
		w.WriteHeader(rt.code)
		w.Write(rt.body) // HEAD, 204 and 304 refuse the body; nothing to do
	}
	s.served(rt.code, t0)
}

func (s *Server) served(code int, t0 time.Time) {
	end := time.Now()
	s.c.served.Add(1)
	s.c.lastNs.Store(end.UnixNano())
	s.c.answered(code, t0, end)
}

// hold blocks while the server is inside a stall window and reports false
// when the request was abandoned meanwhile. A request held at least once is
// counted in Stalled once.
func (s *Server) hold(ctx context.Context, stalled *bool) bool {
	ok, _ := s.holdUntil(ctx, stalled)
	return ok
}

// holdUntil is hold that also returns the end of the window it waited for
// (0 when it did not wait).
func (s *Server) holdUntil(ctx context.Context, stalled *bool) (bool, time.Duration) {
	every, length := s.cfg.StallEvery, s.cfg.StallFor
	if every <= 0 {
		return true, 0
	}
	now := s.sleeper.now()
	phase := now % every
	if phase >= length {
		return true, 0
	}
	if !*stalled {
		*stalled = true
		s.c.stalled.Add(1)
	}
	end := now - phase + length
	return s.sleeper.sleepUntil(end, ctx.Done()), end
}

// service runs request n through the worker pool (or, with unlimited
// workers, just its service time) and returns acquired when done.
func (s *Server) service(ctx context.Context, n int64, stalled *bool) int {
	st := s.serviceTime(n)
	if s.pool == nil {
		if st <= 0 || s.sleeper.sleepUntil(s.sleeper.now()+st, ctx.Done()) {
			return acquired
		}
		return canceled
	}
	ideal, res := s.pool.acquire(s.sleeper.now(), ctx.Done(), s.done)
	if res != acquired {
		return res
	}
	// No service starts inside a stall window; it starts when the window
	// ends.
	ok, windowEnd := s.holdUntil(ctx, stalled)
	if !ok {
		s.pool.release(s.sleeper.now())
		return canceled
	}
	ideal = max(ideal, windowEnd)
	// Start at the ideal instant (when the previous service on this worker
	// ideally ended), so timer overshoot and scheduling delay do not
	// accumulate into lost capacity; catch up at most maxCatchUp.
	start := max(ideal, s.sleeper.now()-max(s.cfg.ServiceTime, maxCatchUp))
	end := start + st
	if st > 0 && !s.sleeper.sleepUntil(end, ctx.Done()) {
		s.pool.release(s.sleeper.now())
		return canceled
	}
	s.pool.release(end)
	return acquired
}

// serviceTime is the service time of request n.
func (s *Server) serviceTime(n int64) time.Duration {
	st := s.cfg.ServiceTime
	if st <= 0 || s.cfg.Dist != DistExp {
		return st
	}
	return time.Duration(-math.Log1p(-uniform(s.svcKey, n)) * float64(st))
}

// resetConn aborts the request's connection with a TCP RST and no
// response. HTTP/2 cannot hand over its connection: the stream is reset
// (RST_STREAM) instead.
func resetConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	// Close the TCP connection under TLS directly: tls.Conn.Close would
	// send a close_notify alert first.
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		tcp.SetLinger(0)
	}
	conn.Close()
}

// statsReply is the /stats body.
type statsReply struct {
	Stats
	ServedRatePerSec float64  `json:"served_rate_per_sec"`
	CapacityPerSec   *float64 `json:"capacity_per_sec"` // null = unlimited
	ArrivalsBucket   string   `json:"arrivals_bucket,omitempty"`
	Arrivals         *[]int64 `json:"arrivals,omitempty"`
}

func (s *Server) handleStats(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	reply := statsReply{Stats: s.Stats()}
	reply.ServedRatePerSec = reply.ServedRate()
	if c := s.cfg.CapacityPerSec(); !math.IsInf(c, 0) {
		reply.CapacityPerSec = &c
	}
	if v := q.Get("arrivals"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Millisecond || d%time.Millisecond != 0 {
			w.Header()["Content-Type"] = ctText
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, "arrivals: want a bucket duration, a multiple of 1ms, got %q\n", v)
			return
		}
		a := s.ArrivalsPer(d)
		if a == nil {
			a = []int64{}
		}
		reply.ArrivalsBucket = d.String()
		reply.Arrivals = &a
	}
	if q.Get("reset") == "1" {
		s.Reset()
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(reply)
}

// splitmix is the SplitMix64 finalizer, a strong 64-bit mixer.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// uniform is a deterministic uniform value in [0, 1) for index n of the
// stream key.
func uniform(key uint64, n int64) float64 {
	return float64(splitmix(key^uint64(n))>>11) * 0x1p-53
}
