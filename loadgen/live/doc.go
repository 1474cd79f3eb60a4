// Package live is the Prometheus view of a load while it runs, on every
// path that generates one (a local run, a drill, capacity find and verify,
// an agent, a coordinator over agents): Metrics is fed with the run's
// closed 1-second intervals (loadgen.Interval, merged over agents), a
// drill's stage and its guard rules' states; Serve exposes it at /metrics
// (text, OpenMetrics, or protobuf with native histograms, as the scraper
// negotiates), and Pusher sends it to a Prometheus remote-write receiver,
// batched, retried with backoff, bounded in memory, never holding up the
// load.
//
// The metric names are a contract: README's "Live metrics" lists them, and
// docs/grafana/loadcap.json queries them.
package live
