package capture

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/loadcap/loadcap/scenarios"
)

// DefaultScrubHeaders are the headers every Scrubber removes (or replaces):
// credentials and session state.
var DefaultScrubHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie"}

// ScrubConfig says what a Scrubber takes out of records besides
// DefaultScrubHeaders.
type ScrubConfig struct {
	// Headers are more header names to scrub (any case).
	Headers []string
	// Fields are body fields to scrub: JSON paths such as "password" (a
	// top-level member only) or "card.number" (arrays on the way are
	// walked through). A name without dots also scrubs that field of an
	// application/x-www-form-urlencoded body.
	Fields []string
	// Query are query parameter names to scrub.
	Query []string
	// Replace is the text a scrubbed value is replaced with (a JSON string
	// in bodies, escaped in queries). Empty: scrubbed headers, fields and
	// parameters are removed.
	Replace string
}

// Scrubber removes credentials and configured personal data from records.
// It is immutable and safe for concurrent use.
//
// A JSON body (one starting with { or [) that does not parse while Fields
// are configured is removed whole: what cannot be scrubbed is not kept.
type Scrubber struct {
	headers []string
	fields  *pathNode
	form    map[string]bool // top-level field names, for form bodies
	query   map[string]bool
	replace string
	jsonRep []byte // replace as a JSON string
	formRep string // replace, query-escaped
}

var defaultScrubber = func() *Scrubber {
	s, _ := NewScrubber(ScrubConfig{})
	return s
}()

// DefaultScrubber returns the scrubber that removes DefaultScrubHeaders and
// nothing else.
func DefaultScrubber() *Scrubber { return defaultScrubber }

// NewScrubber compiles c. Errors (a bad field path or header name) are
// scenarios.Errors naming the entry, e.g. "scrub.fields[1]".
func NewScrubber(c ScrubConfig) (*Scrubber, error) {
	s := &Scrubber{replace: c.Replace, form: map[string]bool{}, query: map[string]bool{}}
	var errs scenarios.Errors
	bad := func(path, format string, args ...any) {
		errs = append(errs, &scenarios.Error{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	s.headers = append(s.headers, DefaultScrubHeaders...)
	for i, h := range c.Headers {
		if !isToken(h) {
			bad(fmt.Sprintf("scrub.headers[%d]", i), "%q is not a header name", h)
			continue
		}
		s.headers = append(s.headers, h)
	}
	if len(c.Fields) > 0 {
		s.fields = newPathTrie()
	}
	for i, f := range c.Fields {
		if err := checkFieldPath(f); err != nil {
			bad(fmt.Sprintf("scrub.fields[%d]", i), "%v", err)
			continue
		}
		s.fields.add(f, 0)
		if !strings.Contains(f, ".") {
			s.form[f] = true
		}
	}
	for i, q := range c.Query {
		if q == "" {
			bad(fmt.Sprintf("scrub.query[%d]", i), "the parameter name is empty")
			continue
		}
		s.query[q] = true
	}
	if len(errs) > 0 {
		return nil, errs
	}
	if c.Replace != "" {
		s.jsonRep = appendJSONString(nil, c.Replace)
		s.formRep = url.QueryEscape(c.Replace)
	}
	return s, nil
}

// Scrub takes the configured data out of rec. It replaces rec's Header,
// Path and Body rather than writing into them, so rec may be a shallow copy
// of a record shared with others.
func (s *Scrubber) Scrub(rec *Record) {
	s.scrubHeaders(rec)
	if len(s.query) > 0 {
		if p, q := splitQuery(rec.Path); q != "" {
			nq, _ := editParams(q, s.param)
			if nq != q {
				rec.Path = joinQuery(p, nq)
			}
		}
	}
	if s.fields != nil && len(rec.Body) > 0 {
		s.scrubBody(rec)
	}
}

func (s *Scrubber) scrubbedHeader(name string) bool {
	for _, h := range s.headers {
		if strings.EqualFold(h, name) {
			return true
		}
	}
	return false
}

func (s *Scrubber) scrubHeaders(rec *Record) {
	first := -1
	for i, h := range rec.Header {
		if s.scrubbedHeader(h.Name) {
			first = i
			break
		}
	}
	if first < 0 {
		return
	}
	out := make([]Header, first, len(rec.Header))
	copy(out, rec.Header[:first])
	for _, h := range rec.Header[first:] {
		if s.scrubbedHeader(h.Name) {
			if s.replace == "" {
				continue
			}
			h.Value = sanitizeValue(s.replace)
		}
		out = append(out, h)
	}
	if len(out) == 0 {
		out = nil
	}
	rec.Header = out
}

func (s *Scrubber) param(name, _ string) (string, paramAct) {
	if !s.query[name] {
		return "", paramKeep
	}
	if s.replace == "" {
		return "", paramRemove
	}
	return s.formRep, paramSet
}

func (s *Scrubber) formParam(name, _ string) (string, paramAct) {
	if !s.form[name] {
		return "", paramKeep
	}
	if s.replace == "" {
		return "", paramRemove
	}
	return s.formRep, paramSet
}

func (s *Scrubber) leaf(_ *pathNode, _, dst []byte) ([]byte, leafAct) {
	if s.replace == "" {
		return dst, leafRemove
	}
	return append(dst, s.jsonRep...), leafReplace
}

func (s *Scrubber) scrubBody(rec *Record) {
	if looksJSON(rec.Body) {
		if !json.Valid(rec.Body) {
			rec.Body = nil
			return
		}
		if out, changed, _ := editJSON(rec.Body, s.fields, false, s.leaf); changed {
			rec.Body = out
		}
		return
	}
	if len(s.form) == 0 {
		return
	}
	if ct, _ := rec.Lookup("Content-Type"); !strings.HasPrefix(strings.ToLower(strings.TrimSpace(ct)), "application/x-www-form-urlencoded") {
		return
	}
	if nb, _ := editParams(string(rec.Body), s.formParam); nb != string(rec.Body) {
		rec.Body = []byte(nb)
	}
}

// joinQuery puts a path and a query back together ("?" only with a query).
func joinQuery(path, query string) string {
	if query == "" {
		return path
	}
	return path + "?" + query
}
