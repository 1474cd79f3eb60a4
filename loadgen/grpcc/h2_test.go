package grpcc_test

import (
	"context"
	"encoding/base64"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"

	"github.com/loadcap/loadcap/loadgen/grpcc"
	"github.com/loadcap/loadcap/loadgen/grpcc/grpcctest"
)

// receiptSize is the response size (with its prefix) of a Place call with
// a sku of n bytes and qty 0: the receipt echoes the sku as its id and
// carries 16 bytes of pad.
func receiptSize(n int) int64 {
	vlen := 1
	for v := n; v >= 0x80; v >>= 7 {
		vlen++
	}
	return int64(5 + 1 + vlen + n + 18)
}

func TestConcurrentCallsShareOneConnection(t *testing.T) {
	srv := grpcctest.Start(t, grpcctest.Options{})
	p := dial(t, grpcc.Options{Target: srv.Addr, Connections: 1})
	const callers, calls = 40, 25
	var wg sync.WaitGroup
	errs := make(chan string, callers*calls)
	for i := range callers {
		wg.Go(func() {
			// Each caller's sku has its own length, so a response given
			// to the wrong call shows in its size.
			sku := strings.Repeat("s", 1+i)
			pl := payload(t, srv, "Place", `{"sku": "`+sku+`"}`)
			c := p.Caller(0)
			var res grpcc.Result
			for range calls {
				c.Unary(context.Background(), place, pl, &res)
				if res.Code != codes.OK || res.BytesRecv != receiptSize(len(sku)) || res.Messages != 1 {
					errs <- res.Code.String() + " " + sku
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if n := srv.Peers(); n != 1 {
		t.Errorf("server saw %d connections, want 1", n)
	}
	if n := srv.Count(); n != callers*calls {
		t.Errorf("server answered %d calls, want %d", n, callers*calls)
	}
}

func TestMaxConcurrentStreamsOneServesCallsInTurn(t *testing.T) {
	srv := grpcctest.Start(t, grpcctest.Options{ServerOptions: []grpc.ServerOption{grpc.MaxConcurrentStreams(1)}})
	p := dial(t, grpcc.Options{Target: srv.Addr, Connections: 1})
	pl := payload(t, srv, "Slow", `{"ms": 40}`)
	const n = 6
	codesSeen := make([]codes.Code, n)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var res grpcc.Result
			p.Caller(0).Unary(ctx, slow, pl, &res)
			codesSeen[i] = res.Code
		})
	}
	wg.Wait()
	for i, c := range codesSeen {
		if c != codes.OK {
			t.Errorf("call %d: %v, want OK (no refused streams)", i, c)
		}
	}
	// One stream at a time: the calls could not overlap.
	if d := time.Since(start); d < n*40*time.Millisecond {
		t.Errorf("%d calls of 40ms took %v on a one-stream connection", n, d)
	}
}

func TestLargeMessagesBothWays(t *testing.T) {
	srv := grpcctest.Start(t, grpcctest.Options{})
	for _, tr := range transports {
		p := dial(t, grpcc.Options{Target: srv.Addr, Connections: 1, Transport: tr.t})
		for _, tc := range []struct {
			name string
			size int
		}{
			{"over one frame", 20 << 10},
			{"over the default window", 100 << 10},
			{"over a quarter of our window", 3 << 20},
		} {
			t.Run(tr.name+"/"+tc.name, func(t *testing.T) {
				sku := strings.Repeat("x", tc.size)
				pl := payload(t, srv, "Place", `{"sku": "`+sku+`"}`)
				// Two at once, so that their DATA frames interleave.
				var wg sync.WaitGroup
				for range 2 {
					wg.Go(func() {
						ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
						defer cancel()
						var res grpcc.Result
						p.Caller(0).Unary(ctx, place, pl, &res)
						if res.Code != codes.OK {
							t.Errorf("code %v (%v)", res.Code, res.Err)
						}
						if res.BytesSent != int64(len(pl.Bytes())+5) || res.BytesRecv != receiptSize(tc.size) {
							t.Errorf("sent %d received %d, want %d and %d", res.BytesSent, res.BytesRecv, len(pl.Bytes())+5, receiptSize(tc.size))
						}
					})
				}
				wg.Wait()
			})
		}
	}
}

func TestGoAwayRedials(t *testing.T) {
	// The server ends every connection after 50ms with a GOAWAY (and
	// keeps serving new ones): calls carry on over new connections.
	srv := grpcctest.Start(t, grpcctest.Options{ServerOptions: []grpc.ServerOption{
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionAge: 50 * time.Millisecond, MaxConnectionAgeGrace: 5 * time.Second}),
	}})
	p := dial(t, grpcc.Options{Target: srv.Addr, Connections: 1})
	pl := payload(t, srv, "Place", `{}`)
	c := p.Caller(0)
	// Until the third connection, not for a fixed time: a machine that
	// froze the test for longer than a connection's age would see fewer.
	start := time.Now()
	n := 0
	for ; srv.Peers() < 3; n++ {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("%d calls over %d connections in %v, want a new connection after each GOAWAY", n, srv.Peers(), time.Since(start).Round(time.Millisecond))
		}
		var res grpcc.Result
		c.Unary(context.Background(), place, pl, &res)
		if res.Code != codes.OK {
			t.Fatalf("call %d: %v", n, res.Err)
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("%d calls over 3 connections in %v", n, time.Since(start).Round(time.Millisecond))
}

func TestGracefulStopLetsCallsInFlightEnd(t *testing.T) {
	srv := grpcctest.Start(t, grpcctest.Options{})
	p := dial(t, grpcc.Options{Target: srv.Addr, Connections: 1})
	c := p.Caller(0)
	var res grpcc.Result
	c.Unary(context.Background(), place, payload(t, srv, "Place", `{}`), &res) // connected
	go func() {
		time.Sleep(50 * time.Millisecond)
		srv.GracefulStop()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.Unary(ctx, slow, payload(t, srv, "Slow", `{"ms": 200}`), &res)
	if res.Code != codes.OK {
		t.Errorf("the call in flight at the GOAWAY: %v, want OK", res.Err)
	}
	c.Unary(ctx, place, payload(t, srv, "Place", `{}`), &res)
	if res.Code != codes.Unavailable {
		t.Errorf("a call after the server stopped: %v, want Unavailable", res.Code)
	}
}

func TestServerKilledMidCallIsUnavailable(t *testing.T) {
	srv := grpcctest.Start(t, grpcctest.Options{})
	p := dial(t, grpcc.Options{Target: srv.Addr, Connections: 1})
	pl := payload(t, srv, "Slow", `{"ms": 5000}`)
	time.AfterFunc(100*time.Millisecond, srv.Stop)
	start := time.Now()
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			var res grpcc.Result
			p.Caller(0).Unary(context.Background(), slow, pl, &res)
			if res.Code != codes.Unavailable {
				t.Errorf("code %v, want Unavailable (%v)", res.Code, res.Err)
			}
		})
	}
	wg.Wait()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("calls ended %v after the server died", d)
	}
}

