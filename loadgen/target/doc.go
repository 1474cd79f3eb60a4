// Package target is loadcap's calibrated test target: an HTTP server of known
// capacity that load tests, benchmarks, `loadcap demo` and `loadcap target`
// send traffic to.
//
// # Model
//
// The server is an M/D/c queue: Config.Workers servers, each busy for
// Config.ServiceTime per request (Dist "exp": exponentially distributed with
// that mean, i.e. M/M/c). A request that finds every worker busy waits in a
// FIFO queue bounded by Config.MaxQueue; when the queue is full it is answered
// 503 at once. Workers 0 means unlimited concurrency: every request gets its
// own service time. ServiceTime 0 answers at once.
//
// # What capacity to expect
//
// Under saturation the pool completes Workers/ServiceTime requests per
// second (Config.CapacityPerSec), within about 1%, at any service time from
// 1 ms up, as long as the process gets CPU. Two mechanisms make that true:
//
//   - Service waits are timed by a precise sleeper (nanosleep on a helper
//     goroutine in the last 2 ms before a deadline) instead of Go timers,
//     which on an idle Linux process round up to the next whole millisecond.
//     A request that does not queue therefore takes ServiceTime plus
//     ~0.05-0.15 ms of timer and scheduling overshoot, not ServiceTime rounded
//     up to the next millisecond. The helper costs a few percent of one core
//     while service waits are pending and nothing otherwise.
//   - Each worker keeps an ideal timeline: a queued request starts service at
//     the moment the previous one ideally ended, not when its (slightly late)
//     goroutine woke up, so overshoot does not accumulate into lost capacity.
//     Catch-up is bounded by the longer of ServiceTime and 10 ms, so a long
//     process pause loses capacity instead of releasing a burst.
//
// The target's own bookkeeping costs ~0.3 µs and no allocation per request;
// loopback HTTP costs ~30 µs of CPU per request for client and server
// together (BenchmarkLoopback), so with ServiceTime 0 the target serves tens
// of thousands of requests per second per core. A configured capacity near
// that figure is limited by the CPU, not the pool, and so is any capacity
// when the machine is overloaded: the ideal timeline absorbs scheduling
// delays of up to max(ServiceTime, 10 ms), no more.
//
// # Paths
//
//	any path        200 "ok\n" after service
//	/sleep?ms=N     200 "ok\n" after service plus N ms outside the worker pool
//	/status/CODE    CODE (200-599) after service
//	/bytes/N        N bytes of body after service
//	/stats          JSON Stats (?reset=1 resets after reading, ?arrivals=10ms
//	                adds arrivals per bucket); not counted, never stalled
//	/metrics        Prometheus text format; not counted, never stalled
//
// # Fault modes
//
// StallEvery/StallFor: during [k*StallEvery, k*StallEvery+StallFor) since
// Start the whole server stops answering: arriving requests are held, no
// service starts, no response is written until the window ends. ResetEvery N:
// every Nth request since Start or Reset has its TCP connection reset (RST,
// no response). ErrorRate p: a seeded, deterministic fraction p of requests
// (decided by arrival index) is answered 500 after service.
package target
