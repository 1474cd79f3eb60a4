package capture

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Record is one recorded HTTP request in normalized form: what every reader
// returns, what the JSONL writer writes and what a replay sends.
//
// A Record owns its memory: readers never reuse a returned Record's strings
// or slices. Rewriter.Apply and Scrubber.Scrub never write into the memory of
// a Record's slices either (they replace the slices), so a shallow copy of a
// shared Record may be handed to them.
type Record struct {
	Time   time.Time // when the request arrived, UTC
	Method string    // a token: GET, POST, ...
	Scheme string    // "http", "https", or "" when the recording does not say
	Host   string    // authority as recorded ("shop.example.com", "10.0.0.7:8080"), "" when unknown
	Path   string    // request-target: path and query, starting with "/"; ASCII without spaces or control bytes
	Header []Header  // in recorded order, names may repeat; no Host, framing or hop-by-hop headers
	Body   []byte    // nil when empty
	Status int       // the recorded response status, 0 when unknown
	Source Source    // where the record was read
}

// Header is one request header line. Value is valid UTF-8 without CR, LF or
// NUL.
type Header struct {
	Name, Value string
}

// Source is where a record was read: a file name and a 1-based line. For a
// HAR entry the line is the one holding the entry's opening brace; for a
// GoReplay record, its "1 <id> <time>" header line.
type Source struct {
	File string
	Line int
}

// String formats the source as "file:line", or "file" without a line.
func (s Source) String() string {
	if s.Line <= 0 {
		return s.File
	}
	return s.File + ":" + strconv.Itoa(s.Line)
}

// IsZero reports whether the source is unknown.
func (s Source) IsZero() bool { return s.File == "" && s.Line == 0 }

// parseSource is the inverse of Source.String: the line is what follows the
// last colon when that is a positive number.
func parseSource(s string) Source {
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		// Only a canonical number is a line, so the text round-trips.
		if n, err := strconv.Atoi(s[i+1:]); err == nil && n > 0 && strconv.Itoa(n) == s[i+1:] {
			return Source{File: s[:i], Line: n}
		}
	}
	return Source{File: s}
}

// Lookup returns the value of the first header named name (compared without
// case).
func (r *Record) Lookup(name string) (string, bool) {
	for _, h := range r.Header {
		if strings.EqualFold(h.Name, name) {
			return h.Value, true
		}
	}
	return "", false
}

// PathOnly returns the path without its query.
func (r *Record) PathOnly() string {
	p, _ := splitQuery(r.Path)
	return p
}

// Validate reports the first way in which r is not a record a replay can
// send. Every reader returns only valid records: an invalid one is counted as
// malformed instead.
func (r *Record) Validate() error {
	switch {
	case r.Time.IsZero():
		return errors.New("no time")
	case r.Time.Year() < 1 || r.Time.Year() > 9999:
		return fmt.Errorf("time %s is outside the years 0001-9999", r.Time.Format(time.RFC3339))
	case !isToken(r.Method):
		return fmt.Errorf("method %q is not a token", r.Method)
	case r.Scheme != "" && r.Scheme != "http" && r.Scheme != "https":
		return fmt.Errorf("scheme %q is not http or https", r.Scheme)
	case !validHost(r.Host):
		return fmt.Errorf("host %q is not a host[:port]", r.Host)
	case r.Path == "" || r.Path[0] != '/':
		return fmt.Errorf("path %q does not start with /", r.Path)
	case !cleanPath(r.Path):
		return fmt.Errorf("path %q holds a space, a control byte or a non-ASCII byte", r.Path)
	case r.Status != 0 && (r.Status < 100 || r.Status > 999):
		return fmt.Errorf("status %d is not a 3-digit code", r.Status)
	}
	for _, h := range r.Header {
		if !isToken(h.Name) {
			return fmt.Errorf("header name %q is not a token", h.Name)
		}
		if !validHeaderValue(h.Value) {
			return fmt.Errorf("header %s: value holds CR, LF, NUL or invalid UTF-8", h.Name)
		}
	}
	return nil
}

// tokenChars marks the bytes allowed in an HTTP token (RFC 9110 tchar).
var tokenChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenChars[s[i]] {
			return false
		}
	}
	return true
}

// validHost accepts "" or a reg-name, IPv4 or [IPv6] with an optional port:
// the bytes an authority may hold, minus userinfo.
func validHost(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.' || c == '-' || c == '_' || c == '~' || c == ':' || c == '[' || c == ']' || c == '%':
		default:
			return false
		}
	}
	return true
}

