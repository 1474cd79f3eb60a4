package grpcc_test

import (
	"context"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/loadcap/loadcap/loadgen/grpcc"
	"github.com/loadcap/loadcap/loadgen/grpcc/grpcctest"
)

// BenchmarkUnary is one call on the hot path: a prebuilt payload, a
// deadline, the call and its result. The in-process server's own
// allocations are counted too (-benchmem sees the whole process).
func BenchmarkUnary(b *testing.B) {
	for _, tr := range transports {
		b.Run(tr.name, func(b *testing.B) { benchUnary(b, tr.t) })
	}
}

var transports = []struct {
	name string
	t    grpcc.Transport
}{{"h2", grpcc.TransportH2}, {"grpc-go", grpcc.TransportGRPCGo}}

func benchUnary(b *testing.B, tr grpcc.Transport) {
	srv := grpcctest.Start(b, grpcctest.Options{})
	p := dial(b, grpcc.Options{Target: srv.Addr, Connections: 1, Transport: tr})
	pl := payload(b, srv, "Fail", `{}`)
	c := p.Caller(0)
	base := context.Background()
	var res grpcc.Result
	b.ReportAllocs()
	for b.Loop() {
		ctx, cancel := context.WithTimeout(base, 0x7fffffff)
		c.Unary(ctx, fail, pl, &res)
		cancel()
		if res.Code != codes.OK {
			b.Fatal(res.Err)
		}
	}
}

// BenchmarkUnaryParallel is BenchmarkUnary with many callers sharing the
// pool's connections, as VUs do.
func BenchmarkUnaryParallel(b *testing.B) {
	for _, tr := range transports {
		b.Run(tr.name, func(b *testing.B) { benchUnaryParallel(b, tr.t) })
	}
}

func benchUnaryParallel(b *testing.B, tr grpcc.Transport) {
	srv := grpcctest.Start(b, grpcctest.Options{})
	p := dial(b, grpcc.Options{Target: srv.Addr, Connections: 2, Transport: tr})
	pl := payload(b, srv, "Fail", `{}`)
	b.ReportAllocs()
	b.SetParallelism(16)
	var vu atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		c := p.Caller(int(vu.Add(1)))
		var res grpcc.Result
		for pb.Next() {
			c.Unary(context.Background(), fail, pl, &res)
			if res.Code != codes.OK {
				b.Error(res.Err)
				return
			}
		}
	})
}

// BenchmarkMarshal is the per-call cost of a message with generators:
// JSON to wire bytes through a dynamic message.
func BenchmarkMarshal(b *testing.B) {
	srv := grpcctest.Start(b, grpcctest.Options{})
	m := grpcc.NewMarshaler(shop(b, srv).Methods().ByName("Place").Input())
	js := []byte(`{"sku": "S-123", "qty": 3, "items": [{"id": "a", "price": "120"}], "kind": "EXPRESS"}`)
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = m.Marshal(buf[:0], js); err != nil {
			b.Fatal(err)
		}
	}
}
