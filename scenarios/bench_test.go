package scenarios

import (
	"sync/atomic"
	"testing"
)

// benchFile has one request whose path holds randInt, a CSV column and seq.
func benchFile(tb testing.TB) *File {
	f, err := Parse("examples/bench.yaml", []byte(`target: http://127.0.0.1:8080
data: {users: data/users.csv}
scenarios: {s: {executor: constant-vus, duration: 1s}}
requests:
  - name: r
    path: /product/{{randInt 1 1000}}/user/{{users.user_id}}?order={{seq}}
    body: '{"token": "{{users.token}}", "id": "{{uuid}}"}'
`))
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

func TestTemplateAppendDoesNotAllocate(t *testing.T) {
	f := benchFile(t)
	s := f.NewState(0)
	r := f.Requests[0]
	buf := make([]byte, 0, 512)
	allocs := testing.AllocsPerRun(1000, func() {
		s.Next()
		buf = r.Path.AppendTo(buf[:0], s)
		buf = r.Body.AppendTo(buf, s)
		_ = f.Scenarios[0].Pick(s)
	})
	if allocs != 0 {
		t.Errorf("AppendTo allocated %v times per request, want 0", allocs)
	}
}

func BenchmarkTemplateAppend(b *testing.B) {
	f := benchFile(b)
	s := f.NewState(0)
	p := f.Requests[0].Path
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		s.Next()
		buf = p.AppendTo(buf[:0], s)
	}
}

func BenchmarkTemplateAppendParallel(b *testing.B) {
	f := benchFile(b)
	p := f.Requests[0].Path
	b.ReportAllocs()
	var vu atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		s := f.NewState(int(vu.Add(1)))
		buf := make([]byte, 0, 256)
		for pb.Next() {
			s.Next()
			buf = p.AppendTo(buf[:0], s)
		}
	})
}

func BenchmarkParseExample(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load("examples/checkout.yaml"); err != nil {
			b.Fatal(err)
		}
	}
}
