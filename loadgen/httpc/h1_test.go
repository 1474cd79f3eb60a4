package httpc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestH1Responses(t *testing.T) {
	long := "Set-Cookie: " + strings.Repeat("x", 20000) + "\r\n"
	tests := []struct {
		name         string
		method       string
		resp         string
		serverCloses bool // the server closes after each response
		wantStatus   int
		wantKeep     bool // the second request reuses the connection
	}{
		{name: "content-length", resp: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", wantStatus: 200, wantKeep: true},
		{name: "empty body", resp: "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", wantStatus: 201, wantKeep: true},
		{name: "chunked with extension and trailer",
			resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1A\r\n" +
				strings.Repeat("z", 26) + "\r\n0\r\nX-Trailer: t\r\n\r\n",
			wantStatus: 200, wantKeep: true},
		{name: "gzip then chunked", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", wantStatus: 200, wantKeep: true},
		{name: "HEAD has no body", method: "HEAD", resp: "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", wantStatus: 200, wantKeep: true},
		{name: "204 has no body", resp: "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n", wantStatus: 204, wantKeep: true},
		{name: "304 has no body", resp: "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n", wantStatus: 304, wantKeep: true},
		{name: "100 continue then 200", resp: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", wantStatus: 200, wantKeep: true},
		{name: "103 early hints then 201", resp: "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", wantStatus: 201, wantKeep: true},
		{name: "connection close", resp: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", serverCloses: true, wantStatus: 200},
		{name: "connection close among tokens", resp: "HTTP/1.1 200 OK\r\nConnection: Upgrade, CLOSE\r\nContent-Length: 2\r\n\r\nok", wantStatus: 200},
		{name: "HTTP/1.0 close-delimited", resp: "HTTP/1.0 200 OK\r\n\r\nbody until close", serverCloses: true, wantStatus: 200},
		{name: "HTTP/1.1 close-delimited", resp: "HTTP/1.1 500 Oops\r\n\r\nbody until close", serverCloses: true, wantStatus: 500},
		{name: "HTTP/1.0 with length closes", resp: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", wantStatus: 200},
		{name: "HTTP/1.0 keep-alive", resp: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", wantStatus: 200, wantKeep: true},
		{name: "length and chunked never reused", resp: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", wantStatus: 200},
		{name: "bare LF line ends", resp: "HTTP/1.1 404 Not Found\nContent-Length: 2\n\nno", wantStatus: 404, wantKeep: true},
		{name: "status without reason", resp: "HTTP/1.1 503\r\nContent-Length: 0\r\n\r\n", wantStatus: 503, wantKeep: true},
		{name: "header longer than buffer", resp: "HTTP/1.1 200 OK\r\n" + long + "Content-Length: 2\r\n\r\nok", wantStatus: 200, wantKeep: true},
		{name: "repeated equal lengths", resp: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", wantStatus: 200, wantKeep: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRawServer(t, serveCanned(tt.resp, tt.serverCloses))
			tr := NewTransport(Options{Timeout: 5 * time.Second})
			defer tr.Close()
			c := newTestClient(tr)
			defer c.Close()
			req := get(srv.addr, "/x")
			if tt.method != "" {
				req.Method = tt.method
			}
			for i := range 2 {
				var res Result
				c.Do(req, &res)
				if res.Class != ClassNone || res.Status != tt.wantStatus {
					t.Fatalf("request %d: status %d class %q err %v, want status %d", i, res.Status, res.Class, res.Err, tt.wantStatus)
				}
				if res.BytesReceived != int64(len(tt.resp)) {
					t.Errorf("request %d: BytesReceived %d, want %d", i, res.BytesReceived, len(tt.resp))
				}
				if i == 1 && res.Reused != tt.wantKeep {
					t.Errorf("second request Reused = %v, want %v", res.Reused, tt.wantKeep)
				}
			}
			wantConns := int64(2)
			if tt.wantKeep {
				wantConns = 1
			}
			if got := srv.conns.Load(); got != wantConns {
				t.Errorf("server saw %d connections, want %d", got, wantConns)
			}
		})
	}
}

func TestH1RequestBytes(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		req  func(addr string) *Request
		want func(addr string) string
	}{
		{
			name: "GET with defaults",
			req:  func(a string) *Request { return &Request{Scheme: "http", Host: a} },
			want: func(a string) string {
				return "GET / HTTP/1.1\r\nHost: " + a + "\r\nUser-Agent: loadcap\r\n\r\n"
			},
		},
		{
			name: "POST with body and extra headers",
			opts: Options{UserAgent: "ua/1"},
			req: func(a string) *Request {
				return &Request{Method: "POST", Scheme: "http", Host: a, Target: []byte("/p?q=1"),
					Header: []Header{{"X-A", []byte("b")}, {"Content-Length", []byte("999")}}, Body: []byte("hello")}
			},
			want: func(a string) string {
				return "POST /p?q=1 HTTP/1.1\r\nHost: " + a + "\r\nUser-Agent: ua/1\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello"
			},
		},
		{
			name: "PUT without body sends zero length",
			req:  func(a string) *Request { return &Request{Method: "PUT", Scheme: "http", Host: a, Target: []byte("/")} },
			want: func(a string) string {
				return "PUT / HTTP/1.1\r\nHost: " + a + "\r\nUser-Agent: loadcap\r\nContent-Length: 0\r\n\r\n"
			},
		},
		{
			name: "caller's Host and User-Agent win",
			req: func(a string) *Request {
				return &Request{Scheme: "http", Host: a, Target: []byte("/"),
					Header: []Header{{"host", []byte("shop.example")}, {"User-Agent", []byte("me")}}}
			},
			want: func(a string) string {
				return "GET / HTTP/1.1\r\nhost: shop.example\r\nUser-Agent: me\r\n\r\n"
			},
		},
		{
			name: "keep-alive disabled",
			opts: Options{DisableKeepAlive: true},
			req:  func(a string) *Request { return get(a, "/k") },
			want: func(a string) string {
				return "GET /k HTTP/1.1\r\nHost: " + a + "\r\nUser-Agent: loadcap\r\nConnection: close\r\n\r\n"
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := make(chan string, 1)
			srv := newRawServer(t, func(c net.Conn, br *bufio.Reader) {
				var buf bytes.Buffer
				tee := bufio.NewReader(io.TeeReader(br, &buf))
				if _, err := readRequest(tee); err != nil {
					return
				}
				got <- buf.String()
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
			})
			tr := NewTransport(tt.opts)
			defer tr.Close()
			c := newTestClient(tr)
			defer c.Close()
			var res Result
			c.Do(tt.req(srv.addr), &res)
			if res.Class != ClassNone {
				t.Fatalf("class %q err %v", res.Class, res.Err)
			}
			want := tt.want(srv.addr)
			if g := <-got; g != want {
				t.Errorf("server received\n%q\nwant\n%q", g, want)
			}
			if res.BytesSent != int64(len(want)) {
				t.Errorf("BytesSent %d, want %d", res.BytesSent, len(want))
			}
		})
	}
}

func TestHostHeader(t *testing.T) {
	tests := []struct {
		name  string
		https bool
		host  string
		want  string
	}{
		{name: "http default port", host: "shop.test:80", want: "shop.test"},
		{name: "http other port", host: "shop.test:8080", want: "shop.test:8080"},
		{name: "https default port", https: true, host: "shop.test:443", want: "shop.test"},
		{name: "https port 80 kept", https: true, host: "shop.test:80", want: "shop.test:80"},
		{name: "ipv6", host: "[::1]:80", want: "[::1]"},
		{name: "no port", host: "shop.test", want: "shop.test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hostHeader(tt.https, tt.host); got != tt.want {
				t.Errorf("hostHeader(%v, %q) = %q, want %q", tt.https, tt.host, got, tt.want)
			}
		})
	}
}

func TestH1PostEcho(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("User-Agent") != "loadcap" || r.Header.Get("X-Id") != "7" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.Write(body)
	}))
	defer srv.Close()
	tr := NewTransport(Options{})
	defer tr.Close()
	c := newTestClient(tr)
	defer c.Close()

	for _, size := range []int{0, 1, 1000, 70 << 10, 3 << 20} { // inline and separate body writes
		body := bytes.Repeat([]byte("b"), size)
		req := &Request{Method: "POST", Scheme: "http", Host: srv.Listener.Addr().String(), Target: []byte("/echo"),
			Header: []Header{{"X-Id", []byte("7")}}, Body: body}
		var res Result
		c.Do(req, &res)
		if res.Status != 200 || res.Class != ClassNone {
			t.Fatalf("size %d: status %d class %q err %v", size, res.Status, res.Class, res.Err)
		}
		if res.BytesSent < int64(size) || res.BytesReceived < int64(size) {
			t.Errorf("size %d: sent %d received %d bytes, want both >= body", size, res.BytesSent, res.BytesReceived)
		}
	}
}

