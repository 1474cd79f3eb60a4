package capture

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/loadcap/loadcap/scenarios"
)

func baseRecord() Record {
	return Record{
		Time:   time.Date(2026, 11, 11, 10, 0, 0, 0, time.UTC),
		Method: "POST",
		Path:   "/api/pay?token=t0k&order=1&access_token=x",
		Header: []Header{
			{"Content-Type", "application/json"},
			{"Authorization", "Bearer real"},
			{"cookie", "session=1"},
			{"X-Api-Key", "k"},
			{"Accept", "*/*"},
		},
		Body: []byte(`{"card":{"number":"4111111111111111","cvc":"123"},"password":"p","items":[{"card":{"number":"5500"}},{"sku":1}],"note":"keep"}`),
	}
}

func TestScrub(t *testing.T) {
	tests := []struct {
		name    string
		config  ScrubConfig
		mutate  func(*Record)
		headers string // names=values after scrubbing, in order
		path    string
		body    string
	}{
		{
			name:    "defaults remove credentials only",
			headers: "Content-Type=application/json X-Api-Key=k Accept=*/*",
			path:    "/api/pay?token=t0k&order=1&access_token=x",
			body:    `{"card":{"number":"4111111111111111","cvc":"123"},"password":"p","items":[{"card":{"number":"5500"}},{"sku":1}],"note":"keep"}`,
		},
		{
			name:    "configured headers, fields through arrays, query parameters removed",
			config:  ScrubConfig{Headers: []string{"x-api-key"}, Fields: []string{"card.number", "password", "items.card.number"}, Query: []string{"token", "access_token"}},
			headers: "Content-Type=application/json Accept=*/*",
			path:    "/api/pay?order=1",
			body:    `{"card":{"cvc":"123"},"items":[{"card":{}},{"sku":1}],"note":"keep"}`,
		},
		{
			name:    "replaced instead of removed",
			config:  ScrubConfig{Fields: []string{"card", "password"}, Query: []string{"order"}, Replace: "REDACTED by\"x"},
			headers: `Content-Type=application/json Authorization=REDACTED by"x cookie=REDACTED by"x X-Api-Key=k Accept=*/*`,
			path:    "/api/pay?token=t0k&order=REDACTED+by%22x&access_token=x",
			body:    `{"card":"REDACTED by\"x","password":"REDACTED by\"x","items":[{"card":{"number":"5500"}},{"sku":1}],"note":"keep"}`,
		},
		{
			name:    "every member removed, whitespace kept",
			config:  ScrubConfig{Fields: []string{"a", "b"}},
			mutate:  func(r *Record) { r.Body = []byte("{ \"a\" : 1 ,\n \"b\":[2] }") },
			headers: "Content-Type=application/json X-Api-Key=k Accept=*/*",
			path:    "/api/pay?token=t0k&order=1&access_token=x",
			body:    "{  }",
		},
		{
			name:   "middle and last members, escaped key",
			config: ScrubConfig{Fields: []string{"pass", "x.y"}},
			mutate: func(r *Record) {
				r.Header = nil
				r.Body = []byte(`[{"a":1,"p\u0061ss":"s","b":2,"x":{"y":1,"z":2}},{"a":1,"pass":"s"}]`)
			},
			path: "/api/pay?token=t0k&order=1&access_token=x",
			body: `[{"a":1,"b":2,"x":{"z":2}},{"a":1}]`,
		},
		{
			name:    "a JSON body that does not parse is dropped",
			config:  ScrubConfig{Fields: []string{"password"}},
			mutate:  func(r *Record) { r.Body = []byte(`{"password":"p",`) },
			headers: "Content-Type=application/json X-Api-Key=k Accept=*/*",
			path:    "/api/pay?token=t0k&order=1&access_token=x",
			body:    "",
		},
		{
			name:   "form body fields",
			config: ScrubConfig{Fields: []string{"password", "card.number"}},
			mutate: func(r *Record) {
				r.Header = []Header{{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}}
				r.Body = []byte("user=ann&password=hunter2&card.number=1")
			},
			headers: "Content-Type=application/x-www-form-urlencoded; charset=utf-8",
			path:    "/api/pay?token=t0k&order=1&access_token=x",
			body:    "user=ann&card.number=1",
		},
		{
			name:    "a text body is left alone",
			config:  ScrubConfig{Fields: []string{"password"}},
			mutate:  func(r *Record) { r.Body = []byte("password=1") },
			headers: "Content-Type=application/json X-Api-Key=k Accept=*/*",
			path:    "/api/pay?token=t0k&order=1&access_token=x",
			body:    "password=1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewScrubber(tt.config)
			if err != nil {
				t.Fatal(err)
			}
			shared := baseRecord()
			if tt.mutate != nil {
				tt.mutate(&shared)
			}
			before := shared.AppendJSON(nil)
			rec := shared // a shallow copy, as the Writer and a replay make
			s.Scrub(&rec)
			if got := headerString(rec.Header); got != tt.headers {
				t.Errorf("headers %q, want %q", got, tt.headers)
			}
			if rec.Path != tt.path {
				t.Errorf("path %q, want %q", rec.Path, tt.path)
			}
			if string(rec.Body) != tt.body {
				t.Errorf("body %s, want %s", rec.Body, tt.body)
			}
			if after := shared.AppendJSON(nil); !bytes.Equal(before, after) {
				t.Errorf("scrubbing a copy changed the shared record:\n%s\n%s", before, after)
			}
		})
	}
}

