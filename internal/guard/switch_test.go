package guard_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/loadcap/loadcap/internal/guard"
)

func TestSwitchFile(t *testing.T) {
	tests := []struct {
		name    string
		flipAt  time.Duration // when the operator creates the file; <0: before the start
		stopMax time.Duration // the stop comes at most this long after the flip
	}{
		{name: "flipped during the drill", flipAt: 3300 * time.Millisecond, stopMax: guard.DefaultSwitchPoll},
		{name: "left over from before stops at once", flipAt: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				file := filepath.Join(t.TempDir(), "STOP")
				touch := func() {
					if err := os.WriteFile(file, nil, 0o600); err != nil {
						t.Error(err)
					}
				}
				if tc.flipAt < 0 {
					touch()
				}
				cfg := guard.Config{Switch: guard.Switch{File: file},
					Rules: []guard.Rule{{SLO: "error<1%"}}}
				r := runFor(t, cfg, time.Minute, func(*guard.Guard) {
					if tc.flipAt >= 0 {
						time.Sleep(tc.flipAt)
						touch()
					}
				})
				if len(r.stops) != 1 {
					t.Fatalf("stop called %d times, want once", len(r.stops))
				}
				flip := max(tc.flipAt, 0)
				if late := r.after[0] - flip; late < 0 || late > tc.stopMax {
					t.Errorf("stopped %v after the flip, want within %v", late, tc.stopMax)
				}
				if b := r.stops[0]; b.Kind != guard.KindSwitch || !strings.Contains(b.Reason, file) {
					t.Errorf("breach %+v", b)
				}
			})
		})
	}
}

func TestCheckFindsLeftOverSwitchFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "STOP")
	g, err := guard.New(guard.Config{Switch: guard.Switch{File: file}})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Check(context.Background()); err != nil {
		t.Errorf("no file: %v", err)
	}
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "STOP exists") {
		t.Errorf("left-over file: %v", err)
	}
}

// TestSwitchHTTP drives the endpoint over real loopback HTTP.
func TestSwitchHTTP(t *testing.T) {
	g, err := guard.New(guard.Config{
		Every:  50 * time.Millisecond,
		Switch: guard.Switch{Listen: ":0"}, // a bare port: loopback only
		Rules:  []guard.Rule{{Name: "drill", SLO: "p(99)<500ms"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	host, _, _ := net.SplitHostPort(g.Addr())
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		t.Fatalf("listening on %s, want loopback", g.Addr())
	}
	base := "http://" + g.Addr()
	var calls atomic.Int32
	var stoppedAt atomic.Int64
	done := make(chan error, 1)
	go func() {
		done <- g.Run(context.Background(), func(b guard.Breach) {
			calls.Add(1)
			stoppedAt.Store(time.Now().UnixNano())
			if b.Kind != guard.KindSwitch || !strings.Contains(b.Reason, "sale is off") {
				t.Errorf("breach %+v", b)
			}
		})
	}()

	// GET / shows the rules.
	var st guard.Status
	if code := getJSON(t, base+"/", &st); code != http.StatusOK || !st.Running || len(st.Rules) != 1 || st.Rules[0].Name != "drill" {
		t.Fatalf("GET /: %d %+v", code, st)
	}
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/stop", http.StatusMethodNotAllowed},
		{http.MethodPost, "/nothing", http.StatusNotFound},
	} {
		req, _ := http.NewRequest(tc.method, base+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want || calls.Load() != 0 {
			t.Errorf("%s %s: %d, %d stops; want %d and no stop", tc.method, tc.path, resp.StatusCode, calls.Load(), tc.want)
		}
	}

	// POST /stop answers once the drill is told to stop.
	sent := time.Now()
	resp, err := http.Post(base+"/stop?reason=sale+is+off", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || calls.Load() != 1 {
		t.Fatalf("POST /stop: %d, %d stops when it answered: %s", resp.StatusCode, calls.Load(), body)
	}
	t.Logf("POST /stop → stop called in %v", time.Unix(0, stoppedAt.Load()).Sub(sent))
	if err := json.Unmarshal(body, &st); err != nil || st.Stopped == nil || st.Stopped.Kind != guard.KindSwitch {
		t.Errorf("answer %s: %v", body, err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the stop")
	}
	// Run closed the endpoint: nothing listens there any more.
	if resp, err := http.Post(base+"/stop", "", nil); err == nil {
		resp.Body.Close()
		t.Errorf("the endpoint still answers after Run returned: %d", resp.StatusCode)
	}
	if calls.Load() != 1 {
		t.Errorf("stop called %d times", calls.Load())
	}
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode
}

// TestStopWithoutEndpoint flips the switch from another front end (the
// dashboard's button) on a guard that has no rules and no endpoint: the
// drill stops once, with the front end's words, and a second flip is
// refused.
func TestStopWithoutEndpoint(t *testing.T) {
	g, err := guard.New(guard.Config{})
	if err != nil {
		t.Fatal(err)
	}
	stops := make(chan guard.Breach, 2)
	done := make(chan error, 1)
	go func() { done <- g.Run(context.Background(), func(b guard.Breach) { stops <- b }) }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.Stop(ctx, "the dashboard's stop button from 127.0.0.1:5000", "sale is off"); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-stops:
		if b.Kind != guard.KindSwitch || b.Reason != "hot switch: the dashboard's stop button from 127.0.0.1:5000: sale is off" {
			t.Errorf("breach %+v", b)
		}
	default:
		t.Fatal("Stop returned before the drill's stop function was called")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := g.Stop(ctx, "again", ""); !errors.Is(err, guard.ErrStopped) {
		t.Errorf("a second Stop: %v, want ErrStopped", err)
	}
	if len(stops) != 0 {
		t.Errorf("stop called again")
	}
}
