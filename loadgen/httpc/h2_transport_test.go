package httpc

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// shopHandler is an HTTP/2-only target: /status/N answers N with a short
// body, /bytes/N answers N bytes, /echo answers the request body with the
// method in X-Method, /check answers 200 only when the request's method,
// path, query, Host and headers arrived as sent.
func shopHandler(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor != 2 {
		w.WriteHeader(http.StatusHTTPVersionNotSupported)
		return
	}
	switch p := r.URL.Path; {
	case strings.HasPrefix(p, "/status/"):
		code, _ := strconv.Atoi(p[len("/status/"):])
		w.WriteHeader(code)
		if code != http.StatusNoContent && code != http.StatusNotModified {
			io.WriteString(w, "status body")
		}
	case strings.HasPrefix(p, "/bytes/"):
		n, _ := strconv.Atoi(p[len("/bytes/"):])
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.Write(bytes.Repeat([]byte("b"), n))
	case p == "/echo":
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Method", r.Method)
		w.Write(body)
	case p == "/check":
		if r.Method != "PUT" || r.URL.RawQuery != "a=1&b=2" || r.Host != "shop.test" ||
			r.Header.Get("User-Agent") != "probe/1" || r.Header.Get("X-Trace") != "t-9" ||
			r.Header.Get("Connection") != "" || r.ContentLength != 0 {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, "%s %s host %q headers %v length %d", r.Method, r.URL, r.Host, r.Header, r.ContentLength)
		}
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// netHTTPReceived is the response size the old net/http path reported for
// req: status line, header lines and body, as HTTP/1.1 would send them.
func netHTTPReceived(t *testing.T, https bool, req *Request) int64 {
	t.Helper()
	var p http.Protocols
	p.SetHTTP2(true)
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p, TLSClientConfig: insecure()}
	defer tr.CloseIdleConnections()
	scheme := "http://"
	if https {
		scheme = "https://"
	}
	hr, err := http.NewRequest(req.Method, scheme+req.Host+string(req.Target), bytes.NewReader(req.Body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tr.RoundTrip(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n, _ := io.Copy(io.Discard, resp.Body)
	var h int64
	for k, vs := range resp.Header {
		for _, v := range vs {
			h += int64(len(k) + 2 + len(v) + 2)
		}
	}
	return int64(len("HTTP/2.0 000 \r\n")+len(http.StatusText(resp.StatusCode))) + h + 2 + n
}

func TestH2Responses(t *testing.T) {
	tlsSrv := httptest.NewUnstartedServer(http.HandlerFunc(shopHandler))
	tlsSrv.EnableHTTP2 = true
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	h2c := h2cServer(t, http.HandlerFunc(shopHandler))
	servers := []struct {
		name  string
		https bool
		addr  string
	}{
		{"h2c", false, h2c.Listener.Addr().String()},
		{"TLS with ALPN h2", true, tlsSrv.Listener.Addr().String()},
	}
	tests := []struct {
		name   string
		method string
		target string
		body   string
		want   int
	}{
		{name: "200 with a body", method: "GET", target: "/bytes/1234", want: 200},
		{name: "empty 200", method: "GET", target: "/bytes/0", want: 200},
		{name: "204", method: "DELETE", target: "/status/204", want: 204},
		{name: "404", method: "GET", target: "/nowhere?x=1", want: 404},
		{name: "500", method: "POST", target: "/status/500", want: 500},
		{name: "POST echo", method: "POST", target: "/echo", body: `{"sku":"S-1"}`, want: 200},
		{name: "PATCH echo", method: "PATCH", target: "/echo", body: "patch", want: 200},
		{name: "HEAD", method: "HEAD", target: "/bytes/99", want: 200},
	}
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			scheme := "http"
			if srv.https {
				scheme = "https"
			}
			skipTLSViaPoller(t, srv.https)
			tr := NewTransport(Options{HTTP2: true, TLSConfig: insecure(), Timeout: 5 * time.Second})
			defer tr.Close()
			c := newTestClient(tr)
			defer c.Close()
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					req := &Request{Method: tt.method, Scheme: scheme, Host: srv.addr, Target: []byte(tt.target)}
					if tt.body != "" {
						req.Body = []byte(tt.body)
					}
					var res Result
					c.Do(req, &res)
					if res.Status != tt.want || res.Class != ClassNone {
						t.Fatalf("status %d class %q err %v, want %d", res.Status, res.Class, res.Err, tt.want)
					}
					if want := netHTTPReceived(t, srv.https, req); res.BytesReceived != want {
						t.Errorf("BytesReceived %d, net/http's HTTP/1.1-equivalent size %d", res.BytesReceived, want)
					}
				})
			}
			t.Run("request as sent", func(t *testing.T) {
				req := &Request{Method: "PUT", Scheme: scheme, Host: srv.addr, Target: []byte("/check?a=1&b=2"),
					Header: []Header{{"Host", []byte("shop.test")}, {"user-agent", []byte("probe/1")},
						{"X-Trace", []byte("t-9")}, {"Connection", []byte("keep-alive")}, {"Content-Length", []byte("99")}}}
				var res Result
				c.Do(req, &res)
				if res.Status != 200 {
					t.Fatalf("status %d class %q err %v", res.Status, res.Class, res.Err)
				}
				// As net/http's path counted it: request line, Host,
				// the headers given (Content-Length dropped), blank line.
				want := len("PUT /check?a=1&b=2 HTTP/1.1\r\nHost: shop.test\r\nuser-agent: probe/1\r\nX-Trace: t-9\r\nConnection: keep-alive\r\n\r\n")
				if res.BytesSent != int64(want) {
					t.Errorf("BytesSent %d, want %d", res.BytesSent, want)
				}
			})
		})
	}
}

