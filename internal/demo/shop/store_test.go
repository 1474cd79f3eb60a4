package shop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"
)

// stores returns the key-value stores and queues to test: in-process, and
// Redis when LOADCAP_REDIS_ADDR is set (each test under its own prefix).
func stores(t *testing.T) map[string]interface {
	kv
	queue
} {
	t.Helper()
	out := map[string]interface {
		kv
		queue
	}{"memory": struct {
		*memKV
		*memQueue
	}{newMemKV(), newMemQueue()}}
	addr := os.Getenv("LOADCAP_REDIS_ADDR")
	if addr == "" {
		if os.Getenv("LOADCAP_REQUIRE_REDIS") == "1" {
			t.Fatal("LOADCAP_REQUIRE_REDIS=1 but LOADCAP_REDIS_ADDR is not set")
		}
		return out
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := openRedis(ctx, addr, fmt.Sprintf("shoptest-%d-%d:", os.Getpid(), time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		keys, _ := r.c.Keys(ctx, r.prefix+"*").Result()
		if len(keys) > 0 {
			r.c.Del(ctx, keys...)
		}
		r.close()
	})
	out["redis"] = r
	return out
}

func TestKV(t *testing.T) {
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			if _, ok, err := s.Get(ctx, "a"); ok || err != nil {
				t.Errorf("missing key: ok %v err %v", ok, err)
			}
			if err := s.Set(ctx, "a", "1", 0); err != nil {
				t.Fatal(err)
			}
			if v, ok, _ := s.Get(ctx, "a"); !ok || v != "1" {
				t.Errorf("Get a = %q %v", v, ok)
			}
			s.Set(ctx, "short", "x", 50*time.Millisecond)
			time.Sleep(120 * time.Millisecond)
			if _, ok, _ := s.Get(ctx, "short"); ok {
				t.Error("key outlived its TTL")
			}
			for want := int64(1); want <= 3; want++ {
				if n, err := s.Incr(ctx, "seq"); n != want || err != nil {
					t.Errorf("Incr = %d %v, want %d", n, err, want)
				}
			}
			s.Raise(ctx, "seq", 2) // below: no effect
			s.Raise(ctx, "seq", 10)
			if n, _ := s.Incr(ctx, "seq"); n != 11 {
				t.Errorf("after Raise to 10, Incr = %d", n)
			}
			s.HIncr(ctx, "h", "4", 2)
			s.HIncr(ctx, "h", "4", 1)
			s.HIncr(ctx, "h", "9", 5)
			if h, _ := s.HGetAll(ctx, "h"); len(h) != 2 || h["4"] != "3" || h["9"] != "5" {
				t.Errorf("hash = %v", h)
			}
			s.Del(ctx, "h")
			if h, _ := s.HGetAll(ctx, "h"); len(h) != 0 {
				t.Errorf("hash after Del = %v", h)
			}
		})
	}
}

func TestQueue(t *testing.T) {
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			for i := 1; i <= 3; i++ {
				m := message{Headers: map[string]string{"n": fmt.Sprint(i)}, Body: []byte(fmt.Sprint(i))}
				if err := s.Publish(ctx, "t", m); err != nil {
					t.Fatal(err)
				}
			}
			s.Publish(ctx, "u", message{Body: []byte(`"u"`)})
			seen := map[string]int{}
			for i := 0; i < 4; i++ {
				topic, m, ok, err := s.Pop(ctx, []string{"t", "u"}, time.Second)
				if !ok || err != nil {
					t.Fatalf("pop %d: ok %v err %v", i, ok, err)
				}
				seen[topic]++
				if topic == "t" && string(m.Body) != fmt.Sprint(seen["t"]) {
					t.Errorf("pop %d: body %s, want %d (FIFO)", i, m.Body, seen["t"])
				}
				if topic == "t" && m.Headers["n"] != string(m.Body) {
					t.Errorf("headers %v lost", m.Headers)
				}
			}
			start := time.Now()
			if _, _, ok, err := s.Pop(ctx, []string{"t", "u"}, 100*time.Millisecond); ok || err != nil {
				t.Errorf("empty queue: ok %v err %v", ok, err)
			}
			if time.Since(start) < 90*time.Millisecond {
				t.Error("Pop on an empty queue did not wait")
			}
		})
	}
}

func TestMemQueueWakesWaiter(t *testing.T) {
	q := newMemQueue()
	got := make(chan string, 1)
	go func() {
		_, m, _, _ := q.Pop(context.Background(), []string{"t"}, 10*time.Second)
		got <- string(m.Body)
	}()
	time.Sleep(20 * time.Millisecond)
	q.Publish(context.Background(), "t", message{Body: []byte(`"hi"`)})
	select {
	case b := <-got:
		if b != `"hi"` {
			t.Errorf("got %s", b)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waiting Pop not woken by Publish")
	}
}

func TestParseCapacity(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     Capacity
		err      bool
	}{
		{"plain", "8x2ms", Capacity{Workers: 8, ServiceTime: 2 * time.Millisecond}, false},
		{"options", "4x10ms,exp,queue=100", Capacity{Workers: 4, ServiceTime: 10 * time.Millisecond, Exponential: true, QueueLimit: 100}, false},
		{"no limit", "1x0s", Capacity{Workers: 1}, false},
		{"no x", "8", Capacity{}, true},
		{"zero workers", "0x2ms", Capacity{}, true},
		{"bad duration", "8x2", Capacity{}, true},
		{"unknown option", "8x2ms,fast", Capacity{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseCapacity(tc.in)
			if (err != nil) != tc.err || got != tc.want {
				t.Fatalf("ParseCapacity(%q) = %+v, %v", tc.in, got, err)
			}
			if err == nil {
				if back, _ := ParseCapacity(got.String()); back != got {
					t.Errorf("String %q does not parse back", got.String())
				}
			}
		})
	}
	if got := (Capacity{Workers: 8, ServiceTime: 2 * time.Millisecond}).PerSec(); got != 4000 {
		t.Errorf("PerSec = %v, want 4000", got)
	}
}