func TestTrailersOnlyErrors(t *testing.T) {
	srv := grpcctest.Start(t, grpcctest.Options{})
	p := dial(t, grpcc.Options{Target: srv.Addr})
	for _, tc := range []struct {
		name, method, js string
		code             codes.Code
		msg              string
	}{
		{"handler status", fail, `{"code": 5}`, codes.NotFound, "failing as asked: NotFound"},
		{"unknown method", "/loadtest.Shop/Nope", `{}`, codes.Unimplemented, "unknown method Nope"},
		{"unknown service", "/loadtest.Nope/Place", `{}`, codes.Unimplemented, "unknown service loadtest.Nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var res grpcc.Result
			p.Caller(0).Unary(context.Background(), tc.method, payload(t, srv, "Fail", tc.js), &res)
			if res.Code != tc.code || res.Err == nil || !strings.Contains(res.Err.Error(), tc.msg) {
				t.Errorf("code %v err %v, want %v with %q", res.Code, res.Err, tc.code, tc.msg)
			}
			if res.Messages != 0 || res.BytesRecv != 0 {
				t.Errorf("%d messages, %d bytes in a Trailers-Only response", res.Messages, res.BytesRecv)
			}
		})
	}
}

func TestCancelIsCanceled(t *testing.T) {
	srv := grpcctest.Start(t, grpcctest.Options{})
	p := dial(t, grpcc.Options{Target: srv.Addr, Connections: 1})
	c := p.Caller(0)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	var res grpcc.Result
	c.Unary(ctx, slow, payload(t, srv, "Slow", `{"ms": 5000}`), &res)
	if res.Code != codes.Canceled {
		t.Errorf("code %v, want Canceled", res.Code)
	}
	// The stream was reset, and the connection still serves.
	c.Unary(context.Background(), place, payload(t, srv, "Place", `{}`), &res)
	if res.Code != codes.OK {
		t.Errorf("the next call: %v", res.Err)
	}
}

