package httpc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
)

// ProtocolError is a malformed response: bad status line, header, chunk
// encoding or length. Its class is ClassProtocol.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return "httpc: malformed response: " + e.Msg }

// Protocol errors are preallocated so a failing server costs no garbage.
var (
	errStatusLine    = &ProtocolError{"bad status line"}
	errVersion       = &ProtocolError{"unsupported HTTP version"}
	errHeaderLine    = &ProtocolError{"bad header line"}
	errHeaderTooLong = &ProtocolError{"header too long"}
	errContentLength = &ProtocolError{"bad Content-Length"}
	errChunkSize     = &ProtocolError{"bad chunk size"}
	errChunkEnd      = &ProtocolError{"missing CRLF after chunk"}
)

// RequestError is a request the client refuses to send (bad method, target,
// header, scheme or host). Its class is ClassOther.
type RequestError struct{ Msg string }

func (e *RequestError) Error() string { return "httpc: invalid request: " + e.Msg }

var (
	errBadMethod = &RequestError{"bad method"}
	errBadTarget = &RequestError{"bad request-target"}
	errBadHeader = &RequestError{"bad header"}
	errBadScheme = &RequestError{"scheme must be http or https"}
	errBadHost   = &RequestError{"empty host"}
	errPollerTLS = &RequestError{"the poller does not do TLS: https goes through a Client"}
)

// tlsError marks a failed TLS handshake.
type tlsError struct{ err error }

func (e *tlsError) Error() string { return "tls handshake: " + e.err.Error() }
func (e *tlsError) Unwrap() error { return e.err }

// Classify returns the class of a request error: the one Do puts in
// Result.Class. nil is ClassNone.
func Classify(err error) Class {
	if err == nil {
		return ClassNone
	}
	if errors.Is(err, ErrClosed) {
		return ClassOther
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return ClassDNS // even a resolver timeout: the name did not resolve
	}
	if isTimeout(err) {
		return ClassTimeout
	}
	var pe *ProtocolError
	if errors.As(err, &pe) {
		return ClassProtocol
	}
	var te *tlsError
	if errors.As(err, &te) || isTLS(err) {
		return ClassTLS
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return ClassRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return ClassReset
	}
	return ClassOther
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isTLS reports TLS failures that reach us unwrapped (from net/http).
func isTLS(err error) bool {
	// crypto/tls reports alerts as *net.OpError with these operations.
	var op *net.OpError
	if errors.As(err, &op) && (op.Op == "remote error" || op.Op == "local error") {
		return true
	}
	var (
		rh  tls.RecordHeaderError
		al  tls.AlertError
		cv  *tls.CertificateVerificationError
		ua  x509.UnknownAuthorityError
		hn  x509.HostnameError
		ci  x509.CertificateInvalidError
		ech *tls.ECHRejectionError
	)
	return errors.As(err, &rh) || errors.As(err, &al) || errors.As(err, &cv) ||
		errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci) || errors.As(err, &ech)
}

// retryable reports whether err on a reused connection, before any response
// byte, looks like a connection the server had already closed.
func retryable(err error) bool {
	if isTimeout(err) {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNABORTED)
}