func TestH1LargeBodies(t *testing.T) {
	const size = 5<<20 + 123
	payload := bytes.Repeat([]byte("0123456789abcdef"), size/16+1)[:size]
	chunked := func() string {
		var b strings.Builder
		b.WriteString("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
		for off, n := 0, 1; off < size; n = n*3 + 7 {
			k := min(n, size-off, 300000)
			fmt.Fprintf(&b, "%x\r\n", k)
			b.Write(payload[off : off+k])
			b.WriteString("\r\n")
			off += k
		}
		b.WriteString("0\r\n\r\n")
		return b.String()
	}()
	tests := []struct {
		name  string
		resp  string
		close bool
	}{
		{name: "content-length", resp: fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", size, payload)},
		{name: "chunked", resp: chunked},
		{name: "close-delimited", resp: "HTTP/1.1 200 OK\r\n\r\n" + string(payload), close: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRawServer(t, serveCanned(tt.resp, tt.close))
			tr := NewTransport(Options{Timeout: 10 * time.Second})
			defer tr.Close()
			c := newTestClient(tr)
			defer c.Close()
			for range 2 {
				var res Result
				c.Do(get(srv.addr, "/big"), &res)
				if res.Status != 200 || res.Class != ClassNone {
					t.Fatalf("status %d class %q err %v", res.Status, res.Class, res.Err)
				}
				if res.BytesReceived != int64(len(tt.resp)) {
					t.Errorf("BytesReceived %d, want %d", res.BytesReceived, len(tt.resp))
				}
			}
		})
	}
}

func TestH1KeepAlive(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	tests := []struct {
		name      string
		opts      Options
		wantConns int64
	}{
		{name: "keep-alive", wantConns: 1},
		{name: "disabled", opts: Options{DisableKeepAlive: true}, wantConns: 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conns.Store(0)
			tr := NewTransport(tt.opts)
			defer tr.Close()
			c := newTestClient(tr)
			defer c.Close()
			for i := range 50 {
				var res Result
				c.Do(get(addr, "/"), &res)
				if res.Status != 200 {
					t.Fatalf("request %d: status %d class %q err %v", i, res.Status, res.Class, res.Err)
				}
				if want := i > 0 && tt.wantConns == 1; res.Reused != want {
					t.Fatalf("request %d: Reused %v, want %v", i, res.Reused, want)
				}
			}
			if got := conns.Load(); got != tt.wantConns {
				t.Errorf("server saw %d connections, want %d", got, tt.wantConns)
			}
		})
	}
}

