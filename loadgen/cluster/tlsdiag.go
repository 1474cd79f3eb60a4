package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/credentials"
)

// A certificate one side rejects must be said at once on both sides: gRPC
// alone retries a failed handshake until the prepare timeout, and in TLS
// 1.3 the coordinator learns that the agent refused its certificate only
// from the alert that follows the handshake ("broken pipe" 30 s later).

// certRejected reports whether err is a TLS failure over a certificate:
// this side's verification of the peer's, or the peer's alert about ours.
func certRejected(err error) bool {
	if err == nil {
		return false
	}
	var (
		verify    *tls.CertificateVerificationError
		authority x509.UnknownAuthorityError
		invalid   x509.CertificateInvalidError
		host      x509.HostnameError
	)
	if errors.As(err, &verify) || errors.As(err, &authority) || errors.As(err, &invalid) || errors.As(err, &host) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "certificate") && strings.Contains(s, "tls:")
}

// rejectionWatch wraps a coordinator's credentials for one agent: it
// notes the first certificate rejection seen on the connection, whether in
// the handshake (the agent's certificate) or in the alert after it (the
// coordinator's). Clones (gRPC makes them) share what they note.
type rejectionWatch struct {
	credentials.TransportCredentials
	*rejection
}

// rejection is the first certificate rejection on an agent's connection.
type rejection struct {
	once     sync.Once
	rejected chan struct{}
	err      error // set before rejected is closed
}

func newRejectionWatch(c credentials.TransportCredentials) *rejectionWatch {
	return &rejectionWatch{TransportCredentials: c, rejection: &rejection{rejected: make(chan struct{})}}
}

func (r *rejection) reject(err error) {
	r.once.Do(func() {
		r.err = err
		close(r.rejected)
	})
}

// Rejected is closed once a certificate was rejected; Err says why.
func (r *rejection) Rejected() <-chan struct{} { return r.rejected }

// Err is the rejection, once Rejected is closed; nil before.
func (r *rejection) Err() error {
	select {
	case <-r.rejected:
		return r.err
	default:
		return nil
	}
}

func (w *rejectionWatch) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := w.TransportCredentials.ClientHandshake(ctx, authority, raw)
	if err != nil {
		if certRejected(err) {
			w.reject(err)
		}
		return nil, nil, err
	}
	return &alertConn{Conn: conn, r: w.rejection}, info, nil
}

func (w *rejectionWatch) Clone() credentials.TransportCredentials {
	return &rejectionWatch{TransportCredentials: w.TransportCredentials.Clone(), rejection: w.rejection}
}

// alertConn notes a certificate alert read from the peer.
type alertConn struct {
	net.Conn
	r      *rejection
	heard  atomic.Bool // a read returned data: the peer accepted us
	probed atomic.Bool
}

func (c *alertConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.heard.Store(true)
	}
	if err != nil && certRejected(err) {
		c.r.reject(err)
	}
	return n, err
}

// alertProbe is how long a failed first write waits to read the alert
// that may explain it.
const alertProbe = 250 * time.Millisecond

// Write looks for the alert behind a write that fails before the peer said
// anything: an agent that rejects our certificate sends its alert and
// closes, and gRPC's next write (of its preface) then fails with "broken
// pipe" and is retried with backoff, unread alert and all.
func (c *alertConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil && !c.heard.Load() && c.probed.CompareAndSwap(false, true) {
		c.Conn.SetReadDeadline(time.Now().Add(alertProbe))
		if _, rerr := c.Conn.Read(make([]byte, 512)); certRejected(rerr) {
			c.r.reject(rerr)
			return n, rerr
		}
	}
	return n, err
}

// handshakeLog wraps an agent's credentials: every failed handshake is
// logged at once, as "certificate rejected" with the reason when it is
// about the coordinator's certificate.
type handshakeLog struct {
	credentials.TransportCredentials
	log *slog.Logger
}

func (h handshakeLog) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	from := raw.RemoteAddr().String()
	// The TLS credentials close raw on a failed handshake; hold that
	// close until linger has run.
	held := &heldConn{Conn: raw}
	held.hold.Store(true)
	conn, info, err := h.TransportCredentials.ServerHandshake(held)
	held.hold.Store(false)
	if err != nil {
		defer raw.Close()
	}
	switch {
	case err == nil:
	case certRejected(err):
		// by: this agent rejected the coordinator's certificate, or the
		// coordinator this agent's (its alert).
		by := "agent"
		if strings.Contains(err.Error(), "remote error") {
			by = "coordinator"
		}
		h.log.Warn("certificate rejected", "by", by, "from", from, "reason", err.Error())
		if by == "agent" {
			linger(raw, time.Second)
		}
	default:
		h.log.Warn("TLS handshake failed", "from", from, "reason", err.Error())
	}
	return conn, info, err
}

// linger closes conn's sending side and reads what the peer still sends
// until it closes (or for at most d): closed at once, the socket would
// answer the coordinator's next bytes with a reset, which fails its write
// before it has read our alert, and the coordinator would retry instead of
// saying "certificate rejected".
func linger(conn net.Conn, d time.Duration) {
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	conn.SetReadDeadline(time.Now().Add(d))
	io.Copy(io.Discard, io.LimitReader(conn, 1<<20))
}

// heldConn ignores Close while hold is set.
type heldConn struct {
	net.Conn
	hold atomic.Bool
}

func (c *heldConn) Close() error {
	if c.hold.Load() {
		return nil
	}
	return c.Conn.Close()
}

func (h handshakeLog) Clone() credentials.TransportCredentials {
	return handshakeLog{TransportCredentials: h.TransportCredentials.Clone(), log: h.log}
}
