package capture

import (
	"encoding/base64"
	"time"
	"unicode/utf8"
)

// decodeFast reads the JSONL form as the Writer writes it, with three
// allocations: the line as one string (values without escapes are
// substrings of it), the header slice and the body. It gives up (ok=false)
// on anything unusual — an unknown or differently-cased key, null, a
// surrogate escape, invalid UTF-8, a bad value — and decodeJSONRecord then
// takes encoding/json's slower path, which decides and explains.
func decodeFast(line []byte) (rec Record, ok bool) {
	d := fastDec{s: string(line)}
	var (
		tm, body, body64 string
		haveBody, have64 bool
	)
	d.ws()
	if !d.eat('{') {
		return rec, false
	}
	for {
		d.ws()
		key, ok := d.str()
		if !ok {
			return rec, false
		}
		d.ws()
		if !d.eat(':') {
			return rec, false
		}
		d.ws()
		switch key {
		case "time":
			tm, ok = d.str()
		case "method":
			rec.Method, ok = d.str()
		case "scheme":
			rec.Scheme, ok = d.str()
		case "host":
			rec.Host, ok = d.str()
		case "path":
			rec.Path, ok = d.str()
		case "headers":
			rec.Header, ok = d.headers()
		case "body":
			body, ok = d.str()
			haveBody = true
		case "body_base64":
			body64, ok = d.str()
			have64 = true
		case "status":
			rec.Status, ok = d.status()
		case "source":
			var src string
			if src, ok = d.str(); ok && src != "" {
				rec.Source = parseSource(src)
			}
		default:
			return rec, false
		}
		if !ok {
			return rec, false
		}
		d.ws()
		if d.eat('}') {
			break
		}
		if !d.eat(',') {
			return rec, false
		}
	}
	d.ws()
	if d.i != len(d.s) || tm == "" || haveBody && have64 {
		return rec, false
	}
	t, err := time.Parse(time.RFC3339Nano, tm)
	if err != nil {
		return rec, false
	}
	rec.Time = t.UTC()
	switch {
	case body != "":
		rec.Body = []byte(body)
	case body64 != "":
		b, err := base64.StdEncoding.DecodeString(body64)
		if err != nil {
			return rec, false
		}
		rec.Body = b
	}
	return rec, true
}

type fastDec struct {
	s string
	i int
}

func (d *fastDec) ws() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\r', '\n':
			d.i++
		default:
			return
		}
	}
}

func (d *fastDec) eat(c byte) bool {
	if d.i < len(d.s) && d.s[d.i] == c {
		d.i++
		return true
	}
	return false
}

// str reads a JSON string. Without escapes it is a substring of the line.
func (d *fastDec) str() (string, bool) {
	if !d.eat('"') {
		return "", false
	}
	start := d.i
	ascii := true
	for d.i < len(d.s) {
		c := d.s[d.i]
		switch {
		case c == '"':
			v := d.s[start:d.i]
			d.i++
			if !ascii && !utf8.ValidString(v) {
				return "", false
			}
			return v, true
		case c == '\\':
			d.i = start
			return d.escaped()
		case c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
		d.i++
	}
	return "", false
}

// escaped reads a string with escapes from its first byte, into a new
// string.
func (d *fastDec) escaped() (string, bool) {
	b := make([]byte, 0, 64)
	for d.i < len(d.s) {
		c := d.s[d.i]
		switch {
		case c == '"':
			d.i++
			if !utf8.Valid(b) {
				return "", false
			}
			return string(b), true
		case c < 0x20:
			return "", false
		case c != '\\':
			b = append(b, c)
			d.i++
			continue
		}
		if d.i+1 >= len(d.s) {
			return "", false
		}
		d.i += 2
		switch e := d.s[d.i-1]; e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			if d.i+4 > len(d.s) {
				return "", false
			}
			var r rune
			for _, h := range []byte(d.s[d.i : d.i+4]) {
				v := unhex(h)
				if v < 0 {
					return "", false
				}
				r = r<<4 | rune(v)
			}
			if r >= 0xd800 && r < 0xe000 {
				return "", false // surrogates: leave them to encoding/json
			}
			b = utf8.AppendRune(b, r)
			d.i += 4
		default:
			return "", false
		}
	}
	return "", false
}

func (d *fastDec) headers() ([]Header, bool) {
	if !d.eat('[') {
		return nil, false
	}
	d.ws()
	if d.eat(']') {
		return nil, true
	}
	hs := make([]Header, 0, 8)
	for {
		d.ws()
		if !d.eat('[') {
			return nil, false
		}
		d.ws()
		name, ok := d.str()
		if !ok {
			return nil, false
		}
		d.ws()
		if !d.eat(',') {
			return nil, false
		}
		d.ws()
		value, ok := d.str()
		if !ok {
			return nil, false
		}
		d.ws()
		if !d.eat(']') {
			return nil, false
		}
		hs = append(hs, Header{Name: name, Value: value})
		d.ws()
		if d.eat(']') {
			return hs, true
		}
		if !d.eat(',') {
			return nil, false
		}
	}
}

// status reads a non-negative integer of at most nine digits.
func (d *fastDec) status() (int, bool) {
	n, digits := 0, 0
	for d.i < len(d.s) && d.s[d.i] >= '0' && d.s[d.i] <= '9' {
		n = n*10 + int(d.s[d.i]-'0')
		d.i++
		digits++
	}
	if digits == 0 || digits > 9 || digits > 1 && d.s[d.i-digits] == '0' {
		return 0, false
	}
	return n, true
}