func TestH1ConnectionPerHost(t *testing.T) {
	a := newRawServer(t, serveCanned("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na", false))
	b := newRawServer(t, serveCanned("HTTP/1.1 202 OK\r\nContent-Length: 1\r\n\r\nb", false))
	tr := NewTransport(Options{})
	defer tr.Close()
	c := tr.NewClient()
	defer c.Close()
	for i := range 10 {
		var res Result
		srv, want := a, 200
		if i%2 == 1 {
			srv, want = b, 202
		}
		c.Do(get(srv.addr, "/"), &res)
		if res.Status != want {
			t.Fatalf("request %d: status %d (class %q), want %d", i, res.Status, res.Class, want)
		}
	}
	if a.conns.Load() != 1 || b.conns.Load() != 1 {
		t.Errorf("connections: a %d, b %d; want 1 each", a.conns.Load(), b.conns.Load())
	}
}

func TestH1Errors(t *testing.T) {
	refusedAddr := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}()
	canned := func(resp string) func(t *testing.T) string {
		return func(t *testing.T) string { return newRawServer(t, serveCanned(resp, true)).addr }
	}
	plain := quietServer(t, false, false)
	selfSigned := quietServer(t, true, false)

	tests := []struct {
		name   string
		scheme string
		addr   func(t *testing.T) string
		req    func(r *Request)
		want   Class
	}{
		{name: "closed port", addr: func(*testing.T) string { return refusedAddr }, want: ClassRefused},
		{name: "unresolvable name", addr: func(*testing.T) string { return "nonexistent.invalid:80" }, want: ClassDNS},
		{name: "reset", want: ClassReset, addr: func(t *testing.T) string {
			return newRawServer(t, func(c net.Conn, br *bufio.Reader) {
				readRequest(br)
				c.(*net.TCPConn).SetLinger(0)
			}).addr
		}},
		{name: "closed without answer", want: ClassReset, addr: func(t *testing.T) string {
			return newRawServer(t, func(c net.Conn, br *bufio.Reader) { readRequest(br) }).addr
		}},
		{name: "body cut short", want: ClassReset, addr: canned("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")},
		{name: "headers cut short", want: ClassReset, addr: canned("HTTP/1.1 200 OK\r\nContent-Len")},
		{name: "chunked body cut short", want: ClassReset, addr: canned("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc")},
		{name: "garbage", want: ClassProtocol, addr: canned("SSH-2.0-OpenSSH_9.6\r\n\r\n")},
		{name: "HTTP/2 status line", want: ClassProtocol, addr: canned("HTTP/2 200\r\n\r\n")},
		{name: "bad status code", want: ClassProtocol, addr: canned("HTTP/1.1 2x0 OK\r\n\r\n")},
		{name: "header without colon", want: ClassProtocol, addr: canned("HTTP/1.1 200 OK\r\nnonsense\r\n\r\n")},
		{name: "bad content-length", want: ClassProtocol, addr: canned("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n")},
		{name: "conflicting content-lengths", want: ClassProtocol, addr: canned("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc")},
		{name: "bad chunk size", want: ClassProtocol, addr: canned("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")},
		{name: "chunk without CRLF", want: ClassProtocol, addr: canned("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX0\r\n\r\n")},
		{name: "status line longer than buffer", want: ClassProtocol, addr: canned("HTTP/1.1 200 " + strings.Repeat("A", readBufSize) + "\r\n\r\n")},
		{name: "never answers", want: ClassTimeout, addr: func(t *testing.T) string {
			return newRawServer(t, func(c net.Conn, br *bufio.Reader) { readRequest(br); io.Copy(io.Discard, br) }).addr
		}},
		{name: "answers too slowly", want: ClassTimeout, addr: func(t *testing.T) string {
			return newRawServer(t, func(c net.Conn, br *bufio.Reader) {
				readRequest(br)
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
				io.Copy(io.Discard, br)
			}).addr
		}},
		{name: "TLS to a plain server", scheme: "https", want: ClassTLS, addr: func(*testing.T) string { return plain.Listener.Addr().String() }},
		{name: "untrusted certificate", scheme: "https", want: ClassTLS, addr: func(*testing.T) string { return selfSigned.Listener.Addr().String() }},
		{name: "CRLF in header value", want: ClassOther, addr: func(*testing.T) string { return refusedAddr },
			req: func(r *Request) { r.Header = []Header{{"X-A", []byte("a\r\nX-Evil: 1")}} }},
		{name: "space in target", want: ClassOther, addr: func(*testing.T) string { return refusedAddr },
			req: func(r *Request) { r.Target = []byte("/a b") }},
		{name: "bad method", want: ClassOther, addr: func(*testing.T) string { return refusedAddr },
			req: func(r *Request) { r.Method = "GET /" }},
		{name: "bad scheme", want: ClassOther, addr: func(*testing.T) string { return refusedAddr },
			req: func(r *Request) { r.Scheme = "ftp" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.scheme == "https" && viaPoller {
				t.Skip("the Poller leaves TLS to Client")
			}
			t.Parallel()
			// Only the timeout cases wait it out; the others fail at once,
			// and a long timeout keeps a frozen machine from turning their
			// error into a timeout.
			timeout := 2 * time.Second
			if tt.want == ClassTimeout {
				timeout = 300 * time.Millisecond
			}
			tr := NewTransport(Options{Timeout: timeout})
			defer tr.Close()
			c := newTestClient(tr)
			defer c.Close()
			req := get(tt.addr(t), "/")
			if tt.scheme != "" {
				req.Scheme = tt.scheme
			}
			if tt.req != nil {
				tt.req(req)
			}
			start := time.Now()
			var res Result
			c.Do(req, &res)
			if res.Class != tt.want || res.Status != 0 || res.Err == nil {
				t.Fatalf("got status %d class %q err %v; want class %q", res.Status, res.Class, res.Err, tt.want)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %v", d)
			}
			// The failed connection is gone: the next request fails the
			// same way instead of reading leftovers.
			var again Result
			c.Do(req, &again)
			if again.Class != tt.want {
				t.Errorf("second request: class %q err %v; want %q", again.Class, again.Err, tt.want)
			}
		})
	}
}

