package httpc

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// viaPoller makes newTestClient return a Client over a Poller: the
// HTTP/1.1 tests that TestH1ViaPoller re-runs then check the Poller's
// exchanges against the same expectations as Client's.
var viaPoller bool

// pollClients counts the clients newTestClient made over a Poller, so that
// TestH1ViaPoller knows each test it re-ran used one.
var pollClients atomic.Int64

// newTestClient is the client an HTTP/1.1 test uses: tr's, or one over a
// Poller of tr when viaPoller is set.
func newTestClient(tr *Transport) Client {
	if !viaPoller {
		return tr.NewClient()
	}
	pollClients.Add(1)
	if tr.h2 != nil {
		return sharedPoller(tr).client()
	}
	p, err := tr.NewPoller()
	if err != nil {
		panic(err)
	}
	return &pollClient{p: p, x: p.NewExchange(nil)}
}

// An HTTP/2 test's clients share one Poller, as a Transport's clients
// share its connections: a goroutine runs it, taking the clients' calls.
type pollDriver struct {
	calls chan *pollCall
}

type pollCall struct {
	r    *Request
	res  *Result
	done chan struct{}
}

var (
	driversMu sync.Mutex
	drivers   = map[*Transport]*pollDriver{}
)

// sharedPoller returns tr's driver, started on first use; it stops, and
// closes its Poller, when tr closes.
func sharedPoller(tr *Transport) *pollDriver {
	driversMu.Lock()
	defer driversMu.Unlock()
	if d := drivers[tr]; d != nil {
		return d
	}
	p, err := tr.NewPoller()
	if err != nil {
		panic(err)
	}
	d := &pollDriver{calls: make(chan *pollCall)}
	drivers[tr] = d
	go d.run(tr, p)
	return d
}

func (d *pollDriver) run(tr *Transport, p *Poller) {
	defer p.Close()
	inFlight := 0
	for {
		var c *pollCall
		if inFlight == 0 {
			select {
			case c = <-d.calls:
			case <-tr.ctx.Done():
				return
			}
		} else {
			select {
			case c = <-d.calls:
			default:
			}
		}
		if c != nil {
			p.Start(p.NewExchange(c), c.r)
			inFlight++
		}
		for _, x := range p.Wait(time.Millisecond) {
			c := x.User.(*pollCall)
			*c.res = x.Res
			p.Release(x)
			inFlight--
			close(c.done)
		}
	}
}

func (d *pollDriver) client() Client { return driverClient{d} }

// driverClient sends its requests through a shared Poller.
type driverClient struct{ d *pollDriver }

func (c driverClient) Do(r *Request, res *Result) {
	call := &pollCall{r: r, res: res, done: make(chan struct{})}
	c.d.calls <- call
	<-call.done
}

func (c driverClient) Close() {}

// pollClient runs one exchange at a time on its own Poller, as a Client.
type pollClient struct {
	p *Poller
	x *Exchange
}

func (c *pollClient) Do(r *Request, res *Result) {
	c.p.Start(c.x, r)
	for {
		for _, x := range c.p.Wait(10 * time.Millisecond) {
			if x == c.x {
				*res = x.Res
				return
			}
		}
	}
}

func (c *pollClient) Close() { c.p.Close() }

// The Poller's exchanges behave as Client's requests: the same tests,
// except those of what the Poller leaves to Client (TLS, several
// connections per caller, Close from another goroutine).
func TestH1ViaPoller(t *testing.T) {
	runViaPoller(t, []struct {
		name string
		fn   func(*testing.T)
	}{
		{"Responses", TestH1Responses},
		{"RequestBytes", TestH1RequestBytes},
		{"PostEcho", TestH1PostEcho},
		{"LargeBodies", TestH1LargeBodies},
		{"KeepAlive", TestH1KeepAlive},
		{"Errors", TestH1Errors},
		{"ResetUnderLoadIsNotRetried", TestH1ResetUnderLoadIsNotRetried},
		{"StaleKeepAlive", TestH1StaleKeepAlive},
		{"ResetEveryRequestFails", TestH1ResetEveryRequestFails},
	})
}

