package capture

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loadcap/loadcap/scenarios"
)

func loadFixtureRules(t *testing.T) *Rewriter {
	t.Helper()
	rw, err := LoadRules("testdata/rewrite.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return rw
}

func req(method, target string, headers []Header, body string) Record {
	r := Record{Time: time.Date(2026, 11, 11, 10, 0, 0, 0, time.UTC), Method: method, Scheme: "https", Host: "shop.example.com", Path: target, Header: headers}
	if body != "" {
		r.Body = []byte(body)
	}
	return r
}

func TestRewriteApply(t *testing.T) {
	rw := loadFixtureRules(t)
	ua := []Header{{"User-Agent", "app"}, {"X-Forwarded-For", "1.2.3.4"}, {"Authorization", "Bearer real"}}
	tests := []struct {
		name    string
		in      Record
		copy    int
		keep    bool
		target  string // host + path
		headers string
		body    string
	}{
		{
			name: "path ID, path rewrite, retarget, headers", in: req("GET", "/api/v1/orders/1234/items?x=1", ua, ""),
			keep: true, target: "http://127.0.0.1:8080/api/v2/orders/1000001234/items?x=1",
			headers: "User-Agent=app Authorization=Bearer shadow-token X-Env=shadow X-Replay=loadcap",
		},
		{
			name: "copy 2 of the same request lands in its own range", in: req("GET", "/orders/1234", nil, ""), copy: 2,
			keep: true, target: "http://127.0.0.1:8080/orders/3000001234",
			headers: "Authorization=Bearer shadow-token X-Env=shadow X-Replay=loadcap",
		},
		{
			name: "query ID with its own stride, other parameters untouched", in: req("GET", "/profile?a=1&user_id=77&user_id=78&b", nil, ""), copy: 1,
			keep: true, target: "http://127.0.0.1:8080/profile?a=1&user_id=1500000077&user_id=1500000078&b",
			headers: "Authorization=Bearer shadow-token X-Env=shadow X-Replay=loadcap",
		},
		{
			name: "header prefix per copy; mapped host", in: Record{Time: time.Unix(1, 0), Method: "PUT", Host: "CDN.example.com", Path: "/legacy/img/1", Header: []Header{{"x-cart-id", "c-9"}}}, copy: 3,
			keep: true, target: "http://127.0.0.1:8081/img/1",
			headers: "x-cart-id=shadow3-c-9 Authorization=Bearer shadow-token X-Env=shadow X-Replay=loadcap",
		},
		{
			name: "JSON fields: numbers stay numbers, IDs in strings and through arrays", copy: 1,
			in:   req("POST", "/api/checkout", nil, `{"order":{"id":42,"items":[{"sku":"SKU-7"},{"sku":["SKU-8","other"]},{"sku":null}]},"id":42}`),
			keep: true, target: "http://127.0.0.1:8080/api/checkout",
			headers: "Authorization=Bearer shadow-token X-Env=shadow X-Replay=loadcap",
			body:    `{"order":{"id":2000000042,"items":[{"sku":"SKU-10000007"},{"sku":["SKU-10000008","other"]},{"sku":null}]},"id":42}`,
		},
		{name: "dropped route", in: req("POST", "/payments/callback/stripe", nil, ""), keep: false},
		{name: "dropped route, any method", in: req("GET", "/admin/users", nil, ""), keep: false},
		{name: "a GET to the callback path is not dropped", in: req("GET", "/payments/callback", nil, ""), keep: true, target: "http://127.0.0.1:8080/payments/callback",
			headers: "Authorization=Bearer shadow-token X-Env=shadow X-Replay=loadcap"},
		{name: "an ID past the stride is never sent", in: req("GET", "/orders/1000000000", nil, ""), keep: false},
		{name: "a non-numeric ID in offset mode is never sent", in: req("GET", "/p?user_id=abc", nil, ""), keep: false},
		{name: "a body ID that cannot be mapped drops the record", in: req("POST", "/x", nil, `{"order":{"id":"x1"}}`), keep: false},
		{name: "a negative copy is refused", in: req("GET", "/", nil, ""), copy: -1, keep: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			shared := tt.in
			before := shared.AppendJSON(nil)
			rec := shared
			keep := rw.Apply(&rec, tt.copy)
			if string(shared.AppendJSON(nil)) != string(before) {
				t.Fatalf("Apply changed the shared record")
			}
			if keep != tt.keep {
				t.Fatalf("keep = %v, want %v", keep, tt.keep)
			}
			if !keep {
				return
			}
			if got := rec.Scheme + "://" + rec.Host + rec.Path; got != tt.target {
				t.Errorf("target %s, want %s", got, tt.target)
			}
			if got := headerString(rec.Header); got != tt.headers {
				t.Errorf("headers %q, want %q", got, tt.headers)
			}
			if string(rec.Body) != tt.body {
				t.Errorf("body %s, want %s", rec.Body, tt.body)
			}
			if err := rec.Validate(); err != nil {
				t.Errorf("the rewritten record is invalid: %v", err)
			}
		})
	}
	st := rw.Stats()
	if st.DroppedRoute != 2 || st.DroppedID != 4 || st.DroppedInvalid != 0 {
		t.Errorf("stats %+v, want 2 route drops and 4 ID drops", st)
	}
}

