package chart

import (
	"bytes"
	"errors"
	"math"
	"regexp"
	"strings"
	"testing"

	"github.com/loadcap/loadcap/test/testkit"
)

func seq(n int, f func(i int) float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

// charts are small fixed inputs covering every feature; their SVG is
// pinned by golden files.
func charts() map[string]*Chart {
	t := seq(120, func(i int) float64 { return float64(i) })
	p50 := seq(120, func(i int) float64 { return 4 + math.Sin(float64(i)/7) })
	p99 := seq(120, func(i int) float64 {
		if i >= 60 && i < 64 {
			return math.NaN() // no requests: a gap
		}
		return 20 + 10*math.Sin(float64(i)/5) + float64(i)/2
	})
	n := seq(8, func(i int) float64 { return math.Exp2(float64(i)) })
	x := seq(8, func(i int) float64 { return 1000 * n[i] / (1 + 0.05*(n[i]-1) + 0.001*n[i]*(n[i]-1)) })
	curveN := seq(100, func(i int) float64 { return 1 + float64(i)*1.5 })
	curveX := seq(100, func(i int) float64 {
		v := curveN[i]
		return 1000 * v / (1 + 0.05*(v-1) + 0.001*v*(v-1))
	})
	pct := []float64{0, 50, 90, 99, 99.9}
	px := seq(len(pct), func(i int) float64 { return PercentileX(pct[i]) })
	return map[string]*Chart{
		"latency_log": {
			Title:  "Latency <over> time & more",
			X:      Axis{Label: "seconds since start"},
			Y:      Axis{Label: "ms", Log: true},
			Series: []Series{{Name: "p50", X: t, Y: p50}, {Name: "p99", X: t, Y: p99}},
			HLines: []Ref{{At: 100, Label: "p(99)<100"}},
			VLines: []Ref{{At: 30, Label: "2"}, {At: 90, Label: "3"}},
		},
		"usl": {
			Title: "USL",
			X:     Axis{Label: "concurrency", Zero: true},
			Y:     Axis{Label: "req/s", Zero: true},
			Series: []Series{
				{Name: "measured", X: n, Y: x, Kind: Points},
				{Name: "fit", X: curveN, Y: curveX, Dashed: true},
			},
		},
		"percentiles": {
			X:      Axis{Label: "percentile", Log: true, Ticks: PercentileTicks},
			Y:      Axis{Label: "ms", Zero: true},
			Series: []Series{{Name: "all", X: px, Y: []float64{1, 2, 5, 30, 80}, Kind: LinePoints}},
		},
		"empty": {Title: "nothing yet", Y: Axis{Log: true}},
	}
}

func TestRenderGolden(t *testing.T) {
	for name, c := range charts() {
		t.Run(name, func(t *testing.T) {
			a, err := Render(c)
			if err != nil {
				t.Fatal(err)
			}
			b, err := Render(c)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a.Markup, b.Markup) {
				t.Fatal("two renders of the same chart differ")
			}
			testkit.Golden(t, "testdata/"+name+".svg.golden", a.Markup)
		})
	}
}

func TestRenderIsSelfContained(t *testing.T) {
	for name, c := range charts() {
		t.Run(name, func(t *testing.T) {
			s, err := Render(c)
			if err != nil {
				t.Fatal(err)
			}
			m := string(s.Markup)
			if !strings.HasPrefix(m, `<svg class="chart" viewBox="0 0 640 260"`) || !strings.HasSuffix(strings.TrimSpace(m), "</svg>") {
				t.Errorf("not one inline <svg> element: %.120s … %.40s", m, m[max(0, len(m)-40):])
			}
			for _, bad := range []string{"<?xml", "http:", "https:", "url(", "<image", "xlink"} {
				if strings.Contains(m, bad) {
					t.Errorf("markup contains %q", bad)
				}
			}
			if c.Title != "" && !strings.Contains(m, `aria-label="`) {
				t.Error("no accessible name")
			}
		})
	}
}

func TestRenderEscapesText(t *testing.T) {
	c := charts()["latency_log"]
	s, err := Render(c)
	if err != nil {
		t.Fatal(err)
	}
	m := string(s.Markup)
	if strings.Contains(m, "<over>") || !strings.Contains(m, "&lt;over&gt; time &amp; more") {
		t.Error("title not escaped in the text and the aria-label")
	}
}

func TestRenderDrawsEverySeries(t *testing.T) {
	c := charts()["latency_log"]
	s, err := Render(c)
	if err != nil {
		t.Fatal(err)
	}
	m := string(s.Markup)
	// The two palette colours of p50 and p99 stroke lines; the gap splits
	// p99 into two paths; the SLO line is dashed in RefColor.
	for _, want := range []string{"stroke:" + Hex(Palette[0]), "stroke:" + Hex(Palette[1]), "stroke:" + Hex(RefColor), "p(99)&lt;100", ">p50<", ">p99<"} {
		if !strings.Contains(m, want) {
			t.Errorf("markup lacks %q", want)
		}
	}
	p99Paths := regexp.MustCompile(`<path d="M[^"]*" style="fill:none;stroke:`+Hex(Palette[1])).FindAllString(m, -1)
	// One legend thumbnail plus the two segments either side of the gap.
	if len(p99Paths) != 3 {
		t.Errorf("p99 drawn as %d paths, want 3 (legend + two segments around the gap)", len(p99Paths))
	}
	if s.Points != 120+116 {
		t.Errorf("points drawn = %d, want 236", s.Points)
	}
	f := s.Frame
	if !(f.Left > 0 && f.Right < f.Width && f.Top > 0 && f.Bottom < f.Height && f.Left < f.Right && f.Top < f.Bottom) {
		t.Errorf("frame %+v is not inside the chart", f)
	}
	if !f.LogY || f.YMin > 3.01 || f.YMax < 100 {
		t.Errorf("y range %v…%v must hold the data (≥3) and the SLO line (100)", f.YMin, f.YMax)
	}
}