func headerString(hs []Header) string {
	var parts []string
	for _, h := range hs {
		parts = append(parts, h.Name+"="+h.Value)
	}
	return strings.Join(parts, " ")
}

func TestScrubConfigErrors(t *testing.T) {
	_, err := NewScrubber(ScrubConfig{Headers: []string{"ok", "bad name"}, Fields: []string{"a..b", ""}, Query: []string{""}})
	if !scenarios.Invalid(err) {
		t.Fatalf("err = %v, want invalid input", err)
	}
	for _, want := range []string{`scrub.headers[1]: "bad name" is not a header name`, "scrub.fields[0]: field path \"a..b\" has an empty name at part 2", "scrub.fields[1]: the field path is empty", "scrub.query[0]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// TestWriterScrubsByDefault: what import writes never holds the default
// credentials, unless scrubbing is turned off on purpose.
func TestWriterScrubsByDefault(t *testing.T) {
	rec := baseRecord()
	rec.Header = append(rec.Header, Header{"Set-Cookie", "a=b"}, Header{"Proxy-Authorization", "Basic x"})
	var out bytes.Buffer
	w := NewWriter(&out)
	if err := w.Write(&rec); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	for _, secret := range []string{"Bearer real", "session=1", "a=b", "Basic x"} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("output holds %q: %s", secret, out.String())
		}
	}
	if len(rec.Header) != 7 {
		t.Errorf("Write changed the caller's record: %d headers", len(rec.Header))
	}
	out.Reset()
	w = NewWriter(&out, WithoutScrubbing())
	w.Write(&rec)
	w.Flush()
	if !strings.Contains(out.String(), "Bearer real") {
		t.Errorf("WithoutScrubbing still scrubbed: %s", out.String())
	}
}

// TestEditParams: parameters a, b and c are removed and y is set to Y.
func TestEditParams(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"first", "a=1&x=2", "x=2"},
		{"middle", "x=1&a=2&y=3", "x=1&y=Y"},
		{"last", "x=1&a=2", "x=1"},
		{"last two", "x=1&b=2&c=3", "x=1"},
		{"all", "a=1&b=2", ""},
		{"escaped name, empty parts kept, bare name set", "x=1&&%61=2&y", "x=1&&y=Y"},
		{"untouched", "x=1&z=2", "x=1&z=2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := editParams(tt.in, func(name, _ string) (string, paramAct) {
				switch name {
				case "a", "b", "c":
					return "", paramRemove
				case "y":
					return "Y", paramSet
				}
				return "", paramKeep
			})
			if !ok || got != tt.want {
				t.Errorf("editParams(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
