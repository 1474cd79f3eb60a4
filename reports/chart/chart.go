// Package chart draws the charts of loadcap's HTML report as inline SVG,
// over gonum.org/v1/plot: line and point series with a legend, linear or
// log axes, horizontal reference lines (an SLO) and vertical markers (step
// boundaries). The same Chart always renders to the same bytes; text is
// laid out with plot's embedded Liberation fonts and names the font
// family, so nothing is fetched to show it.
package chart

import (
	"bytes"
	"errors"
	"fmt"
	"image/color"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Defaults of a Chart, sizes in points (1/72 in; the SVG's user units).
const (
	DefaultWidth     = 640.0
	DefaultHeight    = 260.0
	DefaultMaxPoints = 600 // per line series, after LTTB
)

// Kind is how a series is drawn.
type Kind uint8

// Series kinds.
const (
	Line       Kind = iota // a polyline, broken where Y is NaN
	Points                 // a marker per point
	LinePoints             // both
)

// Series is one named data series. X and Y have the same length; a NaN Y
// (or, on a log axis, a value ≤ 0) leaves a gap in a line.
type Series struct {
	Name   string // legend text; "" keeps the series out of the legend
	X, Y   []float64
	Kind   Kind
	Dashed bool
	Color  color.Color // nil: Palette[i mod len(Palette)], i the series' index
}

// Ref is a reference line: horizontal at a Y value (Chart.HLines) or
// vertical at an X value (Chart.VLines), with an optional short label.
type Ref struct {
	At    float64
	Label string
	Color color.Color // nil: RefColor for HLines, MarkerColor for VLines
}

// Axis configures one axis.
type Axis struct {
	Label string
	Log   bool
	// Min and Max fix the range when Max > Min; otherwise the range covers
	// every series point and reference line.
	Min, Max float64
	Zero     bool   // a linear axis's automatic range includes 0
	Ticks    []Tick // replace the automatic ticks (e.g. PercentileTicks)
}

// Chart is one chart. The zero value of every field but the data has a
// sensible default.
type Chart struct {
	Title         string
	Width, Height float64 // points; 0 → DefaultWidth, DefaultHeight
	X, Y          Axis
	Series        []Series
	HLines        []Ref
	VLines        []Ref
	// MaxPoints bounds the points of each line series, downsampled with
	// LTTB; 0 → DefaultMaxPoints. Point series are drawn in full.
	MaxPoints int
}

// Frame locates the data area of a rendered chart, so that a script can
// turn a pointer position back into data values. Left, Right, Top and
// Bottom are in the SVG's user units with y growing down; the ranges are
// the axes' data ranges.
type Frame struct {
	Width, Height            float64
	Left, Right, Top, Bottom float64
	XMin, XMax, YMin, YMax   float64
	LogX, LogY               bool
}

// SVG is a rendered chart.
type SVG struct {
	// Markup is one <svg> element for inline use in HTML: no XML prolog,
	// no namespace declarations, no reference to anything outside it.
	Markup []byte
	Frame  Frame
	Points int // points drawn in all, after downsampling
}

// Palette colours series that name no colour, in order.
var Palette = []color.Color{
	rgb(0x1f77b4), rgb(0xff7f0e), rgb(0x2ca02c), rgb(0xd62728), rgb(0x9467bd),
	rgb(0x8c564b), rgb(0xe377c2), rgb(0x7f7f7f), rgb(0xbcbd22), rgb(0x17becf),
}

// Colours of reference lines.
var (
	RefColor    color.Color = rgb(0xc0392b) // horizontal: limits
	MarkerColor color.Color = rgb(0x888888) // vertical: boundaries
	gridColor   color.Color = rgb(0xe6e6e6)
	textColor   color.Color = rgb(0x222222)
)

func rgb(v uint32) color.Color {
	return color.RGBA{R: uint8(v >> 16), G: uint8(v >> 8), B: uint8(v), A: 0xff}
}

// Hex is c as #RRGGBB, as the SVG writes it, for HTML next to a chart (a legend, a swatch).
func Hex(c color.Color) string {
	r, g, b, _ := c.RGBA()
	return fmt.Sprintf("#%02X%02X%02X", r>>8, g>>8, b>>8)
}

// ErrMismatch is returned for a series whose X and Y lengths differ.
var ErrMismatch = errors.New("chart: series X and Y lengths differ")

// The fonts: plot's embedded Liberation Sans (metric-compatible with
// Arial, which the SVG names as the fallback).
var sans = font.Font{Typeface: "Liberation", Variant: "Sans"}

func style(size float64, xa text.XAlignment, ya text.YAlignment) text.Style {
	return text.Style{
		Color:   textColor,
		Font:    font.From(sans, vg.Points(size)),
		XAlign:  xa,
		YAlign:  ya,
		Handler: plot.DefaultTextHandler,
	}
}

// prepared is a series ready to draw.
type prepared struct {
	Series
	color color.Color
}

// Render draws c. It returns an error for a series whose X and Y lengths
// differ; data it cannot place (NaN, or ≤ 0 on a log axis) is left out.
// Render is safe for concurrent use with distinct Charts.
func Render(c *Chart) (SVG, error) {
	w, h := c.Width, c.Height
	if w <= 0 {
		w = DefaultWidth
	}
	if h <= 0 {
		h = DefaultHeight
	}
	maxPts := c.MaxPoints
	if maxPts <= 0 {
		maxPts = DefaultMaxPoints
	}
	var out SVG
	series := make([]prepared, 0, len(c.Series))
	for i, s := range c.Series {
		if len(s.X) != len(s.Y) {
			return out, fmt.Errorf("%w: %q has %d x and %d y", ErrMismatch, s.Name, len(s.X), len(s.Y))
		}
		p := prepared{Series: s, color: s.Color}
		if p.color == nil {
			p.color = Palette[i%len(Palette)]
		}
		x, y := placeable(s.X, c.X.Log), placeable(s.Y, c.Y.Log)
		if s.Kind == Points {
			p.X, p.Y = dropNaN(x, y)
		} else {
			p.X, p.Y = LTTB(x, y, maxPts)
		}
		for _, v := range p.Y {
			if !math.IsNaN(v) {
				out.Points++
			}
		}
		series = append(series, p)
	}

	xr := span(c.X, series, c.VLines, func(s prepared) []float64 { return s.X })
	yr := span(c.Y, series, c.HLines, func(s prepared) []float64 { return s.Y })

	p := plot.New()
	p.BackgroundColor = nil
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle = style(10, text.XCenter, text.YBottom)
		a.Tick.Label = style(9, text.XCenter, text.YTop)
		a.Color = textColor
		a.Tick.Color = textColor
	}
	p.Y.Tick.Label.XAlign, p.Y.Tick.Label.YAlign = text.XRight, text.YCenter
	setAxis(&p.X, c.X, xr)
	setAxis(&p.Y, c.Y, yr)
	p.Add(grid{})
	for _, r := range c.HLines {
		if placeableValue(r.At, c.Y.Log) {
			p.Add(refLine{Ref: r, horizontal: true})
		}
	}
	// A vertical line's label goes a row down when a label is already
	// close to its left, within a tenth of the axis.
	var placed []float64
	for _, r := range c.VLines {
		if !placeableValue(r.At, c.X.Log) {
			continue
		}
		pos := axisFraction(r.At, xr, c.X.Log)
		row := 0
		for _, q := range placed {
			if r.Label != "" && math.Abs(pos-q) < 0.1 {
				row++
			}
		}
		if r.Label != "" {
			placed = append(placed, pos)
		}
		p.Add(refLine{Ref: r, row: row})
	}
	for _, s := range series {
		p.Add(seriesPlotter{s})
	}
	if out.Points == 0 {
		p.Add(noData{})
	}

	cv := vgsvg.New(vg.Points(w), vg.Points(h))
	dc := draw.New(cv)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	top := vg.Points(h) - vg.Points(4)
	if c.Title != "" {
		ts := style(11, text.XLeft, text.YTop)
		dc.FillText(ts, vg.Point{X: vg.Points(6), Y: top}, c.Title)
		top -= ts.Height(c.Title) + vg.Points(2)
	}
	top = legend(dc, series, top)
	area := dc
	area.Max.Y = top - vg.Points(2)
	area.Max.X -= vg.Points(8)
	p.Draw(area)

	da := p.DataCanvas(area)
	out.Frame = Frame{
		Width: w, Height: h,
		Left: round2(da.Min.X.Points()), Right: round2(da.Max.X.Points()),
		Top: round2(h - da.Max.Y.Points()), Bottom: round2(h - da.Min.Y.Points()),
		XMin: p.X.Min, XMax: p.X.Max, YMin: p.Y.Min, YMax: p.Y.Max,
		LogX: c.X.Log, LogY: c.Y.Log,
	}
	var buf bytes.Buffer
	if _, err := cv.WriteTo(&buf); err != nil {
		return out, fmt.Errorf("chart: %w", err)
	}
	out.Markup = inline(buf.Bytes(), w, h, c.Title)
	return out, nil
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }

// placeable replaces the values an axis cannot show with NaN.
func placeable(v []float64, log bool) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		if placeableValue(x, log) {
			out[i] = x
		} else {
			out[i] = math.NaN()
		}
	}
	return out
}

