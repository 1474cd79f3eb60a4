package quiet

import (
	"strings"
	"testing"
	"time"
)

// fakeWatch makes the attempts it lists disturbed.
func fakeWatch(t *testing.T, disturbed ...int) {
	n := 0
	old := startWatch
	startWatch = func() func() string {
		n++
		i := n
		return func() string {
			for _, d := range disturbed {
				if d == i {
					return "disturbed"
				}
			}
			return ""
		}
	}
	t.Cleanup(func() { startWatch = old })
}

func TestRetry(t *testing.T) {
	t.Run("a pass ends it", func(t *testing.T) {
		fakeWatch(t)
		n := 0
		Retry(t, 3, func(a *A) { n++ })
		if n != 1 {
			t.Errorf("%d attempts, want 1", n)
		}
	})
	t.Run("a disturbed failure is retried", func(t *testing.T) {
		fakeWatch(t, 1)
		n := 0
		Retry(t, 3, func(a *A) {
			if n++; n == 1 {
				a.Errorf("slow")
			}
		})
		if n != 2 || t.Failed() {
			t.Errorf("%d attempts (failed %v), want 2 and a pass", n, t.Failed())
		}
	})
	var inner *testing.T
	n := 0
	t.Run("every attempt disturbed: skipped", func(t *testing.T) {
		inner = t
		fakeWatch(t, 1, 2, 3)
		Retry(t, 3, func(a *A) { n++; a.Errorf("slow") })
	})
	if n != 3 || !inner.Skipped() {
		t.Errorf("%d attempts, skipped %v; want 3 and a skip", n, inner.Skipped())
	}
}

func TestDisturbance(t *testing.T) {
	for _, tc := range []struct {
		stall time.Duration
		steal float64
		want  string
	}{
		{5 * time.Millisecond, 0.01, ""},
		{5 * time.Millisecond, -1, ""},
		{150 * time.Millisecond, 0, "up to 150ms"},
		{0, 0.2, "steal reached 20%"},
	} {
		if got := disturbance(tc.stall, tc.steal); (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("disturbance(%v, %v) = %q, want %q", tc.stall, tc.steal, got, tc.want)
		}
	}
}