// A connection in steady use that the server resets is a failure the user
// must see, not a stale keep-alive to retry quietly.
func TestH1ResetUnderLoadIsNotRetried(t *testing.T) {
	const ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	srv := newRawServer(t, func(c net.Conn, br *bufio.Reader) {
		readRequest(br)
		io.WriteString(c, ok)
		readRequest(br)
		c.(*net.TCPConn).SetLinger(0)
	})
	tr := NewTransport(Options{Timeout: 2 * time.Second})
	defer tr.Close()
	c := newTestClient(tr)
	defer c.Close()
	var first, second Result
	c.Do(get(srv.addr, "/"), &first)
	c.Do(get(srv.addr, "/"), &second)
	if first.Status != 200 || second.Class != ClassReset {
		t.Errorf("first %d, second class %q (err %v); want 200 then reset", first.Status, second.Class, second.Err)
	}
	if got := srv.conns.Load(); got != 1 {
		t.Errorf("server saw %d connections, want 1 (no retry)", got)
	}
}

func TestH1StaleKeepAlive(t *testing.T) {
	const ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	tests := []struct {
		name       string
		handle     func(c net.Conn, br *bufio.Reader)
		staleAfter time.Duration
		wantStatus int
		wantClass  Class
		wantConns  int64 // after two requests
	}{
		{
			name: "server closes the idle connection",
			handle: func(c net.Conn, br *bufio.Reader) {
				readRequest(br)
				io.WriteString(c, ok)
			},
			staleAfter: 10 * time.Millisecond, wantStatus: 200, wantConns: 2,
		},
		{
			name: "server resets the kept-alive connection",
			handle: func(c net.Conn, br *bufio.Reader) {
				readRequest(br)
				io.WriteString(c, ok)
				readRequest(br)
				c.(*net.TCPConn).SetLinger(0)
			},
			staleAfter: 10 * time.Millisecond, wantStatus: 200, wantConns: 2,
		},
		{
			name: "fresh connection is not retried",
			handle: func(c net.Conn, br *bufio.Reader) {
				readRequest(br)
				c.(*net.TCPConn).SetLinger(0)
			},
			wantClass: ClassReset, wantConns: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRawServer(t, tt.handle)
			tr := NewTransport(Options{Timeout: 2 * time.Second, StaleAfter: tt.staleAfter})
			defer tr.Close()
			c := newTestClient(tr)
			defer c.Close()
			var first, second Result
			c.Do(get(srv.addr, "/"), &first)
			time.Sleep(20 * time.Millisecond) // let the server's close arrive
			c.Do(get(srv.addr, "/"), &second)
			for i, res := range []Result{first, second} {
				if res.Status != tt.wantStatus || res.Class != tt.wantClass {
					t.Errorf("request %d: status %d class %q err %v; want %d %q", i, res.Status, res.Class, res.Err, tt.wantStatus, tt.wantClass)
				}
				if res.Reused {
					t.Errorf("request %d: Reused, want a fresh connection", i)
				}
			}
			if got := srv.conns.Load(); got != tt.wantConns {
				t.Errorf("server saw %d connections, want %d", got, tt.wantConns)
			}
		})
	}
}