func placeableValue(v float64, log bool) bool { return finite(v) && (!log || v > 0) }

func dropNaN(x, y []float64) (xs, ys []float64) {
	for i := range x {
		if !math.IsNaN(x[i]) && !math.IsNaN(y[i]) {
			xs, ys = append(xs, x[i]), append(ys, y[i])
		}
	}
	return xs, ys
}

type rng struct{ lo, hi float64 }

// span is an axis's range: fixed, or every point and reference line, with
// room to breathe, never empty.
func span(a Axis, series []prepared, refs []Ref, vals func(prepared) []float64) rng {
	if a.Max > a.Min && (!a.Log || a.Min > 0) {
		return rng{a.Min, a.Max}
	}
	r := rng{math.Inf(1), math.Inf(-1)}
	add := func(v float64) {
		if placeableValue(v, a.Log) {
			r.lo, r.hi = math.Min(r.lo, v), math.Max(r.hi, v)
		}
	}
	for _, s := range series {
		for _, v := range vals(s) {
			add(v)
		}
	}
	for _, ref := range refs {
		add(ref.At)
	}
	if a.Zero && !a.Log {
		add(0)
	}
	for _, t := range a.Ticks {
		// Fixed ticks bound the axis from below: a percentile axis starts
		// at 0% even when the data does.
		if t.Value < r.lo && placeableValue(t.Value, a.Log) && !math.IsInf(r.hi, -1) {
			r.lo = t.Value
		}
	}
	switch {
	case math.IsInf(r.lo, 1):
		if a.Log {
			return rng{1, 10}
		}
		return rng{0, 1}
	case a.Log && r.hi/r.lo < 1.5:
		mid := math.Sqrt(r.lo * r.hi)
		return rng{mid / 1.5, mid * 1.5}
	case a.Log:
		// 3% of the decades spanned at the top, so the highest line
		// does not run along the frame.
		return rng{r.lo, r.hi * math.Pow(r.hi/r.lo, 0.03)}
	case r.hi == r.lo:
		d := math.Max(math.Abs(r.lo)*0.1, 1)
		if a.Zero && r.lo == 0 {
			return rng{0, d}
		}
		return rng{r.lo - d, r.hi + d}
	}
	return rng{r.lo, r.hi + 0.04*(r.hi-r.lo)}
}

