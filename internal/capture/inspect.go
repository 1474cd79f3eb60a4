package capture

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// MaxRoutes bounds the distinct routes (and methods) Stats tells apart;
// later ones are counted under OtherRoutes, so memory stays bounded.
const MaxRoutes = 10000

// OtherRoutes is the route Stats counts requests under once MaxRoutes
// distinct routes have been seen.
const OtherRoutes = "(other routes)"

// Stats summarizes a recording as it streams by: requests by route, method
// and status, and the rate per second over time. Memory grows with the
// distinct routes (bounded by MaxRoutes) and the seconds that had requests,
// not with the requests. Not safe for concurrent use.
type Stats struct {
	Requests    int64
	First, Last time.Time // the earliest and latest record times
	Malformed   Malformed

	routes   map[string]*int64
	methods  map[string]*int64
	statuses [1000]int64 // by code; [0] is unknown
	perSec   map[int64]int64
	buf      []byte
}

// Count is a key and how many requests it had.
type Count struct {
	Key string
	N   int64
}

// Second is how many requests arrived in the second starting at Time.
type Second struct {
	Time time.Time
	N    int64
}

// NewStats returns empty stats.
func NewStats() *Stats {
	return &Stats{routes: map[string]*int64{}, methods: map[string]*int64{}, perSec: map[int64]int64{}}
}

// Inspect reads every record of r into new stats, and r's malformed
// report at the end.
func Inspect(r Reader) (*Stats, error) {
	s := NewStats()
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return s, err
		}
		s.Add(&rec)
	}
	s.Malformed = r.Malformed()
	return s, nil
}

// Add counts one record.
func (s *Stats) Add(rec *Record) {
	s.Requests++
	if s.First.IsZero() || rec.Time.Before(s.First) {
		s.First = rec.Time
	}
	if rec.Time.After(s.Last) {
		s.Last = rec.Time
	}
	s.perSec[rec.Time.Unix()]++
	if st := rec.Status; st > 0 && st < len(s.statuses) {
		s.statuses[st]++
	} else {
		s.statuses[0]++
	}
	count(s.methods, rec.Method, "(other methods)")
	s.buf = appendRoute(s.buf[:0], rec.Method, rec.Path)
	if c := s.routes[string(s.buf)]; c != nil {
		*c++
	} else {
		count(s.routes, string(s.buf), OtherRoutes)
	}
}

func count(m map[string]*int64, key, other string) {
	if c := m[key]; c != nil {
		*c++
		return
	}
	if len(m) >= MaxRoutes {
		key = other
		if c := m[key]; c != nil {
			*c++
			return
		}
	}
	n := int64(1)
	m[strings.Clone(key)] = &n
}

func sortedCounts(m map[string]*int64) []Count {
	out := make([]Count, 0, len(m))
	for k, n := range m {
		out = append(out, Count{k, *n})
	}
	slices.SortFunc(out, func(a, b Count) int {
		if c := cmp.Compare(b.N, a.N); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	return out
}

// Routes returns the requests by route (see Route), most first.
func (s *Stats) Routes() []Count { return sortedCounts(s.routes) }

// Methods returns the requests by method, most first.
func (s *Stats) Methods() []Count { return sortedCounts(s.methods) }

// Statuses returns the requests by response status ("unknown" when the
// recording has none), most first.
func (s *Stats) Statuses() []Count {
	var out []Count
	for code, n := range s.statuses {
		if n == 0 {
			continue
		}
		key := strconv.Itoa(code)
		if code == 0 {
			key = "unknown"
		}
		out = append(out, Count{key, n})
	}
	slices.SortStableFunc(out, func(a, b Count) int { return cmp.Compare(b.N, a.N) })
	return out
}

// PerSecond returns the seconds that had requests, in time order.
func (s *Stats) PerSecond() []Second {
	out := make([]Second, 0, len(s.perSec))
	for sec, n := range s.perSec {
		out = append(out, Second{time.Unix(sec, 0).UTC(), n})
	}
	slices.SortFunc(out, func(a, b Second) int { return a.Time.Compare(b.Time) })
	return out
}

// Peak returns the busiest second (the earliest of equals).
func (s *Stats) Peak() Second {
	var best Second
	for sec, n := range s.perSec {
		t := time.Unix(sec, 0).UTC()
		if n > best.N || n == best.N && t.Before(best.Time) {
			best = Second{t, n}
		}
	}
	return best
}

// Span is the time from the first second with requests to the end of the
// last one.
func (s *Stats) Span() time.Duration {
	if s.Requests == 0 {
		return 0
	}
	return time.Duration(s.Last.Unix()-s.First.Unix()+1) * time.Second
}

// MeanRatePerSec is the requests per second over Span.
func (s *Stats) MeanRatePerSec() float64 {
	if sp := s.Span(); sp > 0 {
		return float64(s.Requests) / sp.Seconds()
	}
	return 0
}

// Route names a request's route for grouping: the method, a space, and the
// path without its query, with every segment that is a number, a UUID or a
// hex string of 16 or more characters holding a digit (an object ID, a hash)
// replaced by {id}: "GET /orders/{id}/items".
func Route(method, path string) string { return string(appendRoute(nil, method, path)) }

func appendRoute(dst []byte, method, path string) []byte {
	dst = append(dst, method...)
	dst = append(dst, ' ')
	path, _ = splitQuery(path)
	for i := 0; i < len(path); {
		j := strings.IndexByte(path[i:], '/')
		if j < 0 {
			j = len(path)
		} else {
			j += i
		}
		if seg := path[i:j]; isIDSegment(seg) {
			dst = append(dst, "{id}"...)
		} else {
			dst = append(dst, seg...)
		}
		if j < len(path) {
			dst = append(dst, '/')
		}
		i = j + 1
	}
	return dst
}

func isIDSegment(s string) bool {
	if s == "" {
		return false
	}
	digits, hex := 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F':
			hex++
		case c == '-' && len(s) == 36 && (i == 8 || i == 13 || i == 18 || i == 23):
		default:
			return false
		}
	}
	switch {
	case digits == len(s):
		return true
	case len(s) == 36:
		return digits+hex == 32 // a UUID: the dashes are where they belong
	default:
		return len(s) >= 16 && digits > 0 && strings.IndexByte(s, '-') < 0
	}
}

