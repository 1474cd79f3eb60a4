package target

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Server is a running target. Its methods are safe for concurrent use.
type Server struct {
	cfg     Config
	origin  time.Time // monotonic zero of stall windows and service timelines
	ln      net.Listener
	srv     *http.Server
	url     string
	pool    *pool // nil with unlimited workers
	sleeper *preciseSleeper
	log     io.Writer // nil = silent; serialized
	certs   *x509.CertPool
	errKey  uint64 // ErrorRate stream
	svcKey  uint64 // "exp" service time stream

	c counters

	done      chan struct{} // closed when the server stops: aborts every wait
	closeOnce sync.Once
	bg        sync.WaitGroup // Serve, the precise sleeper, the stats logger
	serveErr  atomic.Pointer[error]

	// active counts running handlers; closingBit is added when the server
	// stops so the last handler to leave closes idle.
	active   atomic.Int64
	idle     chan struct{}
	idleOnce sync.Once
}

const closingBit = 1 << 62

// Start validates c, listens, and serves in the background. The server
// accepts connections when Start returns. Call Close or Shutdown to stop it.
func Start(c Config) (*Server, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("target config: %w", err)
	}
	c = c.withDefaults()
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return nil, fmt.Errorf("target listen %s: %w", c.Listen, err)
	}
	now := time.Now()
	s := &Server{
		cfg:    c,
		origin: now,
		ln:     ln,
		errKey: splitmix(c.Seed ^ 0xe7037ed1a0b428db),
		svcKey: splitmix(c.Seed ^ 0x8ebc6af09c88c6e3),
		done:   make(chan struct{}),
		idle:   make(chan struct{}),
	}
	s.c.reset(now, c.ArrivalWindow)
	if c.Workers > 0 {
		s.pool = newPool(c.Workers, c.MaxQueue, &s.c.queue)
	}
	s.sleeper = newPreciseSleeper(now, s.done)
	errLog := io.Discard
	if c.Log != nil {
		s.log = &lockedWriter{w: c.Log}
		errLog = s.log
	}
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          log.New(errLog, "target: ", 0),
	}
	scheme := "http"
	switch {
	case c.H2C:
		p := new(http.Protocols)
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		s.srv.Protocols = p
	case c.TLS:
		host, _, _ := net.SplitHostPort(c.Listen)
		cert, leaf, err := selfSigned(host, now)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("target tls: %w", err)
		}
		s.certs = x509.NewCertPool()
		s.certs.AddCert(leaf)
		s.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		scheme = "https"
	}
	s.url = scheme + "://" + dialable(ln.Addr())

	s.bg.Add(2)
	go func() {
		defer s.bg.Done()
		var err error
		if c.TLS {
			err = s.srv.ServeTLS(ln, "", "")
		} else {
			err = s.srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			err = fmt.Errorf("target serve: %w", err)
			s.serveErr.Store(&err)
		}
	}()
	go func() {
		defer s.bg.Done()
		s.sleeper.run()
	}()
	if s.log != nil {
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			s.logLoop()
		}()
	}
	return s, nil
}

// dialable is addr as host:port a client can dial: an unspecified listen
// IP (0.0.0.0, ::) becomes the loopback of the same family.
func dialable(addr net.Addr) string {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return addr.String()
	}
	ip := ta.IP
	if ip.IsUnspecified() {
		if ip.To4() != nil {
			ip = net.IPv4(127, 0, 0, 1)
		} else {
			ip = net.IPv6loopback
		}
	}
	return (&net.TCPAddr{IP: ip, Port: ta.Port, Zone: ta.Zone}).String()
}

// URL is the base URL of the server, "http://127.0.0.1:PORT" ("https://"
// with TLS), without a trailing slash.
func (s *Server) URL() string { return s.url }

// Addr is the address the server listens on, as host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Config is the configuration the server runs with, defaults applied.
func (s *Server) Config() Config { return s.cfg }

// Stats is a snapshot of the counters since Start or the last Reset.
func (s *Server) Stats() Stats { return s.c.snapshot() }

