package capture

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
)

// HARReader reads HAR 1.2 files (as browsers and proxies export them) entry
// by entry, with encoding/json's token stream: memory holds one entry, never
// the file. Each entry's startedDateTime, request (method, url, headers,
// postData) and response.status make a record; everything else is skipped.
// Entries that are not http(s) requests (data:, ws:, ...) are malformed.
//
// A syntax error or a truncated file is one malformed record; the entries
// read before it are kept and the stream ends there.
type HARReader struct {
	name  string
	lc    *lineCounter
	dec   *json.Decoder
	state int // harStart, harEntries, harDone
	mal   Malformed
}

const (
	harStart = iota
	harEntries
	harDone
)

var _ Reader = (*HARReader)(nil)

// NewHARReader reads a HAR document from r; name is the file name sources
// give.
func NewHARReader(r io.Reader, name string) *HARReader {
	return newHARReader(bufio.NewReaderSize(r, 64<<10), name)
}

func newHARReader(br *bufio.Reader, name string) *HARReader {
	skipBOM(br)
	lc := &lineCounter{r: br}
	dec := json.NewDecoder(lc)
	dec.UseNumber()
	return &HARReader{name: name, lc: lc, dec: dec}
}

// harError is a document that is valid JSON but not a HAR.
type harError struct{ msg string }

func (e *harError) Error() string { return e.msg }

// Next returns the next entry's record.
func (h *HARReader) Next() (Record, error) {
	if h.state == harStart {
		if err := h.findEntries(); err != nil {
			return h.fail(err)
		}
		h.state = harEntries
	}
	for h.state == harEntries {
		if !h.dec.More() {
			if _, err := h.dec.Token(); err != nil { // the closing ]
				return h.fail(err)
			}
			h.state = harDone
			break
		}
		tok, err := h.dec.Token()
		if err != nil {
			return h.fail(err)
		}
		src := Source{File: h.name, Line: h.lc.lineAt(h.dec.InputOffset() - 1)}
		if d, ok := tok.(json.Delim); !ok || d != '{' {
			if ok {
				if err := h.skipRest(1); err != nil {
					return h.fail(err)
				}
			}
			h.mal.add(src, "entry is not an object")
			continue
		}
		rec, reason, err := h.entry()
		if err != nil {
			return h.fail(err)
		}
		if reason == "" {
			if err := rec.Validate(); err != nil {
				reason = err.Error()
			}
		}
		if reason != "" {
			h.mal.add(src, "%s", reason)
			continue
		}
		rec.Source = src
		return rec, nil
	}
	return Record{}, io.EOF
}

// Malformed reports the entries skipped so far.
func (h *HARReader) Malformed() Malformed { return h.mal.clone() }

// fail ends the stream. A broken document is a malformed record; a failure
// to read is returned.
func (h *HARReader) fail(err error) (Record, error) {
	h.state = harDone
	src := Source{File: h.name, Line: h.lc.lineAt(h.dec.InputOffset())}
	var se *json.SyntaxError
	var he *harError
	switch {
	case errors.As(err, &se):
		h.mal.add(src, "invalid JSON: %s", se.Error())
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		h.mal.add(src, "the file ends in the middle of the HAR document")
	case errors.As(err, &he):
		h.mal.add(src, "not a HAR file: %s", he.msg)
	default:
		return Record{}, readErr(h.name, err)
	}
	return Record{}, io.EOF
}

// findEntries reads up to the opening bracket of log.entries.
func (h *HARReader) findEntries() error {
	if err := h.open('{', "the document is not a JSON object"); err != nil {
		return err
	}
	if err := h.seek("log"); err != nil {
		return err
	}
	if err := h.open('{', "log is not an object"); err != nil {
		return err
	}
	if err := h.seek("entries"); err != nil {
		return err
	}
	return h.open('[', "log.entries is not a list")
}

func (h *HARReader) open(want json.Delim, msg string) error {
	tok, err := h.dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return &harError{msg}
	}
	return nil
}

// seek skips an object's members up to the key; it is an error when the
// object ends first.
func (h *HARReader) seek(key string) error {
	for h.dec.More() {
		tok, err := h.dec.Token()
		if err != nil {
			return err
		}
		if tok == key {
			return nil
		}
		if err := h.skipValue(); err != nil {
			return err
		}
	}
	if _, err := h.dec.Token(); err != nil {
		return err
	}
	return &harError{"no " + key}
}

// skipValue consumes one value token by token.
func (h *HARReader) skipValue() error {
	tok, err := h.dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); ok && (d == '{' || d == '[') {
		return h.skipRest(1)
	}
	return nil
}

// skipRest consumes tokens until depth open containers are closed.
func (h *HARReader) skipRest(depth int) error {
	for depth > 0 {
		tok, err := h.dec.Token()
		if err != nil {
			return err
		}
		if d, ok := tok.(json.Delim); ok {
			if d == '{' || d == '[' {
				depth++
			} else {
				depth--
			}
		}
		h.lc.lineAt(h.dec.InputOffset()) // keeps the newline list short
	}
	return nil
}

type harNV struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type harPostData struct {
	MimeType string  `json:"mimeType"`
	Text     string  `json:"text"`
	Encoding string  `json:"encoding"` // not HAR 1.2, but some tools write "base64"
	Params   []harNV `json:"params"`
}

type harRequest struct {
	Method   string       `json:"method"`
	URL      string       `json:"url"`
	Headers  []harNV      `json:"headers"`
	PostData *harPostData `json:"postData"`
}

