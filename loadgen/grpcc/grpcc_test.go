package grpcc_test

import (
	"context"
	"crypto/tls"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/loadcap/loadcap/loadgen/grpcc"
	"github.com/loadcap/loadcap/loadgen/grpcc/grpcctest"
)

const (
	place = "/loadtest.Shop/Place"
	fail  = "/loadtest.Shop/Fail"
	slow  = "/loadtest.Shop/Slow"
	list  = "/loadtest.Shop/List"
)

func shop(t testing.TB, srv *grpcctest.Server) protoreflect.ServiceDescriptor {
	t.Helper()
	d, err := srv.Files.FindDescriptorByName("loadtest.Shop")
	if err != nil {
		t.Fatal(err)
	}
	return d.(protoreflect.ServiceDescriptor)
}

func payload(t testing.TB, srv *grpcctest.Server, method, js string) *grpcc.Payload {
	t.Helper()
	md := shop(t, srv).Methods().ByName(protoreflect.Name(method))
	b, err := grpcc.Marshal(md.Input(), []byte(js))
	if err != nil {
		t.Fatal(err)
	}
	return grpcc.NewPayload(b)
}

func dial(t testing.TB, o grpcc.Options) *grpcc.Pool {
	t.Helper()
	p, err := grpcc.Dial(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func TestUnaryCallSendsTheMessageAndCountsBytes(t *testing.T) {
	srv := grpcctest.Start(t, grpcctest.Options{Record: true})
	p := dial(t, grpcc.Options{Target: srv.Addr, Connections: 1})
	pl := payload(t, srv, "Place", `{"sku": "A-1", "qty": 3, "items": [{"id": "x", "price": "12"}]}`)
	var res grpcc.Result
	p.Caller(0).Unary(context.Background(), place, pl, &res)
	if res.Code != codes.OK || res.Err != nil {
		t.Fatalf("code %v err %v", res.Code, res.Err)
	}
	if res.BytesSent != int64(len(pl.Bytes())+5) {
		t.Errorf("bytes sent %d, want %d", res.BytesSent, len(pl.Bytes())+5)
	}
	// The receipt: id "A-1" (2+3), qty 3 (2), pad 16 bytes (2+16), prefix 5.
	if res.BytesRecv != 30 || res.Messages != 1 {
		t.Errorf("received %d bytes in %d messages, want 30 in 1", res.BytesRecv, res.Messages)
	}
	calls := srv.Calls()
	if len(calls) != 1 {
		t.Fatalf("server saw %d calls", len(calls))
	}
	m := calls[0].Message
	if m["sku"] != "A-1" || m["qty"] != float64(3) {
		t.Errorf("server got %v", m)
	}
	if ua := calls[0].Metadata.Get("user-agent"); len(ua) == 0 || ua[0][:7] != "loadcap" {
		t.Errorf("user-agent %q", ua)
	}
}

func TestStatusCodes(t *testing.T) {
	srv := grpcctest.Start(t, grpcctest.Options{})
	p := dial(t, grpcc.Options{Target: srv.Addr})
	for _, tc := range []struct {
		name string
		code codes.Code
	}{
		{"ok", codes.OK},
		{"unavailable", codes.Unavailable},
		{"not found", codes.NotFound},
		{"resource exhausted", codes.ResourceExhausted},
		{"internal", codes.Internal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var res grpcc.Result
			p.Caller(0).Unary(context.Background(), fail, payload(t, srv, "Fail", `{"code": `+itoa(int(tc.code))+`}`), &res)
			if res.Code != tc.code {
				t.Errorf("code %v, want %v (err %v)", res.Code, tc.code, res.Err)
			}
			if (res.Err != nil) != (tc.code != codes.OK) {
				t.Errorf("err %v with code %v", res.Err, res.Code)
			}
		})
	}
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return string(rune('0'+i/10)) + string(rune('0'+i%10))
}

func TestDeadlineExceeded(t *testing.T) {
	srv := grpcctest.Start(t, grpcctest.Options{})
	p := dial(t, grpcc.Options{Target: srv.Addr})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var res grpcc.Result
	start := time.Now()
	p.Caller(0).Unary(ctx, slow, payload(t, srv, "Slow", `{"ms": 2000}`), &res)
	if res.Code != codes.DeadlineExceeded {
		t.Errorf("code %v, want DeadlineExceeded (err %v)", res.Code, res.Err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the call took %v with a 50ms deadline", d)
	}
}

func TestUnreachableTargetIsUnavailable(t *testing.T) {
	srv := grpcctest.Start(t, grpcctest.Options{})
	pl := payload(t, srv, "Place", `{}`)
	p := dial(t, grpcc.Options{Target: "127.0.0.1:1"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var res grpcc.Result
	p.Caller(0).Unary(ctx, place, pl, &res)
	if res.Code != codes.Unavailable {
		t.Errorf("code %v, want Unavailable (err %v)", res.Code, res.Err)
	}
}

func TestServerStreamReadsEveryMessage(t *testing.T) {
	srv := grpcctest.Start(t, grpcctest.Options{})
	p := dial(t, grpcc.Options{Target: srv.Addr})
	var res grpcc.Result
	p.Caller(0).ServerStream(context.Background(), list, payload(t, srv, "List", `{"n": 7}`), &res)
	if res.Code != codes.OK || res.Messages != 7 {
		t.Errorf("code %v, %d messages, want OK and 7 (err %v)", res.Code, res.Messages, res.Err)
	}
}

func TestTLS(t *testing.T) {
	srv := grpcctest.Start(t, grpcctest.Options{TLS: true, Record: true})
	pl := payload(t, srv, "Place", `{"sku": "tls"}`)
	for _, tc := range []struct {
		name string
		conf *tls.Config
		want codes.Code
	}{
		{"insecure skip verify", &tls.Config{InsecureSkipVerify: true}, codes.OK},
		{"verified: unknown authority", &tls.Config{}, codes.Unavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := dial(t, grpcc.Options{Target: srv.Addr, TLS: tc.conf, Authority: "localhost"})
			var res grpcc.Result
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			p.Caller(0).Unary(ctx, place, pl, &res)
			if res.Code != tc.want {
				t.Errorf("code %v, want %v (err %v)", res.Code, tc.want, res.Err)
			}
		})
	}
	if calls := srv.Calls(); len(calls) != 1 || calls[0].Authority != "localhost" {
		t.Errorf("calls %+v, want one with authority localhost", calls)
	}
}

func TestCallersSpreadOverConnections(t *testing.T) {
	srv := grpcctest.Start(t, grpcctest.Options{})
	p := dial(t, grpcc.Options{Target: srv.Addr, Connections: 4})
	pl := payload(t, srv, "Place", `{}`)
	for vu := range 8 {
		var res grpcc.Result
		p.Caller(vu).Unary(context.Background(), place, pl, &res)
		if res.Code != codes.OK {
			t.Fatalf("vu %d: %v", vu, res.Err)
		}
	}
	if n := srv.Peers(); n != 4 {
		t.Errorf("server saw %d connections, want 4", n)
	}
}

func TestReflect(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mode    int
		service string
		wantErr error
	}{
		{"v1", grpcctest.ReflectionV1, "loadtest.Shop", nil},
		{"v1alpha fallback", grpcctest.ReflectionV1AlphaOnly, "loadtest.Shop", nil},
		{"unknown service", grpcctest.ReflectionV1, "loadtest.Nope", grpcc.ErrNoService},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := grpcctest.Start(t, grpcctest.Options{Reflection: tc.mode})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			sd, err := grpcc.Reflect(ctx, grpcc.Options{Target: srv.Addr}, tc.service)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			md := sd.Methods().ByName("Place")
			if md == nil || md.Input().Fields().ByName("items").Message().FullName() != "loadtest.Item" {
				t.Fatalf("reflected service lacks Place(Order{items: Item}): %v", sd)
			}
			// The reflected schema marshals like the compiled one.
			if _, err := grpcc.Marshal(md.Input(), []byte(`{"sku": "a", "at": "2026-01-01T00:00:00Z"}`)); err != nil {
				t.Error(err)
			}
		})
	}
	t.Run("no reflection service", func(t *testing.T) {
		srv := grpcctest.Start(t, grpcctest.Options{})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := grpcc.Reflect(ctx, grpcc.Options{Target: srv.Addr}, "loadtest.Shop"); err == nil {
			t.Fatal("reflection of a server without it succeeded")
		}
	})
}

func TestMarshalerReportsBadJSON(t *testing.T) {
	srv := grpcctest.Start(t, grpcctest.Options{})
	m := grpcc.NewMarshaler(shop(t, srv).Methods().ByName("Place").Input())
	if _, err := m.Marshal(nil, []byte(`{"qty": "many"}`)); err == nil {
		t.Error("a string in an int32 field marshalled")
	}
	a, err := m.Marshal(nil, []byte(`{"sku": "a"}`))
	if err != nil {
		t.Fatal(err)
	}
	// The message is reset between calls: nothing of the last one leaks.
	b, err := m.Marshal(nil, []byte(`{"sku": "a"}`))
	if err != nil || string(a) != string(b) {
		t.Errorf("second marshal %x, first %x (%v)", b, a, err)
	}
}