// TestAmplifyDisjoint: three copies of a recording map its IDs into three
// ranges that do not meet each other or the real IDs.
func TestAmplifyDisjoint(t *testing.T) {
	rw, err := ParseRules("r.yaml", []byte("ids:\n  - {path: '^/orders/(\\d+)', offset: 1000}\n  - {header: X-User, prefix: s-}\n"))
	if err != nil {
		t.Fatal(err)
	}
	const copies = 3
	seen := map[string]int{} // mapped ID → copy
	prefixes := map[string]int{}
	for id := 0; id < 1000; id++ {
		for k := 0; k < copies; k++ {
			rec := req("GET", "/orders/"+strconv.Itoa(id), []Header{{"X-User", strconv.Itoa(id)}}, "")
			if !rw.Apply(&rec, k) {
				t.Fatalf("copy %d of id %d dropped", k, id)
			}
			mapped := strings.TrimPrefix(rec.Path, "/orders/")
			n, _ := strconv.Atoi(mapped)
			if lo, hi := 1000*(k+1), 1000*(k+2); n < lo || n >= hi {
				t.Fatalf("copy %d of id %d is %d, outside [%d, %d)", k, id, n, lo, hi)
			}
			if other, dup := seen[mapped]; dup {
				t.Fatalf("id %s is used by copies %d and %d", mapped, other, k)
			}
			seen[mapped] = k
			v, _ := rec.Lookup("X-User")
			prefixes[strings.TrimSuffix(v, strconv.Itoa(id))] = k
		}
	}
	if fmt.Sprint(prefixes) != "map[s-:0 s1-:1 s2-:2]" {
		t.Errorf("header prefixes by copy: %v", prefixes)
	}
}