// cleanPath reports whether p holds only printable ASCII other than space.
func cleanPath(p string) bool {
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// normalizePath percent-encodes the bytes a request-target may not hold
// (controls, space, DEL and non-ASCII), as a client would have sent them.
func normalizePath(p string) string {
	if cleanPath(p) {
		return p
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(p)+16)
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c >= 0x7f {
			b = append(b, '%', hex[c>>4], hex[c&15])
		} else {
			b = append(b, c)
		}
	}
	return string(b)
}

func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '\r' || c == '\n' || c == 0 {
			return false
		} else if c >= utf8.RuneSelf {
			return utf8.ValidString(v[i:])
		}
	}
	return true
}

// dropped reports whether a recorded header is left out of the normalized
// record: pseudo-headers, Host (it goes to Record.Host), framing headers (the
// replay frames the body itself) and hop-by-hop headers (they describe the
// recorded connection, not the request).
func dropped(name string) bool {
	if name == "" || name[0] == ':' {
		return true
	}
	switch len(name) {
	case 2:
		return strings.EqualFold(name, "TE")
	case 4:
		return strings.EqualFold(name, "Host")
	case 6:
		return strings.EqualFold(name, "Expect")
	case 7:
		return strings.EqualFold(name, "Upgrade") || strings.EqualFold(name, "Trailer")
	case 10:
		return strings.EqualFold(name, "Connection") || strings.EqualFold(name, "Keep-Alive")
	case 14:
		return strings.EqualFold(name, "Content-Length")
	case 16:
		return strings.EqualFold(name, "Proxy-Connection")
	case 17:
		return strings.EqualFold(name, "Transfer-Encoding")
	}
	return false
}

// splitQuery splits a request-target at its first '?'; the query keeps no '?'.
func splitQuery(target string) (path, query string) {
	if i := strings.IndexByte(target, '?'); i >= 0 {
		return target[:i], target[i+1:]
	}
	return target, ""
}

// splitURL splits an absolute http(s) URL into its lower-case scheme, its
// authority (userinfo dropped) and its request-target (fragment dropped,
// "/" when empty).
func splitURL(u string) (scheme, host, target string, ok bool) {
	i := strings.Index(u, "://")
	if i <= 0 {
		return "", "", "", false
	}
	scheme = strings.ToLower(u[:i])
	if scheme != "http" && scheme != "https" {
		return "", "", "", false
	}
	rest := u[i+3:]
	if j := strings.IndexByte(rest, '#'); j >= 0 {
		rest = rest[:j]
	}
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	host, target = rest[:end], rest[end:]
	if at := strings.LastIndexByte(host, '@'); at >= 0 {
		host = host[at+1:]
	}
	if target == "" || target[0] == '?' {
		target = "/" + target
	}
	return scheme, host, target, true
}

// --- JSON lines -----------------------------------------------------------

// timeLayout is the JSONL time: RFC 3339, UTC, always 9 fraction digits, so
// that the text sorts as the time does.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// AppendJSON appends r as one JSONL object (without a newline) to dst, in the
// fixed field order of the package documentation. Equal records give equal
// bytes. Strings that are not valid UTF-8 have the bad bytes replaced by
// U+FFFD (a reader never produces such a record).
func (r *Record) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"time":"`...)
	dst = r.Time.UTC().AppendFormat(dst, timeLayout)
	dst = append(dst, `","method":`...)
	dst = appendJSONString(dst, r.Method)
	if r.Scheme != "" {
		dst = append(dst, `,"scheme":`...)
		dst = appendJSONString(dst, r.Scheme)
	}
	if r.Host != "" {
		dst = append(dst, `,"host":`...)
		dst = appendJSONString(dst, r.Host)
	}
	dst = append(dst, `,"path":`...)
	dst = appendJSONString(dst, r.Path)
	if len(r.Header) > 0 {
		dst = append(dst, `,"headers":[`...)
		for i, h := range r.Header {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '[')
			dst = appendJSONString(dst, h.Name)
			dst = append(dst, ',')
			dst = appendJSONString(dst, h.Value)
			dst = append(dst, ']')
		}
		dst = append(dst, ']')
	}
	if len(r.Body) > 0 {
		if utf8.Valid(r.Body) {
			dst = append(dst, `,"body":`...)
			dst = appendJSONString(dst, r.Body)
		} else {
			dst = append(dst, `,"body_base64":"`...)
			dst = base64.StdEncoding.AppendEncode(dst, r.Body)
			dst = append(dst, '"')
		}
	}
	if r.Status != 0 {
		dst = append(dst, `,"status":`...)
		dst = strconv.AppendInt(dst, int64(r.Status), 10)
	}
	if !r.Source.IsZero() {
		dst = append(dst, `,"source":`...)
		dst = appendJSONString(dst, r.Source.String())
	}
	return append(dst, '}')
}

