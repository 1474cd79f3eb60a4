package httpc

import (
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func insecure() *tls.Config { return &tls.Config{InsecureSkipVerify: true} }

// h2cServer is an httptest server speaking HTTP/1.1 and h2c with prior
// knowledge.
func h2cServer(t *testing.T, h http.Handler) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv.Config.Protocols = &p
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// quietServer is an httptest server answering 200 to everything, which
// does not log the handshake errors the tests provoke. It stops with the
// test.
func quietServer(t *testing.T, useTLS, h2 bool) *httptest.Server {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.EnableHTTP2 = h2
	if useTLS {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv
}

// protoHandler answers 200 with the body echoed for HTTP/2 requests and
// 505 for anything else.
func protoHandler(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor != 2 || r.Header.Get("User-Agent") != "loadcap" || r.Header.Get("X-Id") != "7" {
		w.WriteHeader(http.StatusHTTPVersionNotSupported)
		return
	}
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.Write(body)
}

func TestH2(t *testing.T) {
	tlsSrv := httptest.NewUnstartedServer(http.HandlerFunc(protoHandler))
	tlsSrv.EnableHTTP2 = true
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	h2c := h2cServer(t, http.HandlerFunc(protoHandler))

	tests := []struct {
		name   string
		scheme string
		addr   string
	}{
		{name: "h2 over TLS", scheme: "https", addr: tlsSrv.Listener.Addr().String()},
		{name: "h2c prior knowledge", scheme: "http", addr: h2c.Listener.Addr().String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			skipTLSViaPoller(t, tt.scheme == "https")
			tr := NewTransport(Options{HTTP2: true, TLSConfig: insecure(), Timeout: 5 * time.Second})
			defer tr.Close()
			c1, c2 := newTestClient(tr), newTestClient(tr)
			defer c1.Close()
			defer c2.Close()
			for i, c := range []Client{c1, c2, c1} {
				req := &Request{Method: "POST", Scheme: tt.scheme, Host: tt.addr, Target: []byte("/echo?x=1"),
					Header: []Header{{"X-Id", []byte("7")}}, Body: []byte("hello")}
				var res Result
				c.Do(req, &res)
				if res.Status != 200 || res.Class != ClassNone {
					t.Fatalf("request %d: status %d class %q err %v", i, res.Status, res.Class, res.Err)
				}
				if res.BytesSent < 5 || res.BytesReceived < 5 {
					t.Errorf("request %d: sent %d received %d, want at least the body", i, res.BytesSent, res.BytesReceived)
				}
				if i > 0 && !res.Reused {
					t.Errorf("request %d: not sent on the shared connection", i)
				}
			}
		})
	}
}

func TestH2Errors(t *testing.T) {
	h1only := quietServer(t, true, false)
	h2tls := quietServer(t, true, true)
	h1plain := quietServer(t, false, false)
	slow := h2cServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	tests := []struct {
		name   string
		scheme string
		addr   string
		tls    *tls.Config
		want   Class
	}{
		{name: "TLS server without h2", scheme: "https", addr: h1only.Listener.Addr().String(), tls: insecure(), want: ClassTLS},
		{name: "plain server without h2c", scheme: "http", addr: h1plain.Listener.Addr().String(), want: ClassProtocol},
		{name: "untrusted certificate", scheme: "https", addr: h2tls.Listener.Addr().String(), want: ClassTLS},
		{name: "timeout", scheme: "http", addr: slow.Listener.Addr().String(), want: ClassTimeout},
		{name: "unresolvable name", scheme: "http", addr: "nonexistent.invalid:80", want: ClassDNS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Only the timeout case waits it out; the others fail at once,
			// and a long timeout keeps a frozen machine from turning their
			// error into a timeout.
			timeout := 2 * time.Second
			if tt.want == ClassTimeout {
				timeout = 300 * time.Millisecond
			}
			skipTLSViaPoller(t, tt.scheme == "https")
			tr := NewTransport(Options{HTTP2: true, TLSConfig: tt.tls, Timeout: timeout})
			defer tr.Close()
			c := newTestClient(tr)
			defer c.Close()
			var res Result
			c.Do(&Request{Scheme: tt.scheme, Host: tt.addr, Target: []byte("/")}, &res)
			t.Logf("err: %v", res.Err)
			if res.Class != tt.want || res.Status != 0 {
				t.Errorf("status %d class %q err %v; want %q", res.Status, res.Class, res.Err, tt.want)
			}
		})
	}
}