func TestH2LargeBodies(t *testing.T) {
	// Both bodies are well above the initial windows (64 KB for the
	// server's streams, 4 MB for ours), so both sides must return credit.
	const reqSize, respSize = 3<<20 + 17, 9<<20 + 5
	body := make([]byte, reqSize)
	for i := range body {
		body[i] = byte(i * 7)
	}
	want := sha256.Sum256(body)
	srv := h2cServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ := io.ReadAll(r.Body)
		if sha256.Sum256(got) != want {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(respSize))
		w.Write(bytes.Repeat([]byte("r"), respSize))
	}))
	tr := NewTransport(Options{HTTP2: true, Timeout: 20 * time.Second})
	defer tr.Close()
	var wg sync.WaitGroup
	for i := range 3 { // concurrent streams share the connection window
		wg.Go(func() {
			c := newTestClient(tr)
			defer c.Close()
			var res Result
			c.Do(&Request{Method: "POST", Host: srv.Listener.Addr().String(), Target: []byte("/upload"), Body: body}, &res)
			if res.Status != 200 || res.Class != ClassNone {
				t.Errorf("client %d: status %d class %q err %v", i, res.Status, res.Class, res.Err)
			}
			if res.BytesReceived < respSize || res.BytesSent < reqSize {
				t.Errorf("client %d: sent %d received %d, want the bodies' sizes at least", i, res.BytesSent, res.BytesReceived)
			}
		})
	}
	wg.Wait()
}

// countConns counts the server's connections.
func countConns(srv *httptest.Server) *atomic.Int64 {
	var n atomic.Int64
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			n.Add(1)
		}
	}
	return &n
}