func TestH1ResetEveryRequestFails(t *testing.T) {
	srv := newRawServer(t, func(c net.Conn, br *bufio.Reader) {
		readRequest(br)
		c.(*net.TCPConn).SetLinger(0)
	})
	tr := NewTransport(Options{Timeout: 2 * time.Second})
	defer tr.Close()
	c := newTestClient(tr)
	defer c.Close()
	for i := range 20 {
		var res Result
		c.Do(get(srv.addr, "/"), &res)
		if res.Class != ClassReset {
			t.Fatalf("request %d: class %q err %v status %d; want reset", i, res.Class, res.Err, res.Status)
		}
	}
	if got := srv.conns.Load(); got != 20 {
		t.Errorf("server saw %d connections, want 20 (one per request, no retries)", got)
	}
}

func TestH1TLS(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || r.ProtoMajor != 1 || r.Host != "example.com" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		io.WriteString(w, "secure")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.EnableHTTP2 = true // the client must still negotiate http/1.1
	srv.StartTLS()
	defer srv.Close()

	tr := NewTransport(Options{TLSConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig})
	defer tr.Close()
	c := tr.NewClient()
	defer c.Close()
	req := &Request{Scheme: "https", Host: srv.Listener.Addr().String(), Target: []byte("/"),
		Header: []Header{{"Host", []byte("example.com")}}}
	for i := range 5 {
		var res Result
		c.Do(req, &res)
		if res.Status != 200 || res.Class != ClassNone {
			t.Fatalf("request %d: status %d class %q err %v", i, res.Status, res.Class, res.Err)
		}
		if res.Reused != (i > 0) {
			t.Errorf("request %d: Reused %v", i, res.Reused)
		}
	}
	if got := conns.Load(); got != 1 {
		t.Errorf("server saw %d connections, want 1", got)
	}
}

