package reports

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loadcap/loadcap/test/testkit"
)

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
	exe := testkit.Browser(t)
	dir := t.TempDir()
	d := testkit.StartBrowser(t, exe, dir)
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
			p, err := d.NewPage(ctx, func(method string, params json.RawMessage) {
				if method == "Page.loadEventFired" {
					select {
					case loaded <- struct{}{}:
					default:
					}
					return
				}
				if s := testkit.Problem(method, params); s != "" {
					mu.Lock()
					problems = append(problems, s)
					mu.Unlock()
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close(context.Background())
			var nav struct {
				ErrorText string `json:"errorText"`
			}
			if err := d.Decode(ctx, p.Session, "Page.navigate", map[string]any{"url": "file://" + file}, &nav); err != nil {
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
			if err := p.Eval(ctx, `document.querySelector("footer") !== null`, &hasFooter); err != nil {
				t.Fatal(err)
			}
			if !hasFooter {
				t.Fatal("the loaded page has no footer: it was cut short")
			}
			var boxes []chartBox
			err = p.Eval(ctx, `Array.from(document.querySelectorAll("figure.chart")).map(f => {
				const s = f.querySelector("svg"), r = s.getBoundingClientRect();
				const ps = Array.from(s.querySelectorAll("path"));
				return {id: f.id, w: r.width, h: r.height, paths: ps.length,
					drawn: ps.filter(p => { const b = p.getBBox(); return b.width > 0 || b.height > 0; }).length};
			})`, &boxes)
			if err != nil {
				t.Fatal(err)
			}
			shot, err := p.Screenshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var readout string
			err = p.Eval(ctx, `(() => {
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
	exe := testkit.Browser(t)
	dir := t.TempDir()
	d := testkit.StartBrowser(t, exe, dir)
	file := filepath.Join(dir, "bad.html")
	html := `<!doctype html><title>bad</title><script>console.error("boom"); setTimeout(() => { throw new Error("thrown") }, 0);</script><footer></footer>`
	if err := os.WriteFile(file, []byte(html), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	var problems []string
	p, err := d.NewPage(ctx, func(method string, params json.RawMessage) {
		if s := testkit.Problem(method, params); s != "" {
			mu.Lock()
			problems = append(problems, s)
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	if _, err := d.Call(ctx, p.Session, "Page.navigate", map[string]any{"url": "file://" + file}); err != nil {
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