// Reset zeroes the counters and the arrival buckets (the InFlight and Queue
// gauges stay). ResetEvery and ErrorRate count arrivals from the reset on.
func (s *Server) Reset() { s.c.reset(time.Now(), s.cfg.ArrivalWindow) }

// ArrivalsPer returns the number of arrivals per bucket of d since Start or
// the last Reset, up to the last non-empty bucket (empty slice when none).
// d is rounded down to whole milliseconds, at least 1 ms. Arrivals later
// than Config.ArrivalWindow after the reset are not included.
func (s *Server) ArrivalsPer(d time.Duration) []int64 {
	return s.c.arrivals.Load().per(max(1, int(d/time.Millisecond)))
}

// Client returns a new HTTP client suited to this server: it trusts the
// self-signed certificate with TLS, speaks HTTP/2 with prior knowledge with
// H2C (HTTP/2 over ALPN with TLS, HTTP/1.1 otherwise), ignores proxy
// environment variables and keeps up to 1024 idle connections. It is meant
// for tests and demos, not tuned for load generation.
func (s *Server) Client() *http.Client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
	}
	switch {
	case s.cfg.TLS:
		tr.TLSClientConfig = s.ClientTLSConfig()
		tr.ForceAttemptHTTP2 = true
	case s.cfg.H2C:
		p := new(http.Protocols)
		p.SetUnencryptedHTTP2(true)
		tr.Protocols = p
	}
	return &http.Client{Transport: tr}
}

// ClientTLSConfig returns a client TLS configuration that trusts the
// server's self-signed certificate, or nil without TLS.
func (s *Server) ClientTLSConfig() *tls.Config {
	if s.certs == nil {
		return nil
	}
	return &tls.Config{RootCAs: s.certs, MinVersion: tls.VersionTLS12}
}

// Close stops the server at once: the listener and every connection are
// closed and requests in flight (queued, in service, stalled or sleeping)
// end without a response. Close returns when every handler has returned.
// Further calls return nil.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		err = s.srv.Close()
		s.finish()
		if e := s.serveErr.Load(); e != nil {
			err = errors.Join(err, *e)
		}
	})
	return err
}

// Shutdown stops accepting connections and waits for requests in flight to
// be answered normally, then stops the server. If ctx ends first, Shutdown
// returns its error and the server keeps answering the remaining requests;
// call Close to end them.
func (s *Server) Shutdown(ctx context.Context) error {
	if err := s.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("target shutdown: %w", err)
	}
	var err error
	s.closeOnce.Do(func() {
		s.finish()
		if e := s.serveErr.Load(); e != nil {
			err = *e
		}
	})
	return err
}

// finish aborts every wait, waits for the handlers and the background
// goroutines.
func (s *Server) finish() {
	close(s.done)
	if s.active.Add(closingBit) == closingBit {
		s.idleOnce.Do(func() { close(s.idle) })
	}
	<-s.idle
	s.bg.Wait()
}

func (s *Server) enter() bool {
	if s.active.Add(1) >= closingBit {
		s.leave()
		return false
	}
	return true
}

func (s *Server) leave() {
	if s.active.Add(-1) == closingBit {
		s.idleOnce.Do(func() { close(s.idle) })
	}
}

// logLoop writes one line of per-second counters to s.log until done.
func (s *Server) logLoop() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	prev := s.Stats()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		cur := s.Stats()
		base := prev
		if !cur.Since.Equal(prev.Since) { // reset in between: count from zero
			base = Stats{}
		}
		fmt.Fprintf(s.log, "target %s: arrived %d/s served %d/s rejected %d errors %d resets %d stalled %d in_flight %d queue %d\n",
			time.Since(s.origin).Round(time.Second),
			cur.Arrived-base.Arrived, cur.Served-base.Served, cur.Rejected-base.Rejected,
			cur.Errors-base.Errors, cur.Resets-base.Resets, cur.Stalled-base.Stalled,
			cur.InFlight, cur.Queue)
		prev = cur
	}
}

// lockedWriter serializes writes from the stats logger and the HTTP
// server's error log.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
