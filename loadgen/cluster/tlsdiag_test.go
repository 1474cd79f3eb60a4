package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"testing"
	"time"
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

// lateWrites completes a TLS 1.3 handshake whose client certificate the
// server rejects, then writes three times with pauses between, as a
// loaded coordinator's gRPC writes its preface and settings; it returns
// the write errors and what a read then says.
func lateWrites(t *testing.T, conn net.Conn) (writes []error, read error) {
	t.Helper()
	for range 3 {
		time.Sleep(80 * time.Millisecond)
		_, err := conn.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
		writes = append(writes, err)
	}
	_, read = conn.Read(make([]byte, 64))
	return writes, read
}

// An agent that rejects the coordinator's certificate keeps reading until
// the coordinator has read why: a coordinator slow to write (a loaded
// machine) sees its writes succeed and then the alert, not "broken pipe"
// (which gRPC retries with backoff, 5 s and more before the real reason).
func TestAgentLingersAfterRejecting(t *testing.T) {
	certs, other := newCerts(t), newCerts(t)
	addr := localAgent(t, certs.agentConfig())
	conn, err := tls.Dial("tcp", addr, coordinatorTLS(t, other, certs))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	writes, read := lateWrites(t, conn)
	for i, err := range writes {
		if err != nil {
			t.Errorf("write %d: %v, want it to succeed while the agent lingers", i+1, err)
		}
	}
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
	go func() {
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
	writes, _ := lateWrites(t, conn)
	if writes[len(writes)-1] == nil {
		t.Fatal("every write succeeded: the peer did not close at once, so this tests nothing")
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