func TestPoolCloseCancelsCallsInFlight(t *testing.T) {
	srv := grpcctest.Start(t, grpcctest.Options{})
	p := dial(t, grpcc.Options{Target: srv.Addr, Connections: 1})
	time.AfterFunc(100*time.Millisecond, p.Close)
	var res grpcc.Result
	p.Caller(0).Unary(context.Background(), slow, payload(t, srv, "Slow", `{"ms": 5000}`), &res)
	if res.Code != codes.Canceled {
		t.Errorf("code %v, want Canceled (%v)", res.Code, res.Err)
	}
}

func TestMetadataReachesTheServer(t *testing.T) {
	srv := grpcctest.Start(t, grpcctest.Options{Record: true})
	pl := payload(t, srv, "Place", `{}`)
	md := metadata.Pairs("x-region", "east", "x-loadcap-drill", "d-1", "trace-bin", "\x00\x01\xff")
	for _, tr := range transports {
		p := dial(t, grpcc.Options{Target: srv.Addr, Transport: tr.t})
		var res grpcc.Result
		prepared := grpcc.NewMetadata(md)
		for range 2 { // the second reuses the header block
			p.Caller(0).UnaryMD(context.Background(), place, prepared, pl, &res)
		}
		p.Caller(0).Unary(metadata.NewOutgoingContext(context.Background(), md), place, pl, &res)
		if res.Code != codes.OK {
			t.Fatalf("%s: %v", tr.name, res.Err)
		}
	}
	calls := srv.Calls()
	if len(calls) != 6 {
		t.Fatalf("%d calls", len(calls))
	}
	for i, c := range calls {
		got := c.Metadata
		if g := got.Get("x-region"); len(g) != 1 || g[0] != "east" {
			t.Errorf("call %d: x-region %q", i, g)
		}
		if g := got.Get("x-loadcap-drill"); len(g) != 1 || g[0] != "d-1" {
			t.Errorf("call %d: x-loadcap-drill %q", i, g)
		}
		if g := got.Get("trace-bin"); len(g) != 1 || g[0] != "\x00\x01\xff" {
			t.Errorf("call %d: trace-bin %q (%s)", i, g, base64.StdEncoding.EncodeToString([]byte(strings.Join(g, ""))))
		}
	}
}

func TestSilentServerEndsCallsAtTheirDeadline(t *testing.T) {
	// A listener that never answers: the connection is made (the kernel
	// accepts it) but the HTTP/2 handshake never ends.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	srv := grpcctest.Start(t, grpcctest.Options{})
	pl := payload(t, srv, "Place", `{}`)
	p := dial(t, grpcc.Options{Target: ln.Addr().String(), Connections: 1})
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		start := time.Now()
		var res grpcc.Result
		p.Caller(0).Unary(ctx, place, pl, &res)
		cancel()
		if res.Code != codes.DeadlineExceeded {
			t.Errorf("code %v, want DeadlineExceeded", res.Code)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("a call with a 100ms deadline took %v", d)
		}
	}
}