// runViaPoller runs tests with newTestClient making clients over a
// Poller, each of which must make one.
func runViaPoller(t *testing.T, tests []struct {
	name string
	fn   func(*testing.T)
}) {
	if !PollerSupported {
		t.Skip("no Poller here")
	}
	for _, tt := range tests {
		before := pollClients.Load()
		viaPoller = true
		t.Run(tt.name, tt.fn)
		viaPoller = false
		if pollClients.Load() == before {
			t.Errorf("%s made no client over a Poller", tt.name)
		}
	}
}

// The HTTP/2 tests again, their clients' requests run as streams of one
// Poller: all but TLS, Close under a request and keep-alive off, which
// the Poller leaves to Client.
func TestH2ViaPoller(t *testing.T) {
	runViaPoller(t, []struct {
		name string
		fn   func(*testing.T)
	}{
		{"H2", TestH2},
		{"Errors", TestH2Errors},
		{"Responses", TestH2Responses},
		{"LargeBodies", TestH2LargeBodies},
		{"MoreClientsThanMaxConcurrentStreams", TestH2MoreClientsThanMaxConcurrentStreams},
		{"GoAwayRetriesUnprocessedRequests", TestH2GoAwayRetriesUnprocessedRequests},
		{"ServerDiesMidRun", TestH2ServerDiesMidRun},
		{"Timeout", TestH2Timeout},
		{"TimeoutWaitingForStream", TestH2TimeoutWaitingForStream},
		{"SilentServer", TestH2SilentServer},
		{"GoAwayThenTimeoutClosesTheConnection", TestH2GoAwayThenTimeoutClosesTheConnection},
	})
}

// skipTLSViaPoller skips a TLS case when the test runs over a Poller.
func skipTLSViaPoller(t *testing.T, https bool) {
	if viaPoller && https {
		t.Skip("the Poller leaves TLS to Client")
	}
}

