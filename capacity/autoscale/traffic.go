package autoscale

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/loadcap/loadcap/internal/capture"
	"github.com/loadcap/loadcap/scenarios"
)

// MaxTrafficSeconds bounds a traffic curve: two days at one-second steps.
const MaxTrafficSeconds = 2 * 24 * 3600

// ReadForecast reads a forecast of the entry rate: a CSV file of lines
// "TIME,RPS" (a header line is allowed), TIME an RFC 3339 instant, a local
// "2006-01-02T15:04:05" in loc, or seconds from the first line. The rate
// holds from its line's time to the next line's; the curve has one value a
// second. Errors are *scenarios.Error naming the file, line and field.
func ReadForecast(path string, loc *time.Location) (Traffic, error) {
	f, err := os.Open(path)
	if err != nil {
		return Traffic{}, &scenarios.Error{File: path, Msg: err.Error()}
	}
	defer f.Close()
	return parseForecast(f, path, loc)
}

type point struct {
	at  time.Time
	rps float64
}

func parseForecast(r io.Reader, path string, loc *time.Location) (Traffic, error) {
	bad := func(line int, field, msg string) error {
		return &scenarios.Error{File: path, Pos: scenarios.Pos{Line: line}, Path: field, Msg: msg}
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	var pts []point
	var origin time.Time
	relative := false
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cells := strings.Split(line, ",")
		if len(cells) != 2 {
			return Traffic{}, bad(n, "", fmt.Sprintf("want 2 fields TIME,RPS, got %d", len(cells)))
		}
		ts, rs := strings.TrimSpace(cells[0]), strings.TrimSpace(cells[1])
		rps, rerr := strconv.ParseFloat(rs, 64)
		if len(pts) == 0 && rerr != nil && !startsWithDigit(ts) {
			continue // a header line
		}
		if rerr != nil || rps < 0 || math.IsNaN(rps) || math.IsInf(rps, 0) {
			return Traffic{}, bad(n, "rps", fmt.Sprintf("want a rate ≥ 0, got %q", rs))
		}
		var at time.Time
		if secs, err := strconv.ParseFloat(ts, 64); err == nil {
			if len(pts) > 0 && !relative {
				return Traffic{}, bad(n, "time", "seconds after instants: use one kind of time in a file")
			}
			if secs < 0 || secs > MaxTrafficSeconds || secs != math.Trunc(secs) {
				return Traffic{}, bad(n, "time", fmt.Sprintf("want whole seconds in [0, %d], got %q", MaxTrafficSeconds, ts))
			}
			relative = true
			at = origin.Add(time.Duration(secs) * time.Second)
		} else {
			if relative {
				return Traffic{}, bad(n, "time", "an instant after seconds: use one kind of time in a file")
			}
			t, err := time.Parse(time.RFC3339, ts)
			if err != nil {
				if t, err = time.ParseInLocation("2006-01-02T15:04:05", ts, loc); err != nil {
					return Traffic{}, bad(n, "time", fmt.Sprintf("want RFC 3339, 2006-01-02T15:04:05 or seconds, got %q", ts))
				}
			}
			at = t.Truncate(time.Second)
		}
		if len(pts) > 0 && !at.After(pts[len(pts)-1].at) {
			return Traffic{}, bad(n, "time", "times must increase")
		}
		if len(pts) > 0 && at.Sub(pts[0].at) > MaxTrafficSeconds*time.Second {
			return Traffic{}, bad(n, "time", fmt.Sprintf("the forecast spans more than %d s", MaxTrafficSeconds))
		}
		pts = append(pts, point{at, rps})
	}
	if err := sc.Err(); err != nil {
		return Traffic{}, &scenarios.Error{File: path, Msg: err.Error()}
	}
	if len(pts) == 0 {
		return Traffic{}, &scenarios.Error{File: path, Msg: "no TIME,RPS lines"}
	}
	tr := Traffic{Start: pts[0].at}
	for i, p := range pts {
		end := p.at.Add(time.Second)
		if i+1 < len(pts) {
			end = pts[i+1].at
		}
		for t := p.at; t.Before(end); t = t.Add(time.Second) {
			tr.RPS = append(tr.RPS, p.rps)
		}
	}
	return tr, nil
}

func startsWithDigit(s string) bool { return s != "" && s[0] >= '0' && s[0] <= '9' }

// ReadRecording turns a recording (any format loadcap imports) into a
// curve: the requests that arrived in each second, times multiplier, the
// first second moved to start (zero keeps the recording's own times).
func ReadRecording(path string, multiplier float64, start time.Time) (Traffic, error) {
	if !(multiplier > 0) || math.IsInf(multiplier, 0) {
		return Traffic{}, fmt.Errorf("multiplier %v: want a positive number", multiplier)
	}
	r, err := capture.Open(path, "")
	if err != nil {
		return Traffic{}, err
	}
	defer r.Close()
	var first time.Time
	var counts []float64
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Traffic{}, err
		}
		if first.IsZero() {
			first = rec.Time.Truncate(time.Second)
		}
		i := int(rec.Time.Sub(first) / time.Second)
		if i < 0 {
			i = 0 // a record out of order by less than its second's start
		}
		if i >= MaxTrafficSeconds {
			return Traffic{}, &scenarios.Error{File: path, Pos: scenarios.Pos{Line: rec.Source.Line}, Msg: fmt.Sprintf("the recording spans more than %d s", MaxTrafficSeconds)}
		}
		for len(counts) <= i {
			counts = append(counts, 0)
		}
		counts[i]++
	}
	if len(counts) == 0 {
		return Traffic{}, &scenarios.Error{File: path, Msg: "no records"}
	}
	for i := range counts {
		counts[i] *= multiplier
	}
	if start.IsZero() {
		start = first
	}
	return Traffic{Start: start, RPS: counts}, nil
}
