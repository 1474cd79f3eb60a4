package capture

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/loadcap/loadcap/scenarios"
)

// CombinedLogFormat is nginx's predefined "combined" log_format. Apache's
// combined LogFormat writes the same lines. Reading it, text after the user
// agent (fields a site appended, such as "$http_x_forwarded_for") is
// ignored.
const CombinedLogFormat = `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"`

var combined = func() *LogFormat {
	f := MustCompileLogFormat(CombinedLogFormat)
	f.trailing = true
	return f
}()

// LogFormat is an nginx log_format compiled into a line matcher. It is
// immutable and safe for concurrent use.
//
// The format is literal text and variables ($name or ${name}). A line
// matches when it holds the literals in order; each variable's value is the
// text up to the next literal (a literal preceded by an odd number of
// backslashes is part of the value, so Apache's \" does not end a quoted
// field), and the last variable before the end of the format takes the rest
// of the line. Values are unescaped (nginx's \xHH, Apache's \" \\ \n \r \t)
// and "-" means empty. These variables are understood:
//
//	$time_local $time_iso8601 $msec   the time (one is required)
//	$request                          "METHOD target HTTP/x.y" (or $request_method and $request_uri)
//	$status                           the response status
//	$request_time                     seconds; the record's time is the logged time minus it,
//	                                  since nginx logs when a request ends
//	$scheme $host $http_host          Record.Scheme and Record.Host ($http_host wins over $host)
//	$http_NAME                        request header NAME: $http_x_request_id is X-Request-Id
//	$request_body                     the body
//
// Any other variable ($remote_addr, $body_bytes_sent, $upstream_*, ...) is
// matched and ignored. Two variables need a literal between them.
type LogFormat struct {
	src      string
	lead     string // the literal before the first variable
	fields   []logField
	headers  int  // how many fields are headers
	trailing bool // text after the last field's literal is allowed
}

type varKind uint8

const (
	varIgnore varKind = iota
	varTimeLocal
	varTimeISO
	varMsec
	varRequest
	varMethod
	varURI
	varStatus
	varRequestTime
	varHost
	varHTTPHost
	varScheme
	varHeader
	varBody
)

type logField struct {
	kind   varKind
	name   string // as written, without $
	header string // the header name, for varHeader
	after  string // the literal that follows; "" at the end of the format
}

// String returns the format as compiled (after unquoting).
func (f *LogFormat) String() string { return f.src }

// CompileLogFormat compiles an nginx log_format. It takes the format text
// itself, or the directive as nginx.conf holds it:
//
//	log_format main '$remote_addr - $remote_user [$time_local] "$request" '
//	                '$status $body_bytes_sent "$http_referer" "$http_user_agent"';
//
// Single-quoted pieces are joined, as nginx joins them. Errors are
// *scenarios.Error with Path "log_format" and the column in the joined text.
func CompileLogFormat(format string) (*LogFormat, error) {
	src := unquoteNginx(format)
	fail := func(col int, msg string, args ...any) error {
		return &scenarios.Error{Pos: scenarios.Pos{Line: 1, Col: col}, Path: "log_format", Msg: fmt.Sprintf(msg, args...)}
	}
	f := &LogFormat{src: src}
	var lit strings.Builder
	cur := -1
	var have [varBody + 1]bool
	for i := 0; i < len(src); {
		c := src[i]
		if c != '$' {
			lit.WriteByte(c)
			i++
			continue
		}
		j := i + 1
		braced := j < len(src) && src[j] == '{'
		if braced {
			j++
		}
		k := j
		for k < len(src) && isVarChar(src[k]) {
			k++
		}
		name := src[j:k]
		if name == "" {
			return nil, fail(i+1, "$ is not followed by a variable name")
		}
		if braced {
			if k >= len(src) || src[k] != '}' {
				return nil, fail(i+1, "${%s is not closed with }", name)
			}
			k++
		}
		if cur < 0 {
			f.lead = lit.String()
		} else {
			if lit.Len() == 0 {
				return nil, fail(i+1, "$%s follows $%s with nothing between them, so a line could not be split", name, f.fields[cur].name)
			}
			f.fields[cur].after = lit.String()
		}
		lit.Reset()
		fd := classify(name)
		have[fd.kind] = true
		if fd.kind == varHeader {
			f.headers++
		}
		f.fields = append(f.fields, fd)
		cur = len(f.fields) - 1
		i = k
	}
	if cur < 0 {
		return nil, fail(0, "the format has no variables")
	}
	f.fields[cur].after = lit.String()
	if !have[varRequest] && !(have[varMethod] && have[varURI]) {
		return nil, fail(0, "the format needs $request (or $request_method and $request_uri)")
	}
	if !have[varTimeLocal] && !have[varTimeISO] && !have[varMsec] {
		return nil, fail(0, "the format needs a time: $time_local, $time_iso8601 or $msec")
	}
	return f, nil
}

