package loadgen

import "crypto/tls"

// insecureTLS is the client TLS config for insecureSkipTLSVerify: a load
// test of a staging host with a self-signed certificate.
func insecureTLS() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the user asked for it in the scenario file
}
