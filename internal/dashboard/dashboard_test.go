package dashboard_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loadcap/loadcap/internal/dashboard"
	"github.com/loadcap/loadcap/internal/guard"
	"github.com/loadcap/loadcap/loadgen"
)

func start(t *testing.T) *dashboard.Server {
	t.Helper()
	s, err := dashboard.New(dashboard.Config{Addr: ":0", Title: "test", Linger: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	host, _, _ := net.SplitHostPort(s.Addr())
	if host != "127.0.0.1" {
		t.Errorf("a bare port listens on %s, want loopback", host)
	}
	return s
}

// sse reads server-sent events: name and data.
type sse struct {
	r *bufio.Reader
}

func (e *sse) next(t *testing.T) (string, string) {
	t.Helper()
	var name, data string
	for {
		line, err := e.r.ReadString('\n')
		if err != nil {
			t.Fatalf("event stream: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "" && name != "":
			return name, data
		case strings.HasPrefix(line, "event: "):
			name = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			data = line[len("data: "):]
		}
	}
}

func events(t *testing.T, s *dashboard.Server) *sse {
	t.Helper()
	resp, err := http.Get("http://" + s.Addr() + "/events")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	return &sse{bufio.NewReader(resp.Body)}
}

// TestEventsAndEnd: a page gets the run so far, each second as it closes,
// and the end with the report, which the server then serves.
func TestEventsAndEnd(t *testing.T) {
	s := start(t)
	s.Observe(loadgen.Interval{T: 0, Sent: 10, Completed: 9, Failed: 1, Latency: loadgen.Summary{P99: 12}})
	ev := events(t, s)
	name, data := ev.next(t)
	var h struct {
		Title  string           `json:"title"`
		Points []map[string]any `json:"points"`
	}
	if err := json.Unmarshal([]byte(data), &h); name != "hello" || err != nil || h.Title != "test" || len(h.Points) != 1 || h.Points[0]["sent"] != 10.0 {
		t.Fatalf("first event %s %s (%v)", name, data, err)
	}
	var iv loadgen.Interval
	iv.T, iv.Sent, iv.Failed = 1, 20, 3
	iv.Classes[0] = 3
	s.Observe(iv)
	name, data = ev.next(t)
	if name != "point" || !strings.Contains(data, `"t":1,`) || !strings.Contains(data, `"sent":20`) || !strings.Contains(data, `"classes":{"`) {
		t.Fatalf("second event %s %s", name, data)
	}
	report := filepath.Join(t.TempDir(), "report.html")
	if err := os.WriteFile(report, []byte("<!doctype html><title>the report</title>"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code := get(t, "http://"+s.Addr()+"/report"); code != http.StatusNotFound {
		t.Errorf("GET /report before the end: %d", code)
	}
	s.End(dashboard.Outcome{Verdict: "passed", Code: 0, Report: report})
	for {
		name, data = ev.next(t)
		if name == "end" {
			break
		}
	}
	if data != `{"verdict":"passed","code":0,"report":"report"}` {
		t.Errorf("end %s", data)
	}
	if code := get(t, "http://"+s.Addr()+"/report"); code != http.StatusOK {
		t.Errorf("GET /report after the end: %d", code)
	}
}

func get(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestStopNeedsToken: the stop button reaches the guard's hot switch only
// with the token, and only on a drill.
func TestStopNeedsToken(t *testing.T) {
	s := start(t)
	post := func(token string) int {
		req, _ := http.NewRequest(http.MethodPost, "http://"+s.Addr()+"/stop", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(s.Token()); code != http.StatusNotFound {
		t.Errorf("a run without a guard: %d, want 404", code)
	}
	g, err := guard.New(guard.Config{})
	if err != nil {
		t.Fatal(err)
	}
	stopped := make(chan guard.Breach, 1)
	go func() { _ = g.Run(context.Background(), func(b guard.Breach) { stopped <- b }) }()
	s.Guard(g.Status, g.Stop)
	for _, bad := range []string{"", "wrong", s.Token() + "x"} {
		if code := post(bad); code != http.StatusForbidden {
			t.Errorf("token %q: %d, want 403", bad, code)
		}
	}
	if len(stopped) != 0 {
		t.Fatal("a wrong token stopped the drill")
	}
	if !strings.HasSuffix(s.URL(), "/#token="+s.Token()) || len(s.Token()) < 20 {
		t.Errorf("URL %s, token %q", s.URL(), s.Token())
	}
	if code := post(s.Token()); code != http.StatusOK {
		t.Fatalf("the right token: %d", code)
	}
	select {
	case b := <-stopped:
		if b.Kind != guard.KindSwitch || !strings.Contains(b.Reason, "the dashboard's stop button from 127.0.0.1:") {
			t.Errorf("breach %+v", b)
		}
	default:
		t.Fatal("the stop answered before the guard stopped the drill")
	}
	if code := post(s.Token()); code != http.StatusConflict {
		t.Errorf("a second stop: %d, want 409", code)
	}
}

// TestLoopbackOnlyAnswersLoopbackNames: a page elsewhere whose name was
// re-pointed at 127.0.0.1 cannot read a loopback dashboard.
func TestLoopbackOnlyAnswersLoopbackNames(t *testing.T) {
	s := start(t)
	for host, want := range map[string]int{"evil.example:80": http.StatusForbidden, s.Addr(): http.StatusOK, "localhost:1": http.StatusOK} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+s.Addr()+"/", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %s: %d, want %d", host, resp.StatusCode, want)
		}
	}
}