func TestH2MoreClientsThanMaxConcurrentStreams(t *testing.T) {
	const maxStreams, clients, each = 3, 24, 3
	var inFlight, peak atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(10 * time.Millisecond)
	}))
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	srv.Config.Protocols = &p
	srv.Config.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: maxStreams}
	conns := countConns(srv)
	srv.Start()
	defer srv.Close()

	tr := NewTransport(Options{HTTP2: true, Timeout: 20 * time.Second})
	defer tr.Close()
	var wg sync.WaitGroup
	var ok atomic.Int64
	for range clients {
		wg.Go(func() {
			c := newTestClient(tr)
			defer c.Close()
			for range each {
				var res Result
				c.Do(&Request{Host: srv.Listener.Addr().String(), Target: []byte("/")}, &res)
				if res.Status != 200 {
					t.Errorf("status %d class %q err %v", res.Status, res.Class, res.Err)
					return
				}
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	if ok.Load() != clients*each {
		t.Errorf("%d requests answered, want %d", ok.Load(), clients*each)
	}
	if peak.Load() > maxStreams {
		t.Errorf("the server saw %d concurrent requests, above its MAX_CONCURRENT_STREAMS %d", peak.Load(), maxStreams)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections, want the clients multiplexed on 1", n)
	}
}

func TestH2GoAwayRetriesUnprocessedRequests(t *testing.T) {
	// The server answers 5 streams per connection, then sends GOAWAY
	// naming the last one: requests it did not process go once more on a
	// new connection and succeed.
	srv := newRawH2(t, rawH2Options{goAwayAfter: 5})
	tr := NewTransport(Options{HTTP2: true, Timeout: 10 * time.Second})
	defer tr.Close()
	const clients, each = 8, 10
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			c := newTestClient(tr)
			defer c.Close()
			for range each {
				var res Result
				c.Do(&Request{Host: srv.addr, Target: []byte("/")}, &res)
				if res.Status != 200 {
					t.Errorf("status %d class %q err %v", res.Status, res.Class, res.Err)
				}
			}
		})
	}
	wg.Wait()
	if got := srv.answered.Load(); got != clients*each {
		t.Errorf("server answered %d requests, want %d", got, clients*each)
	}
	if n := srv.conns.Load(); n < clients*each/5 {
		t.Errorf("%d connections, want at least %d (one per GOAWAY)", n, clients*each/5)
	}
}

func TestH2ServerDiesMidRun(t *testing.T) {
	t.Run("connection closed under a request", func(t *testing.T) {
		// The server drops every connection when its 3rd request arrives.
		srv := newRawH2(t, rawH2Options{dieAfter: 3})
		tr := NewTransport(Options{HTTP2: true, Timeout: 5 * time.Second})
		defer tr.Close()
		c := newTestClient(tr)
		defer c.Close()
		want := []struct {
			status int
			class  Class
			reused bool
		}{{200, ClassNone, false}, {200, ClassNone, true}, {0, ClassReset, false}, {200, ClassNone, false}, {200, ClassNone, true}}
		for i, w := range want {
			var res Result
			c.Do(&Request{Host: srv.addr, Target: []byte("/")}, &res)
			if res.Status != w.status || res.Class != w.class || res.Reused != w.reused {
				t.Errorf("request %d: status %d class %q reused %v (err %v), want %d %q %v",
					i+1, res.Status, res.Class, res.Reused, res.Err, w.status, w.class, w.reused)
			}
		}
		if n := srv.conns.Load(); n != 2 {
			t.Errorf("%d connections, want 2", n)
		}
	})
	t.Run("requests in flight", func(t *testing.T) {
		release := make(chan struct{})
		var arrived atomic.Int64
		srv := h2cServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/hold" {
				arrived.Add(1)
				select {
				case <-release:
				case <-r.Context().Done():
				}
			}
		}))
		defer close(release)
		tr := NewTransport(Options{HTTP2: true, Timeout: 10 * time.Second})
		defer tr.Close()
		const n = 6
		results := make([]Result, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				c := newTestClient(tr)
				defer c.Close()
				c.Do(&Request{Host: srv.Listener.Addr().String(), Target: []byte("/hold")}, &results[i])
			})
		}
		for deadline := time.Now().Add(5 * time.Second); arrived.Load() < n && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		srv.CloseClientConnections()
		wg.Wait()
		for i, res := range results {
			if res.Class != ClassReset || res.Status != 0 {
				t.Errorf("request %d: status %d class %q err %v, want reset", i, res.Status, res.Class, res.Err)
			}
		}
		c := newTestClient(tr)
		defer c.Close()
		var res Result
		c.Do(&Request{Host: srv.Listener.Addr().String(), Target: []byte("/")}, &res)
		if res.Status != 200 {
			t.Errorf("after the server dropped the connection: status %d class %q err %v", res.Status, res.Class, res.Err)
		}
	})
}

