package stall

import (
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	b := []byte("cpu  1609872 8562 317083 3155596 6985 0 60098 84199 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n")
	s, tot, ok := parseStat(b)
	if !ok || s != 84199 || tot != 1609872+8562+317083+3155596+6985+0+60098+84199 {
		t.Errorf("steal %d total %d ok %v", s, tot, ok)
	}
	for _, bad := range []string{"", "intr 1 2 3", "cpu 1 2 3", "cpu 1 2 3 4 5 6 7 x"} {
		if _, _, ok := parseStat([]byte(bad)); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestStealShare(t *testing.T) {
	type stat struct {
		steal, total uint64
		ok           bool
	}
	seq := []stat{{100, 1000, true}, {150, 2000, true}, {150, 2000, true}, {0, 0, false}, {200, 3000, true}}
	i := 0
	c := stealCounter{read: func() (uint64, uint64, bool) { s := seq[i]; i++; return s.steal, s.total, s.ok }}
	got := []float64{c.take(), c.take(), c.take(), c.take(), c.take()}
	want := []float64{-1, 0.05, 0, -1, -1}
	for k := range want {
		if got[k] != want[k] {
			t.Errorf("takes %v, want %v", got, want)
			break
		}
	}
}

// A sleep that overran by 200 ms is a 200 ms stall; Take starts over.
func TestWatchRecordsLateWakeups(t *testing.T) {
	overrun := make(chan time.Duration, 1)
	sleep := func(d time.Duration) {
		select {
		case o := <-overrun:
			time.Sleep(d + o)
		default:
			time.Sleep(d)
		}
	}
	w := newWatch(sleep, readProcStat)
	go w.loop(time.Millisecond)
	defer w.Stop()
	time.Sleep(20 * time.Millisecond)
	w.Take()
	overrun <- 200 * time.Millisecond
	time.Sleep(300 * time.Millisecond)
	if r := w.Take(); r.Max < 30*time.Millisecond {
		t.Errorf("max stall %v after a 200 ms overrun", r.Max)
	}
	time.Sleep(20 * time.Millisecond)
	if r := w.Take(); r.Max >= 30*time.Millisecond {
		t.Errorf("max stall %v after a take and no overrun", r.Max)
	}
}
