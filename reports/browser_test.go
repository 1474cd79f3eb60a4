package reports

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
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
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox, // CI runs as root
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(filepath.Join(dir, "profile")),
	)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	if err := chromedp.Do(bctx); err != nil { // starts the browser, with no timeout
		t.Fatal(err)
	}
	for name, in := range inputs(t) {
		t.Run(name, func(t *testing.T) {
			page := filepath.Join(dir, name+".html")
			if err := os.WriteFile(page, writeHTML(t, in), 0o644); err != nil {
				t.Fatal(err)
			}
			tab, cancelTab := chromedp.NewContext(bctx)
			defer cancelTab()
			// Every console message and exception of the page, from before
			// it loads.
			var mu sync.Mutex
			var problems []string
			msgs := chromedp.Console(tab)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for m, err := range msgs {
					if err != nil {
						return
					}
					if m.IsException() || m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleWarning {
						mu.Lock()
						problems = append(problems, m.String())
						mu.Unlock()
					}
				}
			}()
			ctx, cancelT := context.WithTimeout(tab, 60*time.Second)
			defer cancelT()
			err := chromedp.Do(ctx, chromedp.Navigate("file://"+page), chromedp.WaitReady(chromedp.CSS("footer")))
			if err != nil {
				t.Fatal(err)
			}
			boxes, err := chromedp.Run(ctx, chromedp.Evaluate[[]chartBox](`Array.from(document.querySelectorAll("figure.chart")).map(f => {
				const s = f.querySelector("svg"), r = s.getBoundingClientRect();
				const ps = Array.from(s.querySelectorAll("path"));
				return {id: f.id, w: r.width, h: r.height, paths: ps.length,
					drawn: ps.filter(p => { const b = p.getBBox(); return b.width > 0 || b.height > 0; }).length};
			})`))
			if err != nil {
				t.Fatal(err)
			}
			shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
			if err != nil {
				t.Fatal(err)
			}
			readout, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => {
				const f = document.querySelector("figure.chart"); if (!f) return "";
				const s = f.querySelector("svg"), r = s.getBoundingClientRect();
				s.dispatchEvent(new PointerEvent("pointermove", {clientX: r.left + r.width * 0.5, clientY: r.top + r.height * 0.5, bubbles: true}));
				return f.querySelector("output").textContent;
			})()`))
			if err != nil {
				t.Fatal(err)
			}
			// Let late messages arrive, then stop listening.
			if err := chromedp.Do(ctx, chromedp.Sleep(100*time.Millisecond)); err != nil {
				t.Fatal(err)
			}
			cancelTab()
			<-done
			mu.Lock()
			for _, p := range problems {
				t.Error(p)
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
			t.Logf("%d charts; screenshot %s", len(boxes), png)
			if d := os.Getenv("LOADCAP_SCREENSHOTS"); d != "" {
				_ = os.WriteFile(filepath.Join(d, name+".png"), shot, 0o644)
			}
		})
	}
}
