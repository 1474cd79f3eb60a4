package reports

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// browser finds Chromium or Chrome. Without one the browser tests skip,
// unless LOADCAP_REQUIRE_BROWSER=1 (as in CI), when they fail.
func browser(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("LOADCAP_REQUIRE_BROWSER") == "1" {
		t.Fatal("no chromium, chromium-browser or google-chrome on PATH, and LOADCAP_REQUIRE_BROWSER=1")
	}
	t.Skip("no chromium, chromium-browser or google-chrome on PATH")
	return ""
}

// devtools speaks the Chrome DevTools Protocol to a headless browser over
// --remote-debugging-pipe: JSON messages, each ended by a NUL byte, written
// to the browser's fd 3 and read from its fd 4. (A CDP library would pin a
// protocol package that k6's browser module, linked into loadcap, pins at
// another version.)
type devtools struct {
	cmd *exec.Cmd
	w   io.WriteCloser

	mu      sync.Mutex
	next    int
	pending map[int]chan cdpMessage
	onEvent map[string]func(method string, params json.RawMessage) // by session id
	readErr error
	done    chan struct{}
}

// cdpMessage is a command's reply or an event.
type cdpMessage struct {
	ID        int             `json:"id"`
	Method    string          `json:"method"`
	Params    json.RawMessage `json:"params"`
	Result    json.RawMessage `json:"result"`
	SessionID string          `json:"sessionId"`
	Error     *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// startBrowser starts exe headless with its profile in dir.
func startBrowser(t *testing.T, exe, dir string) *devtools {
	t.Helper()
	toBrowser, ourEnd, err := os.Pipe() // the browser reads commands at fd 3
	if err != nil {
		t.Fatal(err)
	}
	fromBrowser, theirEnd, err := os.Pipe() // and writes replies to fd 4
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe,
		"--headless", "--remote-debugging-pipe",
		"--no-sandbox", // CI runs as root
		"--disable-gpu", "--window-size=1280,900", "--hide-scrollbars",
		"--user-data-dir="+filepath.Join(dir, "profile"),
		"--no-first-run", "--no-default-browser-check", "--disable-extensions",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"about:blank")
	cmd.ExtraFiles = []*os.File{toBrowser, theirEnd}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	toBrowser.Close()
	theirEnd.Close()
	d := &devtools{cmd: cmd, w: ourEnd, pending: map[int]chan cdpMessage{}, onEvent: map[string]func(string, json.RawMessage){}, done: make(chan struct{})}
	go d.read(fromBrowser)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = d.call(ctx, "", "Browser.close", nil)
		ourEnd.Close()
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("browser's stderr:\n%s", stderr.String())
		}
	})
	return d
}

// read delivers replies to their callers and events to their session's
// handler until the browser closes its end.
func (d *devtools) read(r io.ReadCloser) {
	defer r.Close()
	br := bufio.NewReaderSize(r, 1<<20)
	var err error
	for {
		var line []byte
		line, err = br.ReadBytes(0)
		if err != nil {
			break
		}
		var m cdpMessage
		if err = json.Unmarshal(line[:len(line)-1], &m); err != nil {
			break
		}
		d.mu.Lock()
		if m.ID != 0 {
			if ch := d.pending[m.ID]; ch != nil {
				delete(d.pending, m.ID)
				ch <- m
			}
		} else if h := d.onEvent[m.SessionID]; h != nil {
			h(m.Method, m.Params)
		}
		d.mu.Unlock()
	}
	d.mu.Lock()
	d.readErr = fmt.Errorf("browser connection: %w", err)
	d.mu.Unlock()
	close(d.done)
}