// MarshalJSON returns AppendJSON's form.
func (r Record) MarshalJSON() ([]byte, error) { return r.AppendJSON(nil), nil }

// UnmarshalJSON reads the JSONL form. Unknown fields are ignored; the record
// is not validated (see Validate).
func (r *Record) UnmarshalJSON(data []byte) error {
	rec, err := decodeJSONRecord(data)
	if err != nil {
		return err
	}
	*r = rec
	return nil
}

// appendJSONString appends s as a JSON string. It escapes what JSON requires
// (quote, backslash, control characters) and nothing else, and replaces
// invalid UTF-8 with U+FFFD.
func appendJSONString[S string | []byte](dst []byte, s S) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
			}
			i++
			start = i
			continue
		}
		if rn, size := decodeRune(s[i:]); rn == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\ufffd"...)
			i++
			start = i
			continue
		} else {
			i += size
		}
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// decodeRune is utf8.DecodeRune for strings and byte slices alike.
func decodeRune[S string | []byte](s S) (rune, int) {
	var buf [utf8.UTFMax]byte
	n := copy(buf[:], s[:min(len(s), utf8.UTFMax)])
	return utf8.DecodeRune(buf[:n])
}

// jsonRecord is the JSONL form as encoding/json reads it.
type jsonRecord struct {
	Time       string     `json:"time"`
	Method     string     `json:"method"`
	Scheme     string     `json:"scheme"`
	Host       string     `json:"host"`
	Path       string     `json:"path"`
	Headers    [][]string `json:"headers"`
	Body       *string    `json:"body"`
	BodyBase64 *string    `json:"body_base64"`
	Status     int        `json:"status"`
	Source     string     `json:"source"`
}

// decodeJSONRecord reads one JSONL object. Its errors are short reasons fit
// for a malformed-record report.
func decodeJSONRecord(data []byte) (Record, error) {
	if rec, ok := decodeFast(data); ok {
		return rec, nil
	}
	return decodeSlow(data)
}

// decodeSlow is decodeJSONRecord through encoding/json.
func decodeSlow(data []byte) (Record, error) {
	var j jsonRecord
	if err := json.Unmarshal(data, &j); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return Record{}, fmt.Errorf("%s: must be %s, got a JSON %s", te.Field, jsonKind(te.Type.Kind().String()), te.Value)
		}
		return Record{}, fmt.Errorf("invalid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	var r Record
	if j.Time == "" {
		return Record{}, errors.New("time: missing")
	}
	t, err := time.Parse(time.RFC3339Nano, j.Time)
	if err != nil {
		return Record{}, fmt.Errorf("time: %q is not an RFC 3339 time", j.Time)
	}
	r.Time = t.UTC()
	r.Method, r.Scheme, r.Host, r.Path, r.Status = j.Method, j.Scheme, j.Host, j.Path, j.Status
	if len(j.Headers) > 0 {
		r.Header = make([]Header, len(j.Headers))
		for i, h := range j.Headers {
			if len(h) != 2 {
				return Record{}, fmt.Errorf("headers[%d]: must be a [name, value] pair, got %d strings", i, len(h))
			}
			r.Header[i] = Header{Name: h[0], Value: h[1]}
		}
	}
	switch {
	case j.Body != nil && j.BodyBase64 != nil:
		return Record{}, errors.New("body and body_base64: give only one")
	case j.Body != nil && *j.Body != "":
		r.Body = []byte(*j.Body)
	case j.BodyBase64 != nil && *j.BodyBase64 != "":
		b, err := base64.StdEncoding.DecodeString(*j.BodyBase64)
		if err != nil {
			return Record{}, errors.New("body_base64: not standard base64 with padding")
		}
		r.Body = b
	}
	if j.Source != "" {
		r.Source = parseSource(j.Source)
	}
	return r, nil
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "int":
		return "an integer"
	case "slice":
		return "a list"
	}
	return goKind
}
