package testkit

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

// This file drives a headless Chromium (or Chrome) for the tests of pages
// loadcap serves or writes: the HTML report, the live dashboard.

// Browser finds Chromium or Chrome. Without one the browser tests skip,
// unless LOADCAP_REQUIRE_BROWSER=1 (as in CI), when they fail.
func Browser(t testing.TB) string {
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

// DevTools speaks the Chrome DevTools Protocol to a headless browser over
// --remote-debugging-pipe: JSON messages, each ended by a NUL byte, written
// to the browser's fd 3 and read from its fd 4. (A CDP library would pin a
// protocol package that k6's browser module, linked into loadcap, pins at
// another version.)
type DevTools struct {
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

// StartBrowser starts exe headless with its profile in dir.
func StartBrowser(t testing.TB, exe, dir string) *DevTools {
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
	d := &DevTools{cmd: cmd, w: ourEnd, pending: map[int]chan cdpMessage{}, onEvent: map[string]func(string, json.RawMessage){}, done: make(chan struct{})}
	go d.read(fromBrowser)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = d.Call(ctx, "", "Browser.close", nil)
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
func (d *DevTools) read(r io.ReadCloser) {
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

// Call sends one command (to a page when session is set) and waits for
// its reply.
func (d *DevTools) Call(ctx context.Context, session, method string, params any) (json.RawMessage, error) {
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

// Tab is one page attached in flat mode.
type Tab struct {
	d       *DevTools
	target  string
	Session string
}

// NewPage opens a blank tab; handle gets each of its events, on the
// reading goroutine.
func (d *DevTools) NewPage(ctx context.Context, handle func(method string, params json.RawMessage)) (*Tab, error) {
	var created struct {
		TargetID string `json:"targetId"`
	}
	if err := d.Decode(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &created); err != nil {
		return nil, err
	}
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	if err := d.Decode(ctx, "", "Target.attachToTarget", map[string]any{"targetId": created.TargetID, "flatten": true}, &attached); err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.onEvent[attached.SessionID] = handle
	d.mu.Unlock()
	p := &Tab{d: d, target: created.TargetID, Session: attached.SessionID}
	for _, domain := range []string{"Runtime.enable", "Log.enable", "Page.enable"} {
		if _, err := d.Call(ctx, p.Session, domain, nil); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (d *DevTools) Decode(ctx context.Context, session, method string, params, out any) error {
	raw, err := d.Call(ctx, session, method, params)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, out)
}

// Close closes the tab.
func (p *Tab) Close(ctx context.Context) {
	_, _ = p.d.Call(ctx, "", "Target.closeTarget", map[string]any{"targetId": p.target})
	p.d.mu.Lock()
	delete(p.d.onEvent, p.Session)
	p.d.mu.Unlock()
}

// Eval evaluates expr in the page and decodes its value into out.
func (p *Tab) Eval(ctx context.Context, expr string, out any) error {
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
	if err := p.d.Decode(ctx, p.Session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &r); err != nil {
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

// Screenshot is a PNG of the whole page, beyond the window.
func (p *Tab) Screenshot(ctx context.Context) ([]byte, error) {
	var m struct {
		Content struct {
			Width  float64 `json:"width"`
			Height float64 `json:"height"`
		} `json:"cssContentSize"`
	}
	if err := p.d.Decode(ctx, p.Session, "Page.getLayoutMetrics", nil, &m); err != nil {
		return nil, err
	}
	var shot struct {
		Data string `json:"data"`
	}
	err := p.d.Decode(ctx, p.Session, "Page.captureScreenshot", map[string]any{
		"format": "png", "captureBeyondViewport": true,
		"clip": map[string]any{"x": 0, "y": 0, "width": m.Content.Width, "height": m.Content.Height, "scale": 1},
	}, &shot)
	if err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(shot.Data)
}

// Problem turns a console call, an exception or a log entry of the page
// into a complaint; "" for what is fine (info, debug, log).
func Problem(method string, params json.RawMessage) string {
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

// Navigate loads url in the tab; it returns once the browser accepted the
// navigation (not once the page loaded: watch Page.loadEventFired).
func (p *Tab) Navigate(ctx context.Context, url string) error {
	var nav struct {
		ErrorText string `json:"errorText"`
	}
	if err := p.d.Decode(ctx, p.Session, "Page.navigate", map[string]any{"url": url}, &nav); err != nil {
		return err
	}
	if nav.ErrorText != "" {
		return fmt.Errorf("navigate to %s: %s", url, nav.ErrorText)
	}
	return nil
}