// WriteText writes the stats as a plain-text report: totals, the peak
// second, requests by method, status and route (the top 25 routes), the
// rate over time in at most 30 buckets, and the first malformed records.
// Output depends only on the stats.
func (s *Stats) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	pct := func(n int64) float64 {
		if s.Requests == 0 {
			return 0
		}
		return 100 * float64(n) / float64(s.Requests)
	}
	fmt.Fprintf(bw, "requests   %d\n", s.Requests)
	fmt.Fprintf(bw, "malformed  %d\n", s.Malformed.Count)
	if s.Requests > 0 {
		const layout = "2006-01-02 15:04:05"
		fmt.Fprintf(bw, "time       %s .. %s UTC (%s)\n", s.First.UTC().Format(layout), s.Last.UTC().Format(layout), s.Span())
		fmt.Fprintf(bw, "mean rate  %.2f/s\n", s.MeanRatePerSec())
		pk := s.Peak()
		fmt.Fprintf(bw, "peak       %d/s at %s UTC\n", pk.N, pk.Time.Format(layout))
	}
	table := func(title string, rows []Count, limit int) {
		if len(rows) == 0 {
			return
		}
		if limit > 0 && len(rows) > limit {
			fmt.Fprintf(bw, "\n%s (top %d of %d)\n", title, limit, len(rows))
			rows = rows[:limit]
		} else {
			fmt.Fprintf(bw, "\n%s\n", title)
		}
		width := 0
		for _, r := range rows {
			width = max(width, len(r.Key))
		}
		for _, r := range rows {
			fmt.Fprintf(bw, "  %-*s  %10d  %5.1f%%\n", width, r.Key, r.N, pct(r.N))
		}
	}
	table("by method", s.Methods(), 0)
	table("by status", s.Statuses(), 0)
	table("by route", s.Routes(), 25)
	s.writeRate(bw)
	if s.Malformed.Count > 0 {
		fmt.Fprintf(bw, "\nmalformed records (first %d of %d)\n", len(s.Malformed.First), s.Malformed.Count)
		for _, p := range s.Malformed.First {
			fmt.Fprintf(bw, "  %s\n", p)
		}
	}
	return bw.Flush()
}

// bucketWidths are the rate-over-time bucket sizes, smallest first.
var bucketWidths = []time.Duration{
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour, 7 * 24 * time.Hour,
}

func (s *Stats) writeRate(bw *bufio.Writer) {
	if s.Requests == 0 {
		return
	}
	const maxRows = 30
	span := s.Span()
	width := bucketWidths[len(bucketWidths)-1]
	for _, w := range bucketWidths {
		if span <= time.Duration(maxRows)*w {
			width = w
			break
		}
	}
	wsec := int64(width / time.Second)
	first := s.First.Unix()
	n := (s.Last.Unix()-first)/wsec + 1
	if n > maxRows*4 {
		n = maxRows * 4 // a span past the largest width: the tail is cut
	}
	total := make([]int64, n)
	peak := make([]int64, n)
	for sec, c := range s.perSec {
		b := (sec - first) / wsec
		if b < 0 || b >= n {
			continue
		}
		total[b] += c
		peak[b] = max(peak[b], c)
	}
	var top float64
	means := make([]float64, n)
	for b := range means {
		secs := wsec
		if end := first + (int64(b)+1)*wsec; end > s.Last.Unix()+1 {
			secs = s.Last.Unix() + 1 - (first + int64(b)*wsec) // a partial last bucket
		}
		means[b] = float64(total[b]) / float64(secs)
		top = max(top, means[b])
	}
	fmt.Fprintf(bw, "\nrate over time (%s buckets: mean/s, peak second)\n", width)
	for b := range means {
		t := time.Unix(first+int64(b)*wsec, 0).UTC()
		bar := 0
		if top > 0 {
			bar = int(means[b]/top*40 + 0.5)
		}
		fmt.Fprintf(bw, "  %s  %9.2f/s  %7d/s  %s\n", t.Format("2006-01-02 15:04:05"), means[b], peak[b], strings.Repeat("#", bar))
	}
}