// MustCompileLogFormat is CompileLogFormat for formats known to be valid; it
// panics on an error.
func MustCompileLogFormat(format string) *LogFormat {
	f, err := CompileLogFormat(format)
	if err != nil {
		panic(err)
	}
	return f
}

func isVarChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

func classify(name string) logField {
	fd := logField{name: name}
	switch strings.ToLower(name) {
	case "time_local":
		fd.kind = varTimeLocal
	case "time_iso8601":
		fd.kind = varTimeISO
	case "msec":
		fd.kind = varMsec
	case "request":
		fd.kind = varRequest
	case "request_method":
		fd.kind = varMethod
	case "request_uri":
		fd.kind = varURI
	case "status":
		fd.kind = varStatus
	case "request_time":
		fd.kind = varRequestTime
	case "host":
		fd.kind = varHost
	case "http_host":
		fd.kind = varHTTPHost
	case "scheme":
		fd.kind = varScheme
	case "request_body":
		fd.kind = varBody
	default:
		if h, ok := strings.CutPrefix(strings.ToLower(name), "http_"); ok && h != "" {
			fd.header = headerName(h)
			if !dropped(fd.header) {
				fd.kind = varHeader
			}
		}
	}
	return fd
}

// headerName turns nginx's x_forwarded_for into X-Forwarded-For.
func headerName(v string) string {
	b := []byte(v)
	up := true
	for i, c := range b {
		switch {
		case c == '_':
			b[i] = '-'
			up = true
		case up && c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
			up = false
		default:
			up = false
		}
	}
	return string(b)
}

// unquoteNginx accepts a log_format directive, or single-quoted pieces, and
// returns the joined format text. Anything else is returned as it is.
func unquoteNginx(s string) string {
	t := strings.TrimSpace(s)
	directive := false
	if rest, ok := strings.CutPrefix(t, "log_format"); ok && rest != "" && (rest[0] == ' ' || rest[0] == '\t' || rest[0] == '\n') {
		fields := strings.Fields(rest)
		if len(fields) >= 2 {
			// Skip the name and an optional escape= parameter.
			rest = strings.TrimSpace(rest)
			rest = strings.TrimSpace(rest[len(fields[0]):])
			if strings.HasPrefix(fields[1], "escape=") {
				rest = strings.TrimSpace(rest[len(fields[1]):])
			}
			t, directive = strings.TrimSuffix(strings.TrimSpace(rest), ";"), true
		}
	}
	if t == "" || !(t[0] == '\'' || directive && t[0] == '"') {
		return t
	}
	var b strings.Builder
	for i := 0; i < len(t); {
		c := t[i]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			i++
			continue
		}
		if c != '\'' && c != '"' {
			return t // not a sequence of quoted pieces: take it as written
		}
		j := i + 1
		for ; j < len(t) && t[j] != c; j++ {
			if t[j] == '\\' && j+1 < len(t) && (t[j+1] == c || t[j+1] == '\\') {
				j++
			}
			b.WriteByte(t[j])
		}
		if j >= len(t) {
			return t
		}
		i = j + 1
	}
	return b.String()
}

// indexUnescaped is strings.Index(s, lit) skipping occurrences escaped by an
// odd number of backslashes.
func indexUnescaped(s, lit string) int {
	off := 0
	for {
		i := strings.Index(s[off:], lit)
		if i < 0 {
			return -1
		}
		i += off
		n := 0
		for j := i - 1; j >= 0 && s[j] == '\\'; j-- {
			n++
		}
		if n%2 == 0 {
			return i
		}
		off = i + 1
	}
}

