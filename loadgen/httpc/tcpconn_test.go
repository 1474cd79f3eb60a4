package httpc

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// TestTCPConnFullSendBuffer queues a request much larger than the socket
// send buffer to a server that starts reading late: the deferred write
// fills the buffer, finishes with a blocking write, and the reply is read.
func TestTCPConnFullSendBuffer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const size = 32 << 20
	got := make(chan int64, 1)
	start := make(chan struct{})
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		defer c.Close()
		c.(*net.TCPConn).SetReadBuffer(128 << 10) // no autotuning: the request cannot fit in flight
		<-start                                   // let the client's buffer fill
		n, _ := io.CopyN(io.Discard, c, size)
		got <- n
		c.Write([]byte("reply"))
	}()

	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	tc := newTCPConn(raw)
	if tc == nil {
		t.Fatal("no raw access to a TCP connection")
	}
	tc.deferring = true
	if n, err := tc.Write(bytes.Repeat([]byte("x"), size)); n != size || err != nil {
		t.Fatalf("queued %d, %v", n, err)
	}
	tc.deferring = false
	time.AfterFunc(200*time.Millisecond, func() { close(start) })
	buf := make([]byte, 16)
	n, err := io.ReadAtLeast(tc, buf, len("reply"))
	if err != nil || string(buf[:n]) != "reply" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	if tc.fullBufs == 0 {
		t.Error("the send buffer never filled: test did not cover the blocking write")
	}
	if n := <-got; n != size {
		t.Errorf("server received %d bytes, want %d", n, size)
	}
}

// TestTCPConnWriteFailure reports a queued request that cannot be written
// as the Read error, and how much of it was dropped.
func TestTCPConnWriteFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	reset := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err == nil {
			<-reset
			c.(*net.TCPConn).SetLinger(0)
			c.Close() // RST
		}
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(5 * time.Second))
	tc := newTCPConn(raw)
	close(reset)
	<-done
	time.Sleep(50 * time.Millisecond) // the RST arrives
	tc.deferring = true
	tc.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	tc.deferring = false
	_, err = tc.Read(make([]byte, 16))
	if Classify(err) != ClassReset {
		t.Fatalf("Read error %v, class %q; want reset", err, Classify(err))
	}
	if tc.dropped != len("GET / HTTP/1.1\r\n\r\n") {
		t.Errorf("dropped %d bytes, want the whole request", tc.dropped)
	}
}