// TestRewriteConcurrent: one Rewriter, many goroutines (run with -race).
func TestRewriteConcurrent(t *testing.T) {
	rw := loadFixtureRules(t)
	shared := req("POST", "/api/v1/orders/5?user_id=9", []Header{{"X-Cart-Id", "c"}}, `{"order":{"id":5}}`)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				rec := shared
				if !rw.Apply(&rec, g%3) {
					t.Error("dropped")
					return
				}
				want := fmt.Sprintf("/api/v2/orders/%d?user_id=%d", 1000000005+(g%3)*1000000000, 1000000009+(g%3)*500000000)
				if rec.Path != want {
					t.Errorf("path %s, want %s", rec.Path, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestParseRulesErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // each must appear, with its position
	}{
		{
			name: "every problem at once",
			src: `host: http://127.0.0.1:8080
scheme: ftp
pathz: []
paths:
  - {match: '([', replace: /x}
  - {match: '^/a'}
headers:
  set: {Host: x, "bad name": y, X-Ok: "a\nb"}
  drop: [Content-Length]
drop:
  - {}
  - {method: "P O", path: '^/x'}
ids:
  - {offset: 5}
  - {path: '^/o/(\d+)', query: id, offset: 5}
  - {query: id, offset: 0}
  - {header: X-Id, prefix: shadow1}
  - {field: a..b, offset: 5}
  - {path: '^/o', match: '\d+', offset: 5}
  - {query: q, prefix: p-, stride: 3}
  - {query: q, offset: 1, prefix: p-}
  - {field: x, offset: 5}
  - {field: x, offset: 6}
  - [not, a, mapping]
`,
			want: []string{
				"r.yaml:1:7: host: give host[:port] without a scheme",
				`r.yaml:2:9: scheme: must be http or https, got "ftp"`,
				`r.yaml:3:1: pathz: unknown key (did you mean "paths"?)`,
				"r.yaml:5:13: paths[0].match: not a regular expression",
				"r.yaml:6:5: paths[1]: replace: is required",
				"r.yaml:8:9: headers.set.Host: Host is not a header of a record",
				`r.yaml:8:18: headers.set.bad name: "bad name" is not a header name`,
				"r.yaml:8:39: headers.set.X-Ok: a header value may not hold CR, LF or NUL",
				"r.yaml:9:10: headers.drop[0]: Content-Length is set by the client",
				"r.yaml:11:5: drop[0]: give method:, path:",
				`r.yaml:12:14: drop[1].method: "P O" is not a method`,
				"r.yaml:14:5: ids[0]: say where the ID is",
				"r.yaml:15:5: ids[1]: give one of path:, query:, header:, field: per rule, got path, query",
				"r.yaml:16:25: ids[2].offset: must be positive",
				"r.yaml:17:28: ids[3].prefix: must not end in a digit",
				`r.yaml:18:13: ids[4].field: field path "a..b" has an empty name`,
				"r.yaml:19:19: ids[5].match: path: is already the pattern",
				"r.yaml:20:5: ids[6]: stride: goes with offset:, not prefix:",
				"r.yaml:21:5: ids[7]: give offset: or prefix:, not both",
				"r.yaml:23:5: ids[9]: field x already has an ID rule above",
				"r.yaml:24:5: ids[10]: must be a mapping, got a list",
			},
		},
		{name: "empty", src: "", want: []string{"r.yaml: the file is empty"}},
		{name: "syntax", src: "host: [\n", want: []string{"r.yaml:1: YAML syntax: did not find expected node content"}},
		{name: "not a mapping", src: "- a\n", want: []string{"r.yaml:1:1: must be a mapping, got a list"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRules("r.yaml", []byte(tt.src))
			if !scenarios.Invalid(err) {
				t.Fatalf("err = %v, want invalid input", err)
			}
			var es scenarios.Errors
			if !errors.As(err, &es) {
				t.Fatalf("err is %T", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing %q", w)
				}
			}
			if len(es) != len(tt.want) {
				t.Errorf("%d errors, want %d:\n%v", len(es), len(tt.want), err)
			}
		})
	}
}

func TestRewritePathAddsQuery(t *testing.T) {
	rw, err := ParseRules("r.yaml", []byte("paths:\n  - {match: '^/old/(\\w+)$', replace: '/new?item=$1'}\n  - {match: '^/bad', replace: 'no-slash'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ in, want string }{
		{"/old/x?a=1", "/new?item=x&a=1"},
		{"/old/y", "/new?item=y"},
		{"/bad/z", ""}, // dropped: the result is not a path
	}
	for _, tt := range tests {
		rec := req("GET", tt.in, nil, "")
		keep := rw.Apply(&rec, 0)
		if keep != (tt.want != "") || keep && rec.Path != tt.want {
			t.Errorf("%s → %s (keep %v), want %q", tt.in, rec.Path, keep, tt.want)
		}
	}
	if st := rw.Stats(); st.DroppedInvalid != 1 {
		t.Errorf("stats %+v, want one invalid", st)
	}
}
