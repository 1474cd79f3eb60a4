package loadgen

import "context"

// A Runner generates one run's load and measures it. The engine in this
// process (Engine), a coordinator of agents (cluster.Runner) and a k6
// script in a child process (k6.ScriptRunner) are Runners, so that every
// command that generates load starts, stops and accounts for a run the
// same way, whichever generates it.
//
// Contracts, for every implementation:
//   - Run generates until the workload ends, Stop or Kill is called, or ctx
//     is done (which kills). It returns what was measured even when stopped
//     early (Result.Status says so, with the cause and reason given to
//     Stop or Kill); the error is for the runner's own failures, never for
//     failed requests, which are data in the Result.
//   - Stop ends gracefully: nothing new is scheduled and what is in flight
//     gets its scenario's gracefulStop. Kill ends at once. Both may be
//     called from any goroutine, any number of times, before or during Run.
//   - A result that is missing a share of the load (an agent lost) says so
//     in Result.Lost, and its totals still balance.
type Runner interface {
	Run(ctx context.Context) (*Result, error)
	Stop(cause, reason string)
	Kill(cause, reason string)
}

var _ Runner = (*Engine)(nil)