func TestH1InsecureSkipVerify(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer srv.Close()
	tr := NewTransport(Options{TLSConfig: insecure()})
	defer tr.Close()
	c := tr.NewClient()
	defer c.Close()
	var res Result
	c.Do(&Request{Scheme: "https", Host: srv.Listener.Addr().String()}, &res)
	if res.Status != 200 || res.BytesReceived == 0 {
		t.Fatalf("status %d class %q err %v", res.Status, res.Class, res.Err)
	}
}

// blockingServer reads requests and never answers; release ends it.
func blockingServer(t *testing.T) (addr string, accepted <-chan struct{}) {
	ch := make(chan struct{}, 16)
	srv := newRawServer(t, func(c net.Conn, br *bufio.Reader) {
		readRequest(br)
		ch <- struct{}{}
		io.Copy(io.Discard, br)
	})
	return srv.addr, ch
}

func TestCloseUnblocksDo(t *testing.T) {
	tests := []struct {
		name  string
		http2 bool
		close func(tr *Transport, c Client)
	}{
		{name: "client close", close: func(_ *Transport, c Client) { c.Close() }},
		{name: "transport close", close: func(tr *Transport, _ Client) { tr.Close() }},
		{name: "h2 client close", http2: true, close: func(_ *Transport, c Client) { c.Close() }},
		{name: "h2 transport close", http2: true, close: func(tr *Transport, _ Client) { tr.Close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var addr string
			var accepted <-chan struct{}
			if tt.http2 {
				ch := make(chan struct{}, 1)
				release := make(chan struct{})
				srv := h2cServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					ch <- struct{}{}
					select {
					case <-r.Context().Done():
					case <-release:
					}
				}))
				defer close(release)
				addr, accepted = srv.Listener.Addr().String(), ch
			} else {
				addr, accepted = blockingServer(t)
			}
			tr := NewTransport(Options{Timeout: 30 * time.Second, HTTP2: tt.http2})
			defer tr.Close()
			c := tr.NewClient()
			done := make(chan Result)
			go func() {
				var res Result
				c.Do(get(addr, "/"), &res)
				done <- res
			}()
			<-accepted
			start := time.Now()
			tt.close(tr, c)
			select {
			case res := <-done:
				if !errors.Is(res.Err, ErrClosed) || res.Class != ClassOther {
					t.Errorf("class %q err %v; want ErrClosed", res.Class, res.Err)
				}
				if d := time.Since(start); d > time.Second {
					t.Errorf("Do returned %v after Close", d)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Do still blocked 5s after Close")
			}
			var res Result
			c.Do(get(addr, "/"), &res)
			if !errors.Is(res.Err, ErrClosed) {
				t.Errorf("Do after Close: err %v, want ErrClosed", res.Err)
			}
		})
	}
}