// axisFraction is where v falls on the axis, 0 at its start, 1 at its end.
func axisFraction(v float64, r rng, log bool) float64 {
	if log {
		return math.Log(v/r.lo) / math.Log(r.hi/r.lo)
	}
	return (v - r.lo) / (r.hi - r.lo)
}

func setAxis(pa *plot.Axis, a Axis, r rng) {
	pa.Min, pa.Max = r.lo, r.hi
	pa.Label.Text = a.Label
	switch {
	case len(a.Ticks) > 0:
		pa.Tick.Marker = fixedTicks(a.Ticks)
	case a.Log:
		pa.Tick.Marker = plot.TickerFunc(logTicks)
	default:
		pa.Tick.Marker = plot.TickerFunc(linearTicks)
	}
	if a.Log {
		pa.Scale = plot.LogScale{}
	}
}

// grid draws light lines at the labelled ticks of both axes.
type grid struct{}

func (grid) Plot(c draw.Canvas, p *plot.Plot) {
	sty := draw.LineStyle{Color: gridColor, Width: vg.Points(0.5)}
	tx, ty := p.Transforms(&c)
	for _, t := range p.X.Tick.Marker.Ticks(p.X.Min, p.X.Max) {
		if t.Label != "" && t.Value >= p.X.Min && t.Value <= p.X.Max {
			x := tx(t.Value)
			c.StrokeLine2(sty, x, c.Min.Y, x, c.Max.Y)
		}
	}
	for _, t := range p.Y.Tick.Marker.Ticks(p.Y.Min, p.Y.Max) {
		if t.Label != "" && t.Value >= p.Y.Min && t.Value <= p.Y.Max {
			y := ty(t.Value)
			c.StrokeLine2(sty, c.Min.X, y, c.Max.X, y)
		}
	}
}

