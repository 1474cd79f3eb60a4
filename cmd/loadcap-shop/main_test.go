package main

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/loadcap/loadcap/test/testkit"
)

func TestRunAllInOne(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errs testkit.SyncBuffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"--dir", t.TempDir(), "--products", "10", "--users", "10",
			"--capacity", "product=2x5ms,exp,order=3x1ms"}, &out, &errs)
	}()
	gw := regexp.MustCompile(`gateway +(http://127\.0\.0\.1:\d+)\n`)
	deadline := time.Now().Add(20 * time.Second)
	for !gw.MatchString(out.String()) || !strings.Contains(out.String(), "database") {
		if time.Now().After(deadline) {
			t.Fatalf("no gateway URL printed:\n%s\n%s", out.String(), errs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	printed := out.String()
	for _, want := range []string{
		"product   127.0.0.1:", "capacity 2x5ms,exp (400/s)", "capacity 3x1ms (3000/s)", "capacity 8x2ms (4000/s)",
		"/metrics", "provider  http://127.0.0.1:",
	} {
		if !strings.Contains(printed, want) {
			t.Errorf("output lacks %q:\n%s", want, printed)
		}
	}
	if n := strings.Count(printed, "metrics http://127.0.0.1:"); n != 6 {
		t.Errorf("%d metrics URLs printed, want 6:\n%s", n, printed)
	}
	resp, err := http.Get(gw.FindStringSubmatch(printed)[1] + "/api/products/3")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("product: HTTP %d", resp.StatusCode)
	}
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Errorf("exit %d after interrupt\n%s", c, errs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("did not stop")
	}
}

func TestRunBadFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{"bad capacity", []string{"--capacity", "order=fast"}, 2},
		{"listen without service", []string{"--listen", "127.0.0.1:0"}, 2},
		{"unknown service", []string{"--service", "shipping"}, 1},
		{"not loopback", []string{"--service", "provider", "--listen", "0.0.0.0:0"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errs testkit.SyncBuffer
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if c := run(ctx, tc.args, &out, &errs); c != tc.want {
				t.Errorf("exit %d, want %d\n%s", c, tc.want, errs.String())
			}
		})
	}
}

func TestSplitPairs(t *testing.T) {
	got := strings.Join(splitPairs("order=4x10ms,exp,queue=5,product=8x1ms"), " ")
	if got != "order=4x10ms,exp,queue=5 product=8x1ms" {
		t.Errorf("splitPairs = %s", got)
	}
}