// One Poller carries many exchanges at once, each with its own
// connection, and returns each request's outcome once.
func TestPollerManyExchanges(t *testing.T) {
	if !PollerSupported {
		t.Skip("no Poller here")
	}
	var mu sync.Mutex
	conns := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		conns[r.RemoteAddr] = true
		mu.Unlock()
		if r.URL.Path == "/slow" {
			time.Sleep(20 * time.Millisecond)
		}
		w.Write([]byte(r.URL.Path))
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	tr := NewTransport(Options{Timeout: 5 * time.Second})
	defer tr.Close()
	p := newPollerFor(t, tr)
	const n, each = 40, 25
	left := map[*Exchange]int{}
	for i := range n {
		x := p.NewExchange(i)
		left[x] = each
		path := "/fast"
		if i%4 == 0 {
			path = "/slow"
		}
		p.Start(x, get(addr, path))
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(left) > 0 && time.Now().Before(deadline) {
		for _, x := range p.Wait(5 * time.Millisecond) {
			want := int64(len("/fast"))
			if x.User.(int)%4 == 0 {
				want = int64(len("/slow"))
			}
			if x.Res.Status != 200 || x.Res.Class != ClassNone || x.Res.BytesReceived < want {
				t.Fatalf("exchange %d: status %d class %q err %v", x.User, x.Res.Status, x.Res.Class, x.Res.Err)
			}
			if earlier := each - left[x]; earlier > 0 && !x.Res.Reused {
				t.Errorf("exchange %d: a new connection for request %d", x.User, earlier+1)
			}
			if left[x]--; left[x] == 0 {
				delete(left, x)
				continue
			}
			path := "/fast"
			if x.User.(int)%4 == 0 {
				path = "/slow"
			}
			p.Start(x, get(addr, path))
		}
	}
	if len(left) > 0 {
		t.Fatalf("%d exchanges did not finish", len(left))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(conns) != n {
		t.Errorf("server saw %d connections, want one per exchange (%d)", len(conns), n)
	}
}

// A request that never gets an answer times out within the scan period of
// its deadline, and the exchange carries on with a new connection.
func TestPollerTimeout(t *testing.T) {
	if !PollerSupported {
		t.Skip("no Poller here")
	}
	var answer sync.Once
	srv := newRawServer(t, func(c net.Conn, br *bufio.Reader) {
		readRequest(br)
		ok := false
		answer.Do(func() { ok = true })
		if !ok { // the second connection answers
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
			readRequest(br)
			return
		}
		br.ReadByte() // the first never does
	})
	const timeout = 200 * time.Millisecond
	tr := NewTransport(Options{Timeout: timeout})
	defer tr.Close()
	c := newPollClientFor(t, tr)
	start := time.Now()
	var res Result
	c.Do(get(srv.addr, "/"), &res)
	took := time.Since(start)
	if res.Class != ClassTimeout {
		t.Fatalf("class %q err %v, want a timeout", res.Class, res.Err)
	}
	if took < timeout || took > timeout+time.Second {
		t.Errorf("timed out after %v, want %v (+ the scan period)", took, timeout)
	}
	c.Do(get(srv.addr, "/"), &res)
	if res.Status != 200 || res.Reused {
		t.Errorf("next request: status %d reused %v class %q err %v", res.Status, res.Reused, res.Class, res.Err)
	}
}

// newPollerFor is a Poller of tr that t closes.
func newPollerFor(t *testing.T, tr *Transport) *Poller {
	t.Helper()
	p, err := tr.NewPoller()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func newPollClientFor(t *testing.T, tr *Transport) Client {
	p := newPollerFor(t, tr)
	return &pollClient{p: p, x: p.NewExchange(nil)}
}

// A request the Poller cannot carry fails without being sent.
func TestPollerRefusesTLS(t *testing.T) {
	if !PollerSupported {
		t.Skip("no Poller here")
	}
	tr := NewTransport(Options{})
	defer tr.Close()
	c := newPollClientFor(t, tr)
	r := get("127.0.0.1:1", "/")
	r.Scheme = "https"
	var res Result
	c.Do(r, &res)
	if res.Class != ClassOther || res.Err != errPollerTLS || res.BytesSent != 0 {
		t.Errorf("class %q err %v sent %d", res.Class, res.Err, res.BytesSent)
	}
}

// A released exchange's connection closes, and the next caller reuses the
// exchange with a connection of its own.
func TestPollerRelease(t *testing.T) {
	if !PollerSupported {
		t.Skip("no Poller here")
	}
	closed := make(chan struct{}, 4)
	srv := newRawServer(t, func(c net.Conn, br *bufio.Reader) {
		for {
			if _, err := readRequest(br); err != nil {
				closed <- struct{}{}
				return
			}
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
		}
	})
	tr := NewTransport(Options{Timeout: 2 * time.Second})
	defer tr.Close()
	p := newPollerFor(t, tr)
	do := func(x *Exchange) (res Result) {
		(&pollClient{p: p, x: x}).Do(get(srv.addr, "/"), &res)
		return res
	}
	a := p.NewExchange("a")
	if res := do(a); res.Status != 200 {
		t.Fatalf("first: %+v", res)
	}
	p.Release(a)
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Fatal("the released exchange's connection stayed open")
	}
	b := p.NewExchange("b")
	if b != a || b.User != "b" {
		t.Errorf("the released exchange was not reused: %p %p %v", a, b, b.User)
	}
	if res := do(b); res.Status != 200 || res.Reused {
		t.Errorf("reused exchange: %+v, want a new connection", res)
	}
	if srv.conns.Load() != 2 {
		t.Errorf("server saw %d connections, want 2", srv.conns.Load())
	}
}

// A refused connection reads as Client's does, over HTTP/1.1 and HTTP/2:
// the same class and message (which names the address) in the run's
// error samples.
func TestPollerRefusedAsClient(t *testing.T) {
	if !PollerSupported {
		t.Skip("no Poller here")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	for _, h2 := range []bool{false, true} {
		tr := NewTransport(Options{HTTP2: h2, Timeout: 2 * time.Second})
		var want, got Result
		c := tr.NewClient()
		c.Do(get(addr, "/"), &want)
		c.Close()
		if h2 {
			sharedPoller(tr).client().Do(get(addr, "/"), &got)
		} else {
			newPollClientFor(t, tr).Do(get(addr, "/"), &got)
		}
		tr.Close()
		if got.Class != ClassRefused || got.Class != want.Class || fmt.Sprint(got.Err) != fmt.Sprint(want.Err) {
			t.Errorf("HTTP/2 %v: poller: class %q err %v; client: class %q err %v", h2, got.Class, got.Err, want.Class, want.Err)
		}
	}
}
