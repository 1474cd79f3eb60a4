package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/loadcap/loadcap/test/testkit"
)

// coordinatorTLS is a coordinator's client TLS config from a certificate
// set, trusting the agents of trust.
func coordinatorTLS(t *testing.T, own, trust testCerts) *tls.Config {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(own.path(CoordinatorCertFile), own.path(CoordinatorKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(mustRead(t, trust.path(CAFile)))
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: "127.0.0.1", NextProtos: []string{"h2"}}
}

// writeUntilFails writes to conn up to tries times, pause apart, as a
// coordinator's gRPC writes its preface and settings; it returns the
// writes' errors, stopping at the first that fails.
func writeUntilFails(conn net.Conn, tries int, pause time.Duration) []error {
	var errs []error
	for range tries {
		_, err := conn.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
		errs = append(errs, err)
		if err != nil {
			break
		}
		time.Sleep(pause)
	}
	return errs
}

// An agent that rejects the coordinator's certificate keeps reading until
// the coordinator has read why: a coordinator slow to write (a loaded
// machine) sees its writes succeed and then the alert, not "broken pipe"
// (which gRPC retries with backoff, 5 s and more before the real reason).
func TestAgentLingersAfterRejecting(t *testing.T) {
	certs, other := newCerts(t), newCerts(t)
	var log testkit.SyncBuffer
	cfg := certs.agentConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(&log, nil))
	addr := localAgent(t, cfg)
	conn, err := tls.Dial("tcp", addr, coordinatorTLS(t, other, certs))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The agent logs the rejection after sending its alert; closed at
	// once, its socket would then answer the writes with a reset.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(log.String(), "certificate rejected"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the agent logged no rejection:\n%s", log.String())
		}
	}
	for i, err := range writeUntilFails(conn, 3, 50*time.Millisecond) {
		if err != nil {
			t.Errorf("write %d: %v, want it to succeed while the agent lingers", i+1, err)
		}
	}
	_, read := conn.Read(make([]byte, 64))
	if !certRejected(read) || !strings.Contains(read.Error(), "unknown certificate authority") {
		t.Errorf("read: %v, want the agent's alert", read)
	}
}

// Against a peer that closes at once after its alert (an older agent), the
// coordinator's first failed write reads the alert behind it and reports
// the rejection.
func TestFailedWriteReadsTheAlert(t *testing.T) {
	certs, other := newCerts(t), newCerts(t)
	srvCert, err := tls.LoadX509KeyPair(certs.path(AgentCertFile), certs.path(AgentKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(mustRead(t, certs.path(CAFile)))
	lis, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		c, err := lis.Accept()
		if err != nil {
			return
		}
		c.(*tls.Conn).Handshake() // fails: sends the alert
		c.Close()
	}()
	raw, err := tls.Dial("tcp", lis.Addr().String(), coordinatorTLS(t, other, certs))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	w := newRejectionWatch(nil)
	conn := &alertConn{Conn: raw, r: w.rejection}
	<-closed
	// The first write after the close draws a reset, a later one fails.
	writes := writeUntilFails(conn, 50, 20*time.Millisecond)
	if writes[len(writes)-1] == nil {
		t.Fatal("every write succeeded: the peer's close drew no reset, so this tests nothing")
	}
	select {
	case <-w.Rejected():
	default:
		t.Fatalf("no rejection noted; writes: %v", writes)
	}
	if !strings.Contains(w.Err().Error(), "unknown certificate authority") {
		t.Errorf("rejection: %v, want the alert's reason", w.Err())
	}
}
