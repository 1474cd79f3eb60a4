// Package israce tells a test whether it runs under the race detector.
//
// The race detector slows a program five- to tenfold, so a test that checks
// timing (a pacer's accuracy, latency percentiles against a calibrated target,
// a capacity search) would measure the detector instead of loadcap. Such a
// test still runs under -race, for the data races, and skips only its timing
// assertions when Enabled.
package israce