// slowH2Server serves h2c: /slow answers after 10 s (or the request's
// end), anything else at once. It returns the address.
func slowH2Server(t *testing.T) string {
	srv := h2cServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		}
	}))
	return srv.Listener.Addr().String()
}

func TestH2Timeout(t *testing.T) {
	addr := slowH2Server(t)
	tr := NewTransport(Options{HTTP2: true, Timeout: 200 * time.Millisecond})
	defer tr.Close()
	c := newTestClient(tr)

	var res Result
	c.Do(&Request{Host: addr, Target: []byte("/fast")}, &res)
	if res.Status != 200 {
		t.Fatalf("status %d class %q err %v", res.Status, res.Class, res.Err)
	}
	start := time.Now()
	c.Do(&Request{Host: addr, Target: []byte("/slow")}, &res)
	if res.Class != ClassTimeout || time.Since(start) > 5*time.Second {
		t.Errorf("slow request: class %q err %v after %v, want a timeout after 200ms", res.Class, res.Err, time.Since(start))
	}
	// The timeout reset one stream; the connection goes on.
	c.Do(&Request{Host: addr, Target: []byte("/fast")}, &res)
	if res.Status != 200 || !res.Reused {
		t.Errorf("after a timeout: status %d reused %v class %q err %v, want 200 on the same connection", res.Status, res.Reused, res.Class, res.Err)
	}
	c.Close()
}

func TestH2Close(t *testing.T) {
	addr := slowH2Server(t)

	// Close aborts a request in flight; later requests fail at once.
	tr2 := NewTransport(Options{HTTP2: true, Timeout: 10 * time.Second})
	defer tr2.Close()
	c2 := tr2.NewClient()
	done := make(chan struct{})
	go func() {
		defer close(done)
		var res Result
		c2.Do(&Request{Host: addr, Target: []byte("/slow")}, &res)
		if res.Err != ErrClosed || res.Class != ClassOther {
			t.Errorf("aborted request: class %q err %v, want ErrClosed", res.Class, res.Err)
		}
	}()
	time.Sleep(100 * time.Millisecond)
	c2.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not abort the request in flight")
	}
	var res Result
	c2.Do(&Request{Host: addr, Target: []byte("/fast")}, &res)
	if res.Err != ErrClosed {
		t.Errorf("after Close: err %v, want ErrClosed", res.Err)
	}
	tr := NewTransport(Options{HTTP2: true, Timeout: 5 * time.Second})
	c := tr.NewClient()
	if c.Do(&Request{Host: addr, Target: []byte("/fast")}, &res); res.Status != 200 {
		t.Fatalf("status %d class %q err %v", res.Status, res.Class, res.Err)
	}
	c.Close()
	tr.Close()
	c3 := tr.NewClient()
	c3.Do(&Request{Host: addr, Target: []byte("/fast")}, &res)
	if res.Err != ErrClosed {
		t.Errorf("after Transport.Close: err %v, want ErrClosed", res.Err)
	}
}

