package dashboard

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/loadcap/loadcap/loadgen"
)

// TestStalledPageDoesNotSlowTheLoad: a browser that connected and then
// reads nothing (its socket buffers fill) costs Observe nothing, and is
// dropped.
func TestStalledPageDoesNotSlowTheLoad(t *testing.T) {
	s, err := New(Config{Addr: ":0", Buffer: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	conn, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); s.hub.len() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the page did not connect")
		}
	}
	// Seconds with every error class, so that the socket's buffers fill.
	var iv loadgen.Interval
	for c := range iv.Classes {
		iv.Classes[c] = 1
	}
	const n = 20000
	var slowest time.Duration
	start := time.Now()
	for i := range n {
		iv.T = i
		t0 := time.Now()
		s.Observe(iv)
		slowest = max(slowest, time.Since(t0))
	}
	t.Logf("%d intervals in %v, the slowest %v", n, time.Since(start), slowest)
	if slowest > time.Second {
		t.Errorf("an interval waited %v for a stalled page", slowest)
	}
	if s.hub.len() != 0 || s.hub.dropped != 1 {
		t.Errorf("%d pages watching, %d dropped; want the stalled page dropped", s.hub.len(), s.hub.dropped)
	}
}

// TestHistoryKeepsTheLastSeconds: a page that connects late gets the last
// History seconds, in order.
func TestHistoryKeepsTheLastSeconds(t *testing.T) {
	s, err := New(Config{Addr: ":0", History: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 10 {
		s.Observe(loadgen.Interval{T: i})
	}
	resp, err := http.Get("http://" + s.Addr() + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			var h hello
			if err := json.Unmarshal([]byte(data), &h); err != nil {
				t.Fatal(err)
			}
			var ts []int
			for _, p := range h.Points {
				ts = append(ts, p.T)
			}
			if fmt.Sprint(ts) != "[7 8 9]" {
				t.Errorf("a late page gets seconds %v, want [7 8 9]", ts)
			}
			return
		}
	}
}