// refLine draws a Ref across the data area with its label; row moves
// the label of a vertical line down, clear of a neighbour's.
type refLine struct {
	Ref
	horizontal bool
	row        int
}

func (r refLine) Plot(c draw.Canvas, p *plot.Plot) {
	tx, ty := p.Transforms(&c)
	clr := r.Color
	sty := draw.LineStyle{Width: vg.Points(1)}
	lbl := style(8, text.XRight, text.YBottom)
	if r.horizontal {
		if clr == nil {
			clr = RefColor
		}
		sty.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
		y := ty(r.At)
		if y < c.Min.Y || y > c.Max.Y {
			return
		}
		sty.Color = clr
		c.StrokeLine2(sty, c.Min.X, y, c.Max.X, y)
		if r.Label != "" {
			lbl.Color = clr
			c.FillText(lbl, vg.Point{X: c.Max.X - vg.Points(2), Y: y + vg.Points(1)}, r.Label)
		}
		return
	}
	if clr == nil {
		clr = MarkerColor
	}
	sty.Color = clr
	sty.Width = vg.Points(0.75)
	sty.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
	x := tx(r.At)
	if x < c.Min.X || x > c.Max.X {
		return
	}
	c.StrokeLine2(sty, x, c.Min.Y, x, c.Max.Y)
	if r.Label != "" {
		lbl.Color = clr
		lbl.XAlign, lbl.YAlign = text.XLeft, text.YTop
		c.FillText(lbl, vg.Point{X: x + vg.Points(2), Y: c.Max.Y - vg.Points(1) - vg.Length(r.row)*lbl.Height(r.Label)}, r.Label)
	}
}

// seriesPlotter draws one prepared series.
type seriesPlotter struct{ prepared }

func (s seriesPlotter) lineStyle() draw.LineStyle {
	sty := draw.LineStyle{Color: s.color, Width: vg.Points(1.25)}
	if s.Dashed {
		sty.Dashes = []vg.Length{vg.Points(4), vg.Points(2.5)}
	}
	return sty
}

func (s seriesPlotter) glyph() draw.GlyphStyle {
	return draw.GlyphStyle{Color: s.color, Radius: vg.Points(2.5), Shape: draw.CircleGlyph{}}
}