func TestH2DisableKeepAlive(t *testing.T) {
	srv := newRawH2(t, rawH2Options{})
	tr := NewTransport(Options{HTTP2: true, DisableKeepAlive: true, Timeout: 5 * time.Second})
	defer tr.Close()
	c := tr.NewClient()
	defer c.Close()
	for i := range 3 {
		var res Result
		c.Do(&Request{Host: srv.addr, Target: []byte("/")}, &res)
		if res.Status != 200 || res.Reused {
			t.Errorf("request %d: status %d reused %v class %q err %v", i, res.Status, res.Reused, res.Class, res.Err)
		}
	}
	if n := srv.conns.Load(); n != 3 {
		t.Errorf("%d connections, want one per request", n)
	}
}

// A request waiting for a stream (the server's MAX_CONCURRENT_STREAMS is
// taken) times out from its own start, and the connection goes on.
func TestH2TimeoutWaitingForStream(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	}))
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	srv.Config.Protocols = &p
	srv.Config.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: 1}
	srv.Start()
	defer srv.Close()
	defer close(release)
	addr := srv.Listener.Addr().String()
	tr := NewTransport(Options{HTTP2: true, Timeout: 300 * time.Millisecond})
	defer tr.Close()
	holder, waiter := newTestClient(tr), newTestClient(tr)
	defer holder.Close()
	defer waiter.Close()
	held := make(chan Result, 1)
	go func() {
		var res Result
		holder.Do(&Request{Host: addr, Target: []byte("/hold")}, &res)
		held <- res
	}()
	time.Sleep(100 * time.Millisecond) // the holder has the one stream
	// The waiter's timeout runs from 150 ms ago: it ends while the holder
	// still has the stream.
	var res Result
	start := time.Now()
	waiter.Do(&Request{Host: addr, Target: []byte("/fast"), Now: start.Add(-150 * time.Millisecond)}, &res)
	if res.Class != ClassTimeout || time.Since(start) > 2*time.Second {
		t.Errorf("waiting request: class %q err %v after %v, want a timeout near 150 ms", res.Class, res.Err, time.Since(start))
	}
	if r := <-held; r.Class != ClassTimeout {
		t.Errorf("holding request: class %q err %v, want a timeout", r.Class, r.Err)
	}
	waiter.Do(&Request{Host: addr, Target: []byte("/fast")}, &res)
	if res.Status != 200 || !res.Reused {
		t.Errorf("after the timeouts: status %d reused %v class %q err %v, want 200 on the same connection", res.Status, res.Reused, res.Class, res.Err)
	}
}

// A server that accepts the connection and never answers the preface
// fails the request as a timeout.
func TestH2SilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	tr := NewTransport(Options{HTTP2: true, Timeout: 300 * time.Millisecond})
	defer tr.Close()
	c := newTestClient(tr)
	defer c.Close()
	var res Result
	start := time.Now()
	c.Do(&Request{Host: ln.Addr().String(), Target: []byte("/")}, &res)
	if res.Class != ClassTimeout || time.Since(start) > 2*time.Second {
		t.Errorf("class %q err %v after %v, want a timeout near 300 ms", res.Class, res.Err, time.Since(start))
	}
}

// A connection the server went away from closes once its last stream
// has ended, even when that stream ends by its timeout.
func TestH2GoAwayThenTimeoutClosesTheConnection(t *testing.T) {
	srv := newRawH2(t, rawH2Options{holdAfter: 2})
	tr := NewTransport(Options{HTTP2: true, Timeout: 200 * time.Millisecond})
	defer tr.Close()
	c := newTestClient(tr)
	defer c.Close()
	var res Result
	if c.Do(&Request{Host: srv.addr, Target: []byte("/")}, &res); res.Status != 200 {
		t.Fatalf("first request: status %d class %q err %v", res.Status, res.Class, res.Err)
	}
	if c.Do(&Request{Host: srv.addr, Target: []byte("/")}, &res); res.Class != ClassTimeout {
		t.Fatalf("held request: class %q err %v, want a timeout", res.Class, res.Err)
	}
	for deadline := time.Now().Add(3 * time.Second); srv.ended.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if srv.ended.Load() != 1 {
		t.Error("the connection stayed open after its last stream ended")
	}
}