// decode decodes the next value into v. A value of the wrong type is a
// reason (the stream stays in step); anything else is an error.
func (h *HARReader) decode(field string, v any) (reason string, err error) {
	err = h.dec.Decode(v)
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		path := field
		if te.Field != "" {
			path += "." + te.Field
		}
		return fmt.Sprintf("%s: must be %s, got a JSON %s", path, jsonKind(te.Type.Kind().String()), te.Value), nil
	}
	return "", err
}

// entry reads an entry's members after its opening brace, and the closing
// brace.
func (h *HARReader) entry() (rec Record, reason string, err error) {
	var (
		started string
		req     *harRequest
		status  json.Number
	)
	note := func(r string) {
		if reason == "" {
			reason = r
		}
	}
	for h.dec.More() {
		tok, err := h.dec.Token()
		if err != nil {
			return rec, "", err
		}
		var r string
		switch tok {
		case "startedDateTime":
			r, err = h.decode("startedDateTime", &started)
		case "request":
			req = new(harRequest)
			r, err = h.decode("request", req)
		case "response":
			status, r, err = h.response()
		default:
			err = h.skipValue()
		}
		if err != nil {
			return rec, "", err
		}
		if r != "" {
			note(r)
		}
	}
	if _, err := h.dec.Token(); err != nil {
		return rec, "", err
	}
	if reason != "" {
		return rec, reason, nil
	}
	if started == "" {
		return rec, "no startedDateTime", nil
	}
	t, ok := parseHARTime(started)
	if !ok {
		return rec, fmt.Sprintf("startedDateTime %s is not an ISO 8601 time", quoteShort(started)), nil
	}
	rec.Time = t
	if req == nil {
		return rec, "no request", nil
	}
	if !isToken(req.Method) {
		return rec, fmt.Sprintf("request.method %s is not a token", quoteShort(req.Method)), nil
	}
	rec.Method = req.Method
	scheme, host, target, ok := splitURL(req.URL)
	if !ok {
		return rec, fmt.Sprintf("request.url %s is not an http(s) URL", quoteShort(req.URL)), nil
	}
	rec.Scheme, rec.Host, rec.Path = scheme, host, normalizePath(target)
	for i, nv := range req.Headers {
		if dropped(nv.Name) {
			continue
		}
		if !isToken(nv.Name) {
			return rec, fmt.Sprintf("request.headers[%d]: name %s is not a token", i, quoteShort(nv.Name)), nil
		}
		if rec.Header == nil {
			rec.Header = make([]Header, 0, len(req.Headers))
		}
		rec.Header = append(rec.Header, Header{Name: nv.Name, Value: sanitizeValue(nv.Value)})
	}
	if pd := req.PostData; pd != nil {
		switch {
		case pd.Text != "" && strings.EqualFold(pd.Encoding, "base64"):
			b, err := base64.StdEncoding.DecodeString(pd.Text)
			if err != nil {
				return rec, "request.postData.text: not valid base64", nil
			}
			rec.Body = b
		case pd.Text != "":
			rec.Body = []byte(pd.Text)
		case len(pd.Params) > 0:
			// A form the tool recorded as fields only.
			var b []byte
			for i, p := range pd.Params {
				if i > 0 {
					b = append(b, '&')
				}
				b = append(b, url.QueryEscape(p.Name)...)
				b = append(b, '=')
				b = append(b, url.QueryEscape(p.Value)...)
			}
			rec.Body = b
		}
	}
	if status != "" {
		n, err := status.Int64()
		switch {
		case err != nil || n < 0 || n > 999:
			return rec, fmt.Sprintf("response.status %s is not a status code", quoteShort(string(status))), nil
		case n >= 100:
			rec.Status = int(n) // 0 is HAR's "no response"
		}
	}
	return rec, "", nil
}

// response reads the response value and returns its status.
func (h *HARReader) response() (status json.Number, reason string, err error) {
	tok, err := h.dec.Token()
	if err != nil {
		return "", "", err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		if ok {
			err = h.skipRest(1)
		}
		return "", "response is not an object", err
	}
	for h.dec.More() {
		tok, err := h.dec.Token()
		if err != nil {
			return "", "", err
		}
		if tok == "status" {
			var r string
			if r, err = h.decode("response.status", &status); err != nil {
				return "", "", err
			}
			if reason == "" {
				reason = r
			}
			continue
		}
		if err := h.skipValue(); err != nil {
			return "", "", err
		}
	}
	_, err = h.dec.Token()
	return status, reason, err
}

func parseHARTime(s string) (time.Time, bool) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), true
	}
	// Offsets without a colon, as some tools write them.
	if t, err := time.Parse("2006-01-02T15:04:05.999999999-0700", s); err == nil {
		return t.UTC(), true
	}
	return time.Time{}, false
}

// lineCounter passes reads through and maps byte offsets to line numbers.
// Queries must not go backwards; it keeps only the newlines it has read past
// the last query, so its memory is bounded by the decoder's look-ahead.
type lineCounter struct {
	r     io.Reader
	read  int64   // bytes read so far
	nl    []int64 // offsets of newlines at or after the last query
	head  int     // nl[:head] are passed
	lines int     // newlines before the last query
}

func (c *lineCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	b := p[:n]
	for off := 0; ; {
		i := bytes.IndexByte(b[off:], '\n')
		if i < 0 {
			break
		}
		c.nl = append(c.nl, c.read+int64(off+i))
		off += i + 1
	}
	c.read += int64(n)
	return n, err
}

// lineAt returns the 1-based line holding the byte at offset off.
func (c *lineCounter) lineAt(off int64) int {
	for c.head < len(c.nl) && c.nl[c.head] < off {
		c.head++
		c.lines++
	}
	if c.head > 1024 && 2*c.head >= len(c.nl) {
		c.nl = append(c.nl[:0], c.nl[c.head:]...)
		c.head = 0
	}
	return c.lines + 1
}