func (s seriesPlotter) Plot(c draw.Canvas, p *plot.Plot) {
	tx, ty := p.Transforms(&c)
	if s.Kind != Points {
		var lines [][]vg.Point
		var cur []vg.Point
		for i := range s.X {
			if math.IsNaN(s.Y[i]) {
				if len(cur) > 0 {
					lines = append(lines, cur)
				}
				cur = nil
				continue
			}
			cur = append(cur, vg.Point{X: tx(s.X[i]), Y: ty(s.Y[i])})
		}
		if len(cur) > 0 {
			lines = append(lines, cur)
		}
		sty := s.lineStyle()
		for _, l := range c.ClipLinesXY(lines...) {
			if len(l) == 1 {
				// A lone point between gaps: a dot, or it would vanish.
				c.DrawGlyph(draw.GlyphStyle{Color: s.color, Radius: vg.Points(1), Shape: draw.CircleGlyph{}}, l[0])
				continue
			}
			c.StrokeLines(sty, l)
		}
	}
	if s.Kind != Line {
		g := s.glyph()
		for i := range s.X {
			if math.IsNaN(s.Y[i]) {
				continue
			}
			pt := vg.Point{X: tx(s.X[i]), Y: ty(s.Y[i])}
			if c.Contains(pt) {
				c.DrawGlyph(g, pt)
			}
		}
	}
}

// noData says so in the middle of an empty chart.
type noData struct{}

func (noData) Plot(c draw.Canvas, _ *plot.Plot) {
	c.FillText(style(10, text.XCenter, text.YCenter), c.Center(), "no data")
}

// legend draws the named series in rows from the top left, below y, and
// returns the y below the legend.
func legend(dc draw.Canvas, series []prepared, y vg.Length) vg.Length {
	ts := style(9, text.XLeft, text.YCenter)
	const thumb, gap, sep = 18, 4, 14
	rowH := ts.Height("Mg") + vg.Points(3)
	x0 := vg.Points(44)
	x, row := x0, vg.Length(0)
	named := false
	for _, s := range series {
		if s.Name == "" {
			continue
		}
		named = true
		w := vg.Points(thumb+gap) + ts.Width(s.Name)
		if x > x0 && x+w > dc.Max.X-vg.Points(8) {
			x, row = x0, row+1
		}
		cy := y - row*rowH - rowH/2
		sp := seriesPlotter{s}
		if s.Kind != Points {
			dc.StrokeLine2(sp.lineStyle(), x, cy, x+vg.Points(thumb), cy)
		}
		if s.Kind != Line {
			dc.DrawGlyph(sp.glyph(), vg.Point{X: x + vg.Points(thumb/2), Y: cy})
		}
		dc.FillText(ts, vg.Point{X: x + vg.Points(thumb+gap), Y: cy}, s.Name)
		x += w + vg.Points(sep)
	}
	if !named {
		return y
	}
	return y - (row+1)*rowH
}

// inline turns vgsvg's standalone document into an element for HTML: its
// own <svg> start tag instead of the prolog and namespaced one, and a font
// stack that falls back to the metric-compatible Arial.
func inline(doc []byte, w, h float64, title string) []byte {
	i := bytes.Index(doc, []byte("<svg"))
	if i >= 0 {
		if j := bytes.IndexByte(doc[i:], '>'); j >= 0 {
			doc = doc[i+j+1:]
		}
	}
	doc = bytes.ReplaceAll(doc, []byte("font-family:Liberation Sans;"), []byte("font-family:'Liberation Sans',Arial,Helvetica,sans-serif;"))
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	var b bytes.Buffer
	b.Grow(len(doc) + 200)
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %s %s" width="%s" height="%s" role="img"`, f(w), f(h), f(math.Round(w*4/3)), f(math.Round(h*4/3)))
	if title != "" {
		b.WriteString(` aria-label="`)
		b.WriteString(escapeAttr(title))
		b.WriteString(`"`)
	}
	b.WriteString(">")
	b.Write(doc)
	return b.Bytes()
}

func escapeAttr(s string) string {
	var b bytes.Buffer
	for _, r := range s {
		switch r {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '"':
			b.WriteString("&#34;")
		case '\'':
			b.WriteString("&#39;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
