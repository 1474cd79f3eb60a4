package loadgen

import (
	"testing"
	"time"

	"github.com/loadcap/loadcap/scenarios"
)

// The per-request work of the engine besides the network: pick from the
// mix, render the request, record the outcome. Each must allocate nothing.

func benchFile(b *testing.B) *scenarios.File {
	b.Helper()
	f, err := scenarios.Parse("bench.yaml", []byte(`
target: http://127.0.0.1:8080
scenarios:
  s: {executor: constant-vus, vus: 1, duration: 1s}
requests:
  - {name: home, path: /, weight: 3}
  - name: product
    path: /product/{{randInt 1 1000}}?ref={{pick "a" "b"}}
    headers: {X-Req: "{{seq}}"}
    weight: 2
  - name: checkout
    method: POST
    path: /checkout
    body: '{"order": {{seq 1000}}, "sku": {{randInt 1 500}}}'
`))
	if err != nil {
		b.Fatal(err)
	}
	return f
}

func BenchmarkRender(b *testing.B) {
	f := benchFile(b)
	index := map[Series]int{{"s", "home"}: 0, {"s", "product"}: 1, {"s", "checkout"}: 2}
	m := newMix(f, &f.Scenarios[0], index)
	rd := renderer{st: f.NewState(1)}
	b.ReportAllocs()
	for b.Loop() {
		rd.render(m.pick(rd.st))
	}
}

func BenchmarkRecord(b *testing.B) {
	r := NewRecorder([]Series{{"s", "home"}, {"s", "product"}, {"s", "checkout"}}, time.Minute)
	now := time.Now()
	r.Start(now)
	// The engine already holds the send and end times; so does the benchmark.
	o := Outcome{Name: 1, Latency: 3 * time.Millisecond, Service: 2 * time.Millisecond, End: now, Status: 200, BytesSent: 100, BytesRecv: 200}
	b.ReportAllocs()
	for b.Loop() {
		r.Sent(o.Name, 1, now)
		r.Record(1, &o)
	}
}

func BenchmarkRecordParallel(b *testing.B) {
	r := NewRecorder([]Series{{"s", "home"}}, time.Minute)
	r.Start(time.Now())
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		now := time.Now()
		o := Outcome{Latency: 3 * time.Millisecond, Service: 2 * time.Millisecond, End: now, Status: 200}
		id := int(now.UnixNano())
		for pb.Next() {
			r.Sent(0, id, now)
			r.Record(id, &o)
		}
	})
}

func BenchmarkSchedule(b *testing.B) {
	stages := []scenarios.RateStage{{TargetPerSec: 1e6, Duration: time.Hour}}
	s := newSchedule(0, stages)
	b.ReportAllocs()
	for b.Loop() {
		s.Next()
	}
}

// BenchmarkRotate is the once-a-second cost of closing an interval: with
// one core it is time the pacer waits, so it must stay far below 1 ms.
func BenchmarkRotate(b *testing.B) {
	r := NewRecorder([]Series{{"s", "home"}, {"s", "product"}, {"s", "checkout"}}, 91*time.Second)
	r.Start(time.Now())
	o := Outcome{Latency: 3 * time.Millisecond, Service: 2 * time.Millisecond, Status: 200}
	b.ReportAllocs()
	for b.Loop() {
		for i := 0; i < 3000; i++ {
			o.Name = i % 3
			o.Latency = time.Duration(i%500+100) * time.Microsecond
			r.Record(i, &o)
		}
		r.Rotate(time.Now())
		r.intervals = r.intervals[:0]
	}
}