func TestCloseConcurrentWithDo(t *testing.T) {
	srv := newRawServer(t, serveCanned("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false))
	tr := NewTransport(Options{Timeout: 5 * time.Second})
	var wg sync.WaitGroup
	clients := make([]Client, 8)
	for i := range clients {
		clients[i] = tr.NewClient()
		wg.Add(1)
		go func(c Client) {
			defer wg.Done()
			var res Result
			for {
				c.Do(get(srv.addr, "/"), &res)
				if errors.Is(res.Err, ErrClosed) {
					return
				}
				if res.Class != ClassNone {
					t.Errorf("class %q err %v", res.Class, res.Err)
					return
				}
			}
		}(clients[i])
	}
	time.Sleep(50 * time.Millisecond)
	clients[0].Close()
	time.Sleep(20 * time.Millisecond)
	tr.Close()
	wg.Wait()
	var res Result
	tr.NewClient().Do(get(srv.addr, "/"), &res)
	if !errors.Is(res.Err, ErrClosed) {
		t.Errorf("client made after Transport.Close: err %v, want ErrClosed", res.Err)
	}
}

func TestClassString(t *testing.T) {
	tests := []struct {
		name string
		c    Class
		want string
	}{
		{"none", ClassNone, ""}, {"timeout", ClassTimeout, "timeout"}, {"refused", ClassRefused, "refused"},
		{"reset", ClassReset, "reset"}, {"dns", ClassDNS, "dns"}, {"tls", ClassTLS, "tls"},
		{"protocol", ClassProtocol, "protocol"}, {"other", ClassOther, "other"}, {"out of range", Class(200), "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.c.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}