func TestRenderDownsamples(t *testing.T) {
	x := seq(100_000, func(i int) float64 { return float64(i) })
	y := seq(100_000, func(i int) float64 { return math.Sin(float64(i) / 500) })
	y[54_321] = 50 // a spike must survive
	s, err := Render(&Chart{Series: []Series{{Name: "s", X: x, Y: y}}, MaxPoints: 500})
	if err != nil {
		t.Fatal(err)
	}
	if s.Points > 500 {
		t.Errorf("drew %d points, want ≤ 500", s.Points)
	}
	if s.Frame.YMax < 50 {
		t.Errorf("the spike was lost: y max %v", s.Frame.YMax)
	}
	if len(s.Markup) > 40_000 {
		t.Errorf("markup %d bytes for 500 points", len(s.Markup))
	}
}

func TestRenderMismatch(t *testing.T) {
	_, err := Render(&Chart{Series: []Series{{Name: "bad", X: []float64{1, 2}, Y: []float64{1}}}})
	if !errors.Is(err, ErrMismatch) {
		t.Errorf("err = %v, want ErrMismatch", err)
	}
}

func TestLTTB(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name       string
		x, y       []float64
		n          int
		wantX      []float64
		wantPoints int
	}{
		{"short series unchanged", []float64{0, 1, 2}, []float64{5, 6, 7}, 10, []float64{0, 1, 2}, 3},
		{"keeps ends and the peak", []float64{0, 1, 2, 3, 4, 5, 6}, []float64{0, 0, 0, 9, 0, 0, 0}, 3, []float64{0, 3, 6}, 3},
		{"gap becomes a NaN break", []float64{0, 1, 2, 3}, []float64{1, nan, nan, 1}, 10, []float64{0, 1.5, 3}, 2},
		{"infinite values skipped", []float64{0, 1, 2}, []float64{1, math.Inf(1), 2}, 10, []float64{0, 1, 2}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			xs, ys := LTTB(tc.x, tc.y, tc.n)
			if len(xs) != len(tc.wantX) {
				t.Fatalf("x = %v, want %v", xs, tc.wantX)
			}
			pts := 0
			for i := range xs {
				if xs[i] != tc.wantX[i] {
					t.Errorf("x = %v, want %v", xs, tc.wantX)
					break
				}
				if !math.IsNaN(ys[i]) {
					pts++
				}
			}
			if pts != tc.wantPoints {
				t.Errorf("%d points, want %d (y = %v)", pts, tc.wantPoints, ys)
			}
		})
	}
}

func TestLTTBBound(t *testing.T) {
	for _, n := range []int{3, 10, 99, 1000} {
		x := seq(5000, func(i int) float64 { return float64(i) })
		y := seq(5000, func(i int) float64 {
			if i%7 == 3 {
				return math.NaN()
			}
			return float64(i % 13)
		})
		_, ys := LTTB(x, y, n)
		pts := 0
		for _, v := range ys {
			if !math.IsNaN(v) {
				pts++
			}
		}
		if pts != n {
			t.Errorf("n=%d: kept %d points", n, pts)
		}
	}
}

func TestTicks(t *testing.T) {
	tests := []struct {
		name   string
		lo, hi float64
		log    bool
		want   []string
	}{
		{"linear", 0, 97, false, []string{"0", "20", "40", "60", "80"}},
		{"linear small", 0.1, 0.35, false, []string{"0.1", "0.15", "0.2", "0.25", "0.3", "0.35"}},
		{"log wide", 0.5, 2e5, true, []string{"1", "10", "100", "1000", "10k", "100k"}},
		{"log few decades", 3, 400, true, []string{"5", "10", "20", "50", "100", "200"}},
		{"log one decade", 2.2, 8.5, true, []string{"3", "4", "5", "6", "7", "8"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := linearTicks
			if tc.log {
				f = logTicks
			}
			var got []string
			for _, tk := range f(tc.lo, tc.hi) {
				if tk.Label != "" {
					got = append(got, tk.Label)
				}
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("labels %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRenderEmptySeriesWithTicks(t *testing.T) {
	s, err := Render(&Chart{X: Axis{Log: true, Ticks: PercentileTicks}, Series: []Series{{Name: "none"}}})
	if err != nil {
		t.Fatal(err)
	}
	f := s.Frame
	for _, v := range []float64{f.XMin, f.XMax, f.YMin, f.YMax} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Fatalf("frame %+v", f)
		}
	}
	if !strings.Contains(string(s.Markup), "no data") {
		t.Error("an empty chart must say so")
	}
}
