// Package targettest starts the calibrated target for tests, on a free
// loopback port, closed when the test ends.
package targettest

import (
	"testing"

	"github.com/loadcap/loadcap/loadgen/target"
)

// Start serves c on 127.0.0.1 (any Listen in c is replaced) until t ends.
func Start(t testing.TB, c target.Config) *target.Server {
	t.Helper()
	c.Listen = "127.0.0.1:0"
	srv, err := target.Start(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}
