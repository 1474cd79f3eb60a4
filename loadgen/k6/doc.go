// Package k6 runs users' k6 scripts inside loadcap: same recorder, progress,
// thresholds, run.json and reports as a YAML scenario.
//
// k6 has no stable in-process API for running a script (its engine is in
// internal/), so a Runner starts a child process that runs k6's public
// go.k6.io/k6/cmd.Execute: loadcap's own executable with the hidden
// subcommand ChildCommand, whose body is Child. The child always runs with the usage report, the
// REST API and automatic extension resolution off, and adds two extensions:
//
//   - the output "loadcap", which aggregates k6's samples per second into
//     HDR histograms per scenario and request name (http_req_duration and
//     grpc_req_duration), iteration_duration per scenario, counters (requests
//     by status and error class, bytes, dropped_iterations, checks) and VUs,
//     and streams them to the parent as JSON lines over an inherited pipe;
//     at the end it adds k6's own verdict and value for every threshold of
//     the script.
//   - the JS module k6/x/loadcap (ModuleName), which returns the drill's
//     shadow tag headers; the drill id is also __ENV.LOADCAP_DRILL_ID.
//
// The parent merges the stream with a loadgen.Merger, as the coordinator of
// a distributed run merges its agents: one part, whose series appear as the
// script makes requests (the merger is rebuilt and replayed when one does).
// Signals are forwarded (SIGINT: k6 stops gracefully; a second one: at
// once) and k6's exit code is kept.
//
// # Distributed runs
//
// Archive writes a k6 archive of a script with "k6 archive" in the child.
// Agents run it with WithSegment and forward the child's frames
// (WithFrames); the coordinator feeds them to a Merge, which merges the
// parts as the collector merges one, and judges the script's thresholds on
// the merged data where loadcap measures the metric.
//
// # Latency
//
// k6 times a request from its actual send (http_req_duration: sending +
// waiting + receiving, without the wait for a connection), so Result.Latency
// and Result.Service are the same histogram: there is no intended send time
// to measure from. k6's arrival-rate executors do not queue an iteration
// that finds no free VU: they drop it and count it in dropped_iterations
// (Totals.Dropped here). A stalled server therefore shows as drops, not as
// latency; with the closed-model executors, and for the second and later
// requests of an iteration, k6 measures like any closed-loop tool
// (coordinated omission). Read k6 percentiles together with Dropped.
//
// # One executable
//
// This package imports only k6's public extension APIs (output,
// js/modules, metrics); the caller passes k6's cmd.Execute to Child, so
// only loadcap's main links k6's command line. That links k6's browser
// module, which builds only with the github.com/chromedp/cdproto k6 pins:
// loadcap's go.mod keeps that version, and its own browser test speaks the
// DevTools protocol without a CDP library.
package k6