// parse matches one line (no line break) and builds its record, or returns
// why the line does not match.
func (f *LogFormat) parse(line string) (Record, string) {
	var rec Record
	if !strings.HasPrefix(line, f.lead) {
		return rec, fmt.Sprintf("line does not start with %q, as the log format does", f.lead)
	}
	rest := line[len(f.lead):]
	var (
		tm, request, method, uri, status, reqTime, host, httpHost string
		timeKind                                                  varKind
		body                                                      string
	)
	for i := range f.fields {
		fd := &f.fields[i]
		var v string
		switch {
		case fd.after == "":
			v, rest = rest, ""
		case i == len(f.fields)-1 && !f.trailing:
			if !strings.HasSuffix(rest, fd.after) {
				return rec, fmt.Sprintf("line does not end with %q after $%s, as the log format does", fd.after, fd.name)
			}
			v, rest = rest[:len(rest)-len(fd.after)], ""
		default:
			n := indexUnescaped(rest, fd.after)
			if n < 0 {
				return rec, fmt.Sprintf("no %q after $%s, as the log format has", fd.after, fd.name)
			}
			v, rest = rest[:n], rest[n+len(fd.after):]
		}
		switch fd.kind {
		case varTimeLocal, varTimeISO, varMsec:
			tm, timeKind = v, fd.kind
		case varRequest:
			request = v
		case varMethod:
			method = v
		case varURI:
			uri = v
		case varStatus:
			status = v
		case varRequestTime:
			reqTime = v
		case varHost:
			host = v
		case varHTTPHost:
			httpHost = v
		case varScheme:
			if v != "-" {
				rec.Scheme = strings.ToLower(v)
			}
		case varBody:
			body = v
		case varHeader:
			if v == "" || v == "-" {
				continue
			}
			if rec.Header == nil {
				rec.Header = make([]Header, 0, f.headers)
			}
			rec.Header = append(rec.Header, Header{Name: fd.header, Value: sanitizeValue(unescapeLog(v))})
		}
	}

	var ok bool
	switch timeKind {
	case varTimeLocal:
		rec.Time, ok = parseTimeLocal(tm)
	case varTimeISO:
		rec.Time, ok = parseISO(tm)
	case varMsec:
		rec.Time, ok = parseMsec(tm)
	}
	if !ok {
		return rec, fmt.Sprintf("time %s is not a valid time", quoteShort(tm))
	}
	if reqTime != "" && reqTime != "-" {
		sec, err := strconv.ParseFloat(reqTime, 64)
		if err != nil || sec < 0 || sec > 1e6 {
			return rec, fmt.Sprintf("request_time %s is not a number of seconds", quoteShort(reqTime))
		}
		rec.Time = rec.Time.Add(-time.Duration(sec * float64(time.Second)))
	}

	var target string
	if request != "" {
		request = unescapeLog(request)
		sp := strings.IndexByte(request, ' ')
		if sp <= 0 {
			return rec, fmt.Sprintf(`request %s is not "METHOD target HTTP/x.y"`, quoteShort(request))
		}
		method, target = request[:sp], request[sp+1:]
		if i := strings.LastIndexByte(target, ' '); i >= 0 && strings.HasPrefix(target[i+1:], "HTTP/") {
			target = target[:i]
		}
	} else {
		target = unescapeLog(uri)
	}
	if !isToken(method) {
		return rec, fmt.Sprintf("method %s is not a token", quoteShort(method))
	}
	rec.Method = method
	if target == "" || target[0] != '/' {
		scheme, h, t, ok := splitURL(target)
		if !ok {
			return rec, fmt.Sprintf("request target %s is neither a path nor an http(s) URL", quoteShort(target))
		}
		if rec.Scheme == "" {
			rec.Scheme = scheme
		}
		if host == "" && httpHost == "" {
			host = h
		}
		target = t
	}
	rec.Path = normalizePath(target)

	switch {
	case httpHost != "" && httpHost != "-":
		rec.Host = unescapeLog(httpHost)
	case host != "" && host != "-":
		rec.Host = unescapeLog(host)
	}
	if status != "" && status != "-" {
		n, err := strconv.Atoi(status)
		if err != nil || n < 100 || n > 999 {
			return rec, fmt.Sprintf("status %s is not a 3-digit code", quoteShort(status))
		}
		rec.Status = n
	}
	if body != "" && body != "-" {
		rec.Body = []byte(unescapeLog(body))
	}
	return rec, ""
}

// unescapeLog undoes nginx's \xHH and Apache's \" \\ \n \r \t escapes.
// Other backslashes are kept.
func unescapeLog(s string) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b = append(b, c)
			continue
		}
		switch s[i+1] {
		case 'x':
			if i+3 < len(s) {
				if hi, lo := unhex(s[i+2]), unhex(s[i+3]); hi >= 0 && lo >= 0 {
					b = append(b, byte(hi<<4|lo))
					i += 3
					continue
				}
			}
			b = append(b, c)
		case '"', '\\':
			b = append(b, s[i+1])
			i++
		case 'n':
			b = append(b, '\n')
			i++
		case 'r':
			b = append(b, '\r')
			i++
		case 't':
			b = append(b, '\t')
			i++
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// sanitizeValue makes a header value valid: invalid UTF-8 becomes U+FFFD,
// CR, LF and NUL become spaces.
func sanitizeValue(v string) string {
	if validHeaderValue(v) {
		return v
	}
	v = strings.ToValidUTF8(v, "\ufffd")
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == 0 {
			return ' '
		}
		return r
	}, v)
}

func quoteShort(s string) string {
	const max = 60
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return strconv.Quote(s[:cut]) + "..."
	}
	return strconv.Quote(s)
}

