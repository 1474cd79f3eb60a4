package target

import (
	"sync/atomic"
	"time"
)

// Stats is a snapshot of the target's counters since Start or the last
// Reset. Counters are read one by one, not under a lock, so a snapshot taken
// under load may be off by the requests that completed while it was read.
//
// Every counted request ends in exactly one of Served, Rejected, Resets or
// Canceled, or is still InFlight:
// Arrived = Served + Rejected + Resets + Canceled + InFlight (requests that
// arrived before a Reset and end after it make this approximate).
type Stats struct {
	Arrived     int64 `json:"arrived"`       // requests that reached the handler (not /stats, /metrics)
	Served      int64 `json:"served"`        // answered after service, any status (includes Errors)
	Stalled     int64 `json:"stalled"`       // requests held at least once by a stall window
	Resets      int64 `json:"resets"`        // connections reset by ResetEvery (no response)
	Errors      int64 `json:"errors"`        // 500s injected by ErrorRate
	Rejected    int64 `json:"rejected"`      // 503 at once because the queue was full
	Canceled    int64 `json:"canceled"`      // client gone or server closed before the response
	InFlight    int64 `json:"in_flight"`     // arrived and not yet answered, including queued (a gauge; Reset keeps it)
	MaxInFlight int64 `json:"max_in_flight"` // highest InFlight seen
	Queue       int64 `json:"queue"`         // requests waiting for a worker now (a gauge)

	Since        time.Time `json:"since"`                  // Start or last Reset
	FirstArrival time.Time `json:"first_arrival,omitzero"` // first counted arrival since Since
	LastServed   time.Time `json:"last_served,omitzero"`   // last Served response
}

// ServedRate is Served per second between FirstArrival and LastServed, or 0
// when that span is empty.
func (s Stats) ServedRate() float64 {
	span := s.LastServed.Sub(s.FirstArrival).Seconds()
	if s.Served == 0 || span <= 0 {
		return 0
	}
	return float64(s.Served) / span
}

// maxCode bounds the per-status counters; codes outside [0, maxCode) are
// not counted by code.
const maxCode = 600

// counters holds everything Stats and /metrics report. Hot fields are
// atomics; nothing on the request path takes a lock.
type counters struct {
	arrived, served, stalled, resets, errors, rejected, canceled atomic.Int64
	inFlight, maxInFlight, queue                                 atomic.Int64
	sinceNs, firstNs, lastNs                                     atomic.Int64 // unix ns; 0 = none

	codes    [maxCode]atomic.Int64
	latency  histogram
	arrivals atomic.Pointer[arrivalLog]
}

func (c *counters) snapshot() Stats {
	s := Stats{
		Arrived:     c.arrived.Load(),
		Served:      c.served.Load(),
		Stalled:     c.stalled.Load(),
		Resets:      c.resets.Load(),
		Errors:      c.errors.Load(),
		Rejected:    c.rejected.Load(),
		Canceled:    c.canceled.Load(),
		InFlight:    c.inFlight.Load(),
		MaxInFlight: c.maxInFlight.Load(),
		Queue:       c.queue.Load(),
		Since:       unixTime(c.sinceNs.Load()),
	}
	s.FirstArrival = unixTime(c.firstNs.Load())
	s.LastServed = unixTime(c.lastNs.Load())
	return s
}

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// reset zeroes the counters (not the InFlight and Queue gauges) and starts
// a new arrival log at now.
func (c *counters) reset(now time.Time, window time.Duration) {
	for _, a := range []*atomic.Int64{&c.arrived, &c.served, &c.stalled, &c.resets, &c.errors,
		&c.rejected, &c.canceled, &c.firstNs, &c.lastNs} {
		a.Store(0)
	}
	c.maxInFlight.Store(c.inFlight.Load())
	for i := range c.codes {
		c.codes[i].Store(0)
	}
	c.latency.reset()
	c.arrivals.Store(newArrivalLog(now, window))
	c.sinceNs.Store(now.UnixNano())
}

// arrive counts an arrival at t and returns its 1-based index since the
// last reset.
func (c *counters) arrive(t time.Time) int64 {
	n := c.arrived.Add(1)
	if c.firstNs.Load() == 0 {
		c.firstNs.CompareAndSwap(0, t.UnixNano())
	}
	c.arrivals.Load().add(t)
	in := c.inFlight.Add(1)
	for {
		m := c.maxInFlight.Load()
		if in <= m || c.maxInFlight.CompareAndSwap(m, in) {
			break
		}
	}
	return n
}

// answered records a response with status code sent at end for a request
// that arrived at start.
func (c *counters) answered(code int, start, end time.Time) {
	if code >= 0 && code < maxCode {
		c.codes[code].Add(1)
	}
	c.latency.observe(end.Sub(start))
}

// arrivalLog counts arrivals per 1 ms since origin, in lazily allocated
// one-second chunks. A Reset swaps in a new log, so writers never zero.
type arrivalLog struct {
	origin time.Time
	chunks []atomic.Pointer[arrivalChunk]
}

const chunkMs = 1000

type arrivalChunk [chunkMs]atomic.Int32

func newArrivalLog(origin time.Time, window time.Duration) *arrivalLog {
	n := int((window + time.Second - 1) / time.Second)
	return &arrivalLog{origin: origin, chunks: make([]atomic.Pointer[arrivalChunk], n)}
}

func (a *arrivalLog) add(t time.Time) {
	ms := int(t.Sub(a.origin) / time.Millisecond)
	ci := ms / chunkMs
	if ms < 0 || ci >= len(a.chunks) {
		return
	}
	ch := a.chunks[ci].Load()
	if ch == nil {
		ch = new(arrivalChunk)
		if !a.chunks[ci].CompareAndSwap(nil, ch) {
			ch = a.chunks[ci].Load()
		}
	}
	ch[ms%chunkMs].Add(1)
}

// per sums the log into buckets of bucketMs milliseconds, trailing empty
// buckets trimmed.
func (a *arrivalLog) per(bucketMs int) []int64 {
	var out []int64
	last := -1
	for ci := range a.chunks {
		ch := a.chunks[ci].Load()
		if ch == nil {
			continue
		}
		for j := range ch {
			v := ch[j].Load()
			if v == 0 {
				continue
			}
			b := (ci*chunkMs + j) / bucketMs
			for len(out) <= b {
				out = append(out, 0)
			}
			out[b] += int64(v)
			last = b
		}
	}
	return out[:last+1]
}
