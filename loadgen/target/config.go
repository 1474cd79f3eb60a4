package target

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"time"
)

// Defaults applied by Start to zero fields of Config.
const (
	DefaultListen        = "127.0.0.1:0"
	DefaultArrivalWindow = 10 * time.Minute
)

// Service time distributions accepted in Config.Dist.
const (
	DistFixed = "fixed"
	DistExp   = "exp"
)

// Config describes a target. The zero value (plus Listen) is an
// unlimited-concurrency server that answers at once.
type Config struct {
	Listen      string        // host:port; default "127.0.0.1:0" (a free loopback port)
	Workers     int           // concurrent servers; 0 = unlimited
	ServiceTime time.Duration // time one worker spends per request (mean for "exp"); 0 = answer at once
	Dist        string        // "fixed" (default) or "exp"
	MaxQueue    int           // requests waiting for a worker before 503; 0 = unbounded

	StallEvery time.Duration // stall period measured from Start; 0 = no stalls
	StallFor   time.Duration // stall length within each period

	// ResetEvery N resets the TCP connection (RST, no response) of every
	// Nth request since Start or Reset, at arrival, before any service;
	// 0 = never. HTTP/2 cannot hand over its connection, so there the
	// stream is reset instead. Note that Go's http.Transport silently
	// retries an idempotent request (GET, HEAD, ...) that fails on a reused
	// connection: to see every reset, use fresh connections or non-idempotent
	// methods.
	ResetEvery int

	// ErrorRate is the fraction of requests, in [0, 1], answered 500 after
	// their service time. Which requests fail depends only on Seed and the
	// arrival index since Start or Reset, so a sequential client sees the
	// same pattern on every run.
	ErrorRate float64
	Seed      uint64 // seeds ErrorRate and "exp" service times

	H2C bool // also accept HTTP/2 with prior knowledge over cleartext
	TLS bool // serve HTTPS (HTTP/1.1 and HTTP/2 via ALPN) with an in-memory self-signed loopback certificate

	// Log, when set, receives one line of per-second counters (and the
	// server's own error log). nil = silent.
	Log io.Writer

	// ArrivalWindow is how long after Start or Reset arrivals are kept per
	// 1 ms bucket (4 bytes per ms, allocated per second as used); later
	// arrivals are still counted but not bucketed. Default 10 minutes.
	ArrivalWindow time.Duration
}

// withDefaults returns c with zero fields replaced by defaults.
func (c Config) withDefaults() Config {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Dist == "" {
		c.Dist = DistFixed
	}
	if c.ArrivalWindow == 0 {
		c.ArrivalWindow = DefaultArrivalWindow
	}
	return c
}

// CapacityPerSec is the throughput of the worker pool under saturation in
// requests per second: Workers/ServiceTime. It is +Inf when either is 0
// (unlimited concurrency or no service time).
func (c Config) CapacityPerSec() float64 {
	if c.Workers <= 0 || c.ServiceTime <= 0 {
		return math.Inf(1)
	}
	return float64(c.Workers) / c.ServiceTime.Seconds()
}

// Validate reports every problem in c at once (joined with errors.Join),
// each prefixed with the flag-style name of the field.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if c.Listen != "" {
		if _, port, err := net.SplitHostPort(c.Listen); err != nil {
			bad("listen: %q is not host:port: %v", c.Listen, err)
		} else if port == "" {
			bad("listen: %q has no port (use :0 for a free one)", c.Listen)
		}
	}
	if c.Workers < 0 {
		bad("workers: must be >= 0 (0 = unlimited), got %d", c.Workers)
	}
	if c.ServiceTime < 0 {
		bad("service-time: must be >= 0, got %s", c.ServiceTime)
	}
	switch c.Dist {
	case "", DistFixed, DistExp:
	default:
		bad("dist: must be %q or %q, got %q", DistFixed, DistExp, c.Dist)
	}
	if c.MaxQueue < 0 {
		bad("max-queue: must be >= 0 (0 = unbounded), got %d", c.MaxQueue)
	} else if c.MaxQueue > 0 && c.Workers == 0 {
		bad("max-queue: needs workers > 0 (with unlimited workers nothing ever queues)")
	}
	switch {
	case c.StallEvery < 0:
		bad("stall-every: must be >= 0, got %s", c.StallEvery)
	case c.StallFor < 0:
		bad("stall-for: must be >= 0, got %s", c.StallFor)
	case c.StallEvery > 0 && c.StallFor == 0:
		bad("stall-for: must be > 0 when stall-every is set")
	case c.StallFor > 0 && c.StallEvery == 0:
		bad("stall-every: must be > 0 when stall-for is set")
	case c.StallFor > 0 && c.StallFor >= c.StallEvery:
		bad("stall-for: must be shorter than stall-every (%s >= %s)", c.StallFor, c.StallEvery)
	}
	if c.ResetEvery < 0 {
		bad("reset-every: must be >= 0 (0 = never), got %d", c.ResetEvery)
	}
	if math.IsNaN(c.ErrorRate) || c.ErrorRate < 0 || c.ErrorRate > 1 {
		bad("error-rate: must be a fraction in [0, 1], got %v", c.ErrorRate)
	}
	if c.H2C && c.TLS {
		bad("h2c: cannot be combined with tls (TLS negotiates HTTP/2 through ALPN)")
	}
	if c.ArrivalWindow < 0 {
		bad("arrival-window: must be >= 0, got %s", c.ArrivalWindow)
	}
	return errors.Join(errs...)
}
