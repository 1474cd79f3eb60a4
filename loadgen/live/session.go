package live

import (
	"context"
	"net"
	"os"
)

// Config is what a command asks of a load's live metrics.
type Config struct {
	// Listen serves them at /metrics on this address (--metrics-listen);
	// "" does not.
	Listen string
	// RemoteWrite pushes them to this remote-write URL (--out
	// prometheus-rw=URL); "" does not.
	RemoteWrite string
	// Labels go on every pushed series; nil is job="loadcap" and
	// instance=the host's name.
	Labels map[string]string
	// Push tunes the pusher; its URL and Labels are the two above.
	Push PushConfig
}

// Session is a command's live metrics, served and pushed as its Config
// asks, for as long as the command runs.
type Session struct {
	m      *Metrics
	addr   net.Addr
	pusher *Pusher
	cancel context.CancelFunc
}

// Start serves and starts pushing new Metrics; it returns a nil Session
// (whose Metrics are nil, which every hook ignores) when cfg asks for
// nothing.
func Start(cfg Config) (*Session, error) {
	if cfg.Listen == "" && cfg.RemoteWrite == "" {
		return nil, nil
	}
	s := &Session{m: New()}
	var ctx context.Context
	ctx, s.cancel = context.WithCancel(context.Background())
	if cfg.RemoteWrite != "" {
		pc := cfg.Push
		pc.URL, pc.Labels = cfg.RemoteWrite, cfg.Labels
		if pc.Labels == nil {
			host, _ := os.Hostname()
			pc.Labels = map[string]string{"job": "loadcap", "instance": host}
		}
		p, err := NewPusher(s.m.Registry(), pc)
		if err != nil {
			s.cancel()
			return nil, err
		}
		s.m.Registry().MustRegister(p)
		s.pusher = p
	}
	if cfg.Listen != "" {
		addr, err := Serve(ctx, cfg.Listen, s.m.Registry())
		if err != nil {
			s.cancel()
			return nil, err
		}
		s.addr = addr
	}
	if s.pusher != nil {
		s.pusher.Start()
	}
	return s, nil
}

// Metrics are the session's metrics; nil for a nil Session.
func (s *Session) Metrics() *Metrics {
	if s == nil {
		return nil
	}
	return s.m
}

// Addr is where the metrics are served; nil when they are not.
func (s *Session) Addr() net.Addr {
	if s == nil {
		return nil
	}
	return s.addr
}

// Close pushes the last figures (the run's totals), then stops serving.
// Its error is the pusher's: samples the receiver never got.
func (s *Session) Close() error {
	if s == nil {
		return nil
	}
	defer s.cancel()
	if s.pusher != nil {
		return s.pusher.Close()
	}
	return nil
}