func d2(s string) int {
	a, b := s[0]-'0', s[1]-'0'
	if a > 9 || b > 9 {
		return -1
	}
	return int(a)*10 + int(b)
}

func month(s string) time.Month {
	switch s {
	case "Jan":
		return time.January
	case "Feb":
		return time.February
	case "Mar":
		return time.March
	case "Apr":
		return time.April
	case "May":
		return time.May
	case "Jun":
		return time.June
	case "Jul":
		return time.July
	case "Aug":
		return time.August
	case "Sep":
		return time.September
	case "Oct":
		return time.October
	case "Nov":
		return time.November
	case "Dec":
		return time.December
	}
	return 0
}

// parseTimeLocal reads nginx's and Apache's "10/Oct/2000:13:55:36 -0700",
// without the allocations of time.Parse.
func parseTimeLocal(s string) (time.Time, bool) {
	if len(s) != 26 || s[2] != '/' || s[6] != '/' || s[11] != ':' || s[14] != ':' || s[17] != ':' || s[20] != ' ' ||
		(s[21] != '+' && s[21] != '-') {
		return time.Time{}, false
	}
	day, mon := d2(s[0:2]), month(s[3:6])
	y1, y2 := d2(s[7:9]), d2(s[9:11])
	hh, mm, ss := d2(s[12:14]), d2(s[15:17]), d2(s[18:20])
	zh, zm := d2(s[22:24]), d2(s[24:26])
	if day < 1 || day > 31 || mon == 0 || y1 < 0 || y2 < 0 || hh < 0 || hh > 23 || mm < 0 || mm > 59 ||
		ss < 0 || ss > 60 || zh < 0 || zh > 23 || zm < 0 || zm > 59 {
		return time.Time{}, false
	}
	year := y1*100 + y2
	t := time.Date(year, mon, day, hh, mm, ss, 0, time.UTC)
	if t.Day() != day && ss != 60 {
		return time.Time{}, false // 31/Feb
	}
	off := time.Duration(zh*60+zm) * time.Minute
	if s[21] == '+' {
		off = -off
	}
	return t.Add(off), true
}

func parseISO(s string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false
	}
	return t.UTC(), true
}

// parseMsec reads nginx's $msec, "1700000000.123" (seconds since the epoch).
func parseMsec(s string) (time.Time, bool) {
	secs, frac, _ := strings.Cut(s, ".")
	sec, err := strconv.ParseInt(secs, 10, 64)
	if err != nil || sec <= 0 || sec > 1<<40 || len(frac) > 9 {
		return time.Time{}, false
	}
	var ns int64
	for i := 0; i < 9; i++ {
		ns *= 10
		if i < len(frac) {
			d := frac[i] - '0'
			if d > 9 {
				return time.Time{}, false
			}
			ns += int64(d)
		}
	}
	return time.Unix(sec, ns).UTC(), true
}

// LogReader reads web server access logs: the combined format or a
// compiled LogFormat. One line is one record; blank lines are skipped.
type LogReader struct {
	name string
	f    *LogFormat
	lr   lineReader
	mal  Malformed
}

var _ Reader = (*LogReader)(nil)

// NewLogReader reads the log lines of format f (nil: CombinedLogFormat) from
// r; name is the file name sources give.
func NewLogReader(r io.Reader, name string, f *LogFormat, opts ...Option) *LogReader {
	if f == nil {
		f = combined
	}
	return newLogReader(bufio.NewReaderSize(r, 64<<10), name, f, buildOptions(opts))
}

func newLogReader(br *bufio.Reader, name string, f *LogFormat, o options) *LogReader {
	skipBOM(br)
	return &LogReader{name: name, f: f, lr: lineReader{br: br, max: o.maxRecord, cut: o.cut}}
}

// Next returns the next record that matches the format.
func (r *LogReader) Next() (Record, error) {
	for {
		line, tooLong, err := r.lr.next()
		if err != nil {
			if err == io.EOF {
				return Record{}, io.EOF
			}
			return Record{}, readErr(r.name, err)
		}
		src := Source{File: r.name, Line: r.lr.n}
		if tooLong {
			r.mal.add(src, "line longer than %d bytes", r.lr.max)
			continue
		}
		line = trimEOL(line)
		if blank(line) {
			continue
		}
		rec, reason := r.f.parse(string(line))
		if reason == "" {
			if err := rec.Validate(); err != nil {
				reason = err.Error()
			}
		}
		if reason != "" {
			r.mal.add(src, "%s", reason)
			continue
		}
		rec.Source = src
		return rec, nil
	}
}

// Malformed reports the lines skipped so far.
func (r *LogReader) Malformed() Malformed { return r.mal.clone() }