func TestLimiterQueue(t *testing.T) {
	l := newLimiter(Capacity{Workers: 1, ServiceTime: time.Minute, QueueLimit: 2}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errs := make(chan error, 3)
	for i := 0; i < 3; i++ {
		go func() { errs <- l.serve(ctx) }()
	}
	deadline := time.Now().Add(5 * time.Second)
	for (len(l.slots) != 0 || l.waiting.Load() != 2) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := l.serve(ctx); !errors.Is(err, errOverloaded) {
		t.Errorf("fourth request with one worker busy and two waiting: %v, want errOverloaded", err)
	}
	if l.refused.Load() != 1 {
		t.Errorf("refused = %d", l.refused.Load())
	}
	cancel()
	for i := 0; i < 3; i++ {
		if err := <-errs; !errors.Is(err, context.Canceled) {
			t.Errorf("request ended by its context: %v", err)
		}
	}
	if len(l.slots) != 1 || l.waiting.Load() != 0 {
		t.Errorf("after: %d free workers, %d waiting", len(l.slots), l.waiting.Load())
	}
}

// BenchmarkLimiterCapacity saturates a 4 × 1 ms limiter from 16 × GOMAXPROCS goroutines
// and reports the throughput achieved against the nominal 4000/s.
func BenchmarkLimiterCapacity(b *testing.B) {
	for _, tc := range []struct {
		name string
		c    Capacity
	}{
		{"const", Capacity{Workers: 4, ServiceTime: time.Millisecond}},
		{"exp", Capacity{Workers: 4, ServiceTime: time.Millisecond, Exponential: true}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			l := newLimiter(tc.c, 1)
			b.SetParallelism(16) // 16 × GOMAXPROCS goroutines, so that some always wait
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					_ = l.serve(context.Background())
				}
			})
			rate := float64(b.N) / time.Since(start).Seconds()
			b.ReportMetric(rate, "req/s")
			b.ReportMetric(rate/tc.c.PerSec(), "of_capacity")
		})
	}
}

// Replicas multiply a service's capacity: a new one serves only after its
// start-up delay, a removed one's slots leave at once (a busy one as it
// frees), and the admin endpoint reports and sets them.
func TestLimiterReplicas(t *testing.T) {
	l := newReplicas(Capacity{Workers: 2, ServiceTime: time.Minute}, 1, 1)
	if got := len(l.slots); got != 2 {
		t.Fatalf("one replica of 2 workers: %d free slots", got)
	}
	srv := httptest.NewServer(replicasHandler(l, 200*time.Millisecond))
	defer srv.Close()
	post := func(n string) (Replicas, int) {
		resp, err := http.Post(srv.URL+"/admin/replicas?n="+n, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r Replicas
		json.NewDecoder(resp.Body).Decode(&r)
		return r, resp.StatusCode
	}
	if r, code := post("3"); code != 200 || r.Desired != 3 || r.Ready != 1 {
		t.Errorf("scale to 3: %d %+v, want desired 3 and 1 ready while the others start", code, r)
	}
	if len(l.slots) != 2 {
		t.Errorf("%d free slots before the new replicas are ready", len(l.slots))
	}
	deadline := time.Now().Add(5 * time.Second)
	for l.replicas().Ready != 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := len(l.slots); l.replicas().Ready != 3 || got != 6 {
		t.Errorf("after the start-up: %+v, %d free slots; want 3 ready, 6 slots", l.replicas(), got)
	}
	// One request holds a slot; scaling to 1 takes 4 slots out: the idle
	// ones at once, the busy one when it frees.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.serve(ctx) }()
	for len(l.slots) != 5 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if r, code := post("1"); code != 200 || r.Desired != 1 || r.Ready != 1 {
		t.Errorf("scale to 1: %d %+v", code, r)
	}
	if got := len(l.slots); got != 1 {
		t.Errorf("one replica left with one of its 2 slots busy: %d free slots, want 1", got)
	}
	cancel()
	<-done
	if got := len(l.slots); got != 2 {
		t.Errorf("the busy slot freed: %d free slots, want the remaining replica's 2", got)
	}
	if _, code := post("0"); code != http.StatusBadRequest {
		t.Errorf("scale to 0: %d, want 400", code)
	}
}

// TestBind: statements written once with $N run on MySQL with ?, and
// unchanged elsewhere.
func TestBind(t *testing.T) {
	q := `INSERT INTO orders (id, status) VALUES ($1, 'a$b'), ($12, $2)`
	for _, tt := range []struct {
		name string
		kind dbKind
		want string
	}{
		{name: "mysql", kind: mysqlDB, want: `INSERT INTO orders (id, status) VALUES (?, 'a$b'), (?, ?)`},
		{name: "postgres", kind: postgresDB, want: q},
		{name: "sqlite", kind: sqliteDB, want: q},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := (&database{kind: tt.kind}).bind(q); got != tt.want {
				t.Fatalf("bind = %q, want %q", got, tt.want)
			}
		})
	}
}