// call sends one command (to a page when session is set) and waits for
// its reply.
func (d *devtools) call(ctx context.Context, session, method string, params any) (json.RawMessage, error) {
	d.mu.Lock()
	if d.readErr != nil {
		d.mu.Unlock()
		return nil, d.readErr
	}
	d.next++
	id := d.next
	ch := make(chan cdpMessage, 1)
	d.pending[id] = ch
	d.mu.Unlock()
	msg, err := json.Marshal(struct {
		ID        int    `json:"id"`
		Method    string `json:"method"`
		Params    any    `json:"params,omitempty"`
		SessionID string `json:"sessionId,omitempty"`
	}{id, method, params, session})
	if err != nil {
		return nil, err
	}
	if _, err := d.w.Write(append(msg, 0)); err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	select {
	case m := <-ch:
		if m.Error != nil {
			return nil, fmt.Errorf("%s: %s (%d)", method, m.Error.Message, m.Error.Code)
		}
		return m.Result, nil
	case <-d.done:
		return nil, fmt.Errorf("%s: %w", method, d.readErr)
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

// tab is one page attached in flat mode.
type tab struct {
	d       *devtools
	target  string
	session string
}

// newPage opens a blank tab; handle gets each of its events, on the
// reading goroutine.
func (d *devtools) newPage(ctx context.Context, handle func(method string, params json.RawMessage)) (*tab, error) {
	var created struct {
		TargetID string `json:"targetId"`
	}
	if err := d.decode(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &created); err != nil {
		return nil, err
	}
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	if err := d.decode(ctx, "", "Target.attachToTarget", map[string]any{"targetId": created.TargetID, "flatten": true}, &attached); err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.onEvent[attached.SessionID] = handle
	d.mu.Unlock()
	p := &tab{d: d, target: created.TargetID, session: attached.SessionID}
	for _, domain := range []string{"Runtime.enable", "Log.enable", "Page.enable"} {
		if _, err := d.call(ctx, p.session, domain, nil); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (d *devtools) decode(ctx context.Context, session, method string, params, out any) error {
	raw, err := d.call(ctx, session, method, params)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, out)
}

// close closes the tab.
func (p *tab) close(ctx context.Context) {
	_, _ = p.d.call(ctx, "", "Target.closeTarget", map[string]any{"targetId": p.target})
	p.d.mu.Lock()
	delete(p.d.onEvent, p.session)
	p.d.mu.Unlock()
}

// eval evaluates expr in the page and decodes its value into out.
func (p *tab) eval(ctx context.Context, expr string, out any) error {
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := p.d.decode(ctx, p.session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &r); err != nil {
		return err
	}
	if r.Exception != nil {
		return fmt.Errorf("evaluate: %s %s", r.Exception.Text, r.Exception.Exception.Description)
	}
	if len(r.Result.Value) == 0 {
		return errors.New("evaluate: no value")
	}
	return json.Unmarshal(r.Result.Value, out)
}

// screenshot is a PNG of the whole page, beyond the window.
func (p *tab) screenshot(ctx context.Context) ([]byte, error) {
	var m struct {
		Content struct {
			Width  float64 `json:"width"`
			Height float64 `json:"height"`
		} `json:"cssContentSize"`
	}
	if err := p.d.decode(ctx, p.session, "Page.getLayoutMetrics", nil, &m); err != nil {
		return nil, err
	}
	var shot struct {
		Data string `json:"data"`
	}
	err := p.d.decode(ctx, p.session, "Page.captureScreenshot", map[string]any{
		"format": "png", "captureBeyondViewport": true,
		"clip": map[string]any{"x": 0, "y": 0, "width": m.Content.Width, "height": m.Content.Height, "scale": 1},
	}, &shot)
	if err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(shot.Data)
}

// problem turns a console call, an exception or a log entry of the page
// into a complaint; "" for what is fine (info, debug, log).
func problem(method string, params json.RawMessage) string {
	switch method {
	case "Runtime.consoleAPICalled":
		var c struct {
			Type string `json:"type"`
			Args []struct {
				Value       any    `json:"value"`
				Description string `json:"description"`
			} `json:"args"`
		}
		if json.Unmarshal(params, &c) != nil {
			return "unreadable console message"
		}
		if c.Type != "error" && c.Type != "warning" && c.Type != "assert" {
			return ""
		}
		var parts []string
		for _, a := range c.Args {
			if a.Value != nil {
				parts = append(parts, fmt.Sprint(a.Value))
			} else {
				parts = append(parts, a.Description)
			}
		}
		return "console." + c.Type + ": " + strings.Join(parts, " ")
	case "Runtime.exceptionThrown":
		var e struct {
			Details struct {
				Text      string `json:"text"`
				Exception struct {
					Description string `json:"description"`
				} `json:"exception"`
			} `json:"exceptionDetails"`
		}
		_ = json.Unmarshal(params, &e)
		return "exception: " + e.Details.Text + " " + e.Details.Exception.Description
	case "Log.entryAdded":
		var l struct {
			Entry struct {
				Level string `json:"level"`
				Text  string `json:"text"`
				URL   string `json:"url"`
			} `json:"entry"`
		}
		_ = json.Unmarshal(params, &l)
		if l.Entry.Level == "error" || l.Entry.Level == "warning" {
			return "log " + l.Entry.Level + ": " + l.Entry.Text + " " + l.Entry.URL
		}
	}
	return ""
}

// chartBox is what the page says about one chart's drawing.
type chartBox struct {
	ID     string  `json:"id"`
	Width  float64 `json:"w"`
	Height float64 `json:"h"`
	Paths  int     `json:"paths"`
	Drawn  int     `json:"drawn"` // paths with a visible, non-empty bounding box
}

// TestReportInBrowser opens each report in headless Chromium from a
// file:// URL: no console error or exception, every chart laid out with a
// size and drawn paths, the hover readout working, and a full-page
// screenshot for a person to look at.
func TestReportInBrowser(t *testing.T) {
	exe := browser(t)
	dir := t.TempDir()
	d := startBrowser(t, exe, dir)
	for name, in := range inputs(t) {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(dir, name+".html")
			if err := os.WriteFile(file, writeHTML(t, in), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			// Every console message, exception and log entry of the page,
			// from before it loads.
			var mu sync.Mutex
			var problems []string
			loaded := make(chan struct{}, 1)
			p, err := d.newPage(ctx, func(method string, params json.RawMessage) {
				if method == "Page.loadEventFired" {
					select {
					case loaded <- struct{}{}:
					default:
					}
					return
				}
				if s := problem(method, params); s != "" {
					mu.Lock()
					problems = append(problems, s)
					mu.Unlock()
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			defer p.close(context.Background())
			var nav struct {
				ErrorText string `json:"errorText"`
			}
			if err := d.decode(ctx, p.session, "Page.navigate", map[string]any{"url": "file://" + file}, &nav); err != nil {
				t.Fatal(err)
			}
			if nav.ErrorText != "" {
				t.Fatalf("navigate: %s", nav.ErrorText)
			}
			select {
			case <-loaded:
			case <-ctx.Done():
				t.Fatal("the page did not load in 60 s")
			}
			var hasFooter bool
			if err := p.eval(ctx, `document.querySelector("footer") !== null`, &hasFooter); err != nil {
				t.Fatal(err)
			}
			if !hasFooter {
				t.Fatal("the loaded page has no footer: it was cut short")
			}
			var boxes []chartBox
			err = p.eval(ctx, `Array.from(document.querySelectorAll("figure.chart")).map(f => {
				const s = f.querySelector("svg"), r = s.getBoundingClientRect();
				const ps = Array.from(s.querySelectorAll("path"));
				return {id: f.id, w: r.width, h: r.height, paths: ps.length,
					drawn: ps.filter(p => { const b = p.getBBox(); return b.width > 0 || b.height > 0; }).length};
			})`, &boxes)
			if err != nil {
				t.Fatal(err)
			}
			shot, err := p.screenshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var readout string
			err = p.eval(ctx, `(() => {
				const f = document.querySelector("figure.chart"); if (!f) return "";
				const s = f.querySelector("svg"), r = s.getBoundingClientRect();
				s.dispatchEvent(new PointerEvent("pointermove", {clientX: r.left + r.width * 0.5, clientY: r.top + r.height * 0.5, bubbles: true}));
				return f.querySelector("output").textContent;
			})()`, &readout)
			if err != nil {
				t.Fatal(err)
			}
			// Let late messages arrive.
			time.Sleep(100 * time.Millisecond)
			mu.Lock()
			for _, s := range problems {
				t.Error(s)
			}
			mu.Unlock()
			if len(boxes) == 0 {
				t.Fatal("no chart on the page")
			}
			for _, b := range boxes {
				if b.Width < 100 || b.Height < 40 {
					t.Errorf("%s is laid out %vx%v", b.ID, b.Width, b.Height)
				}
				if b.Drawn < 5 {
					t.Errorf("%s has %d drawn paths of %d", b.ID, b.Drawn, b.Paths)
				}
			}
			if !strings.HasPrefix(readout, "at ") {
				t.Errorf("hovering the first chart reads %q", readout)
			}
			png := filepath.Join(dir, name+".png")
			if err := os.WriteFile(png, shot, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("%d charts; screenshot %s (%d bytes)", len(boxes), png, len(shot))
			if d := os.Getenv("LOADCAP_SCREENSHOTS"); d != "" {
				_ = os.WriteFile(filepath.Join(d, name+".png"), shot, 0o644)
			}
		})
	}
}

// TestBrowserSeesConsoleErrors makes sure the check above can fail: a page
// that logs an error and throws is reported.
func TestBrowserSeesConsoleErrors(t *testing.T) {
	exe := browser(t)
	dir := t.TempDir()
	d := startBrowser(t, exe, dir)
	file := filepath.Join(dir, "bad.html")
	html := `<!doctype html><title>bad</title><script>console.error("boom"); setTimeout(() => { throw new Error("thrown") }, 0);</script><footer></footer>`
	if err := os.WriteFile(file, []byte(html), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	var problems []string
	p, err := d.newPage(ctx, func(method string, params json.RawMessage) {
		if s := problem(method, params); s != "" {
			mu.Lock()
			problems = append(problems, s)
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.close(context.Background())
	if _, err := d.call(ctx, p.session, "Page.navigate", map[string]any{"url": "file://" + file}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		got := strings.Join(problems, "\n")
		mu.Unlock()
		if strings.Contains(got, "console.error: boom") && strings.Contains(got, "thrown") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s the page's problems are %q; want the console error and the exception", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
