package scenarios

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// errorLines parses src as t.yaml and returns its problems, one string each.
func errorLines(t *testing.T, src string) []string {
	t.Helper()
	_, err := Parse("t.yaml", []byte(src))
	if err == nil {
		return nil
	}
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("error is %T, want Errors: %v", err, err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Error())
	}
	return out
}

const scenarioHead = `target: http://127.0.0.1:8080
requests: [{name: home, path: /}]
scenarios:
  browse:
`

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{
			name: "empty file",
			src:  "",
			want: []string{"t.yaml: the file is empty"},
		},
		{
			name: "yaml syntax",
			src:  "target: [\n",
			want: []string{"t.yaml:1: YAML syntax: did not find expected node content"},
		},
		{
			name: "two documents",
			src:  minimal("  - {name: a, path: /}\n") + "---\nb: 1\n",
			want: []string{"t.yaml:9:1: only one YAML document is allowed per file"},
		},
		{
			name: "not a mapping",
			src:  "- a\n",
			want: []string{"t.yaml:1:1: must be a mapping, got a list"},
		},
		{
			name: "required sections",
			src:  "target: http://127.0.0.1\n",
			want: []string{
				"t.yaml:1:1: requests: is required: the mix of requests to send",
				"t.yaml:1:1: scenarios: is required: at least one k6 scenario, e.g. an executor: constant-arrival-rate",
			},
		},
		{
			name: "unknown root key with suggestion",
			src:  minimal("  - {name: a, path: /}\n") + "treshold: {}\n",
			want: []string{`t.yaml:9:1: treshold: unknown key (did you mean "thresholds"?); expected one of: target, http, data, seed, scenarios, requests, thresholds, drill_id, replay, k6`},
		},
		{
			name: "duplicate key",
			src:  "seed: 1\n" + minimal("  - {name: a, path: /}\n") + "seed: 2\n",
			want: []string{"t.yaml:10:1: seed: duplicate key (first defined at line 1)"},
		},
		{
			name: "target not http",
			src:  strings.Replace(minimal("  - {name: a, path: /}\n"), "http://127.0.0.1:8080", "ftp://127.0.0.1", 1),
			want: []string{`t.yaml:1:9: target: scheme "ftp" is not supported: use http or https`},
		},
		{
			name: "target without scheme",
			src:  strings.Replace(minimal("  - {name: a, path: /}\n"), "http://127.0.0.1:8080", "127.0.0.1:8080", 1),
			want: []string{`t.yaml:1:9: target: "127.0.0.1:8080" is not an absolute URL: write it as http://HOST[:PORT][/PATH]`},
		},
		{
			name: "target without host",
			src:  strings.Replace(minimal("  - {name: a, path: /}\n"), "http://127.0.0.1:8080", "http:///x", 1),
			want: []string{`t.yaml:1:9: target: "http:///x" has no host: write it as http://HOST[:PORT][/PATH]`},
		},
		{
			name: "target bad port",
			src:  strings.Replace(minimal("  - {name: a, path: /}\n"), "8080", "99999", 1),
			want: []string{`t.yaml:1:9: target: port 99999 is out of range 1-65535`},
		},
		{
			name: "path without target",
			src:  strings.Replace(minimal("  - {name: a, path: /}\n"), "target: http://127.0.0.1:8080\n", "", 1),
			want: []string{`t.yaml:7:15: requests[0].path: needs a top-level target: to join it to (or use url: with an absolute URL)`},
		},
		{
			name: "bad durations",
			src:  scenarioHead + "    executor: constant-vus\n    duration: 10 seconds\nhttp: {timeout: -1s}\n",
			want: []string{
				`t.yaml:6:15: scenarios.browse.duration: must be a duration such as 30s or 1m30s (a bare number means milliseconds), got "10 seconds"`,
				`t.yaml:7:17: http.timeout: duration "-1s" can't be negative`,
			},
		},
		{
			name: "k6 validation mapped to the key",
			src:  scenarioHead + "    executor: constant-arrival-rate\n    rate: 0\n    duration: 10s\n    preAllocatedVUs: 10\n    maxVUs: 5\n",
			want: []string{
				"t.yaml:6:5: scenarios.browse.rate: the iteration rate must be more than 0",
				"t.yaml:9:5: scenarios.browse.maxVUs: maxVUs can't be less than preAllocatedVUs",
			},
		},
		{
			name: "k6 missing field reported at the scenario",
			src:  scenarioHead + "    executor: constant-arrival-rate\n    rate: 10\n",
			want: []string{
				"t.yaml:4:3: scenarios.browse.duration: the duration is unspecified",
				"t.yaml:4:3: scenarios.browse.preAllocatedVUs: the number of preAllocatedVUs isn't specified",
			},
		},
		{
			name: "k6 unknown field",
			src:  scenarioHead + "    executor: constant-vus\n    duration: 10s\n    vu: 5\n",
			want: []string{`t.yaml:7:5: scenarios.browse.vu: unknown key (did you mean "vus"?); constant-vus takes: duration, gracefulStop, startTime, vus, requests`},
		},
		{
			name: "field of another executor",
			src:  scenarioHead + "    executor: constant-vus\n    duration: 10s\n    maxVUs: 5\n",
			want: []string{`t.yaml:7:5: scenarios.browse.maxVUs: constant-vus has no maxVUs (that is a field of constant-arrival-rate, ramping-arrival-rate); it takes: duration, gracefulStop, startTime, vus, requests`},
		},
		{
			name: "fractional rate",
			src:  scenarioHead + "    executor: constant-arrival-rate\n    rate: 0.5\n    duration: 10s\n    preAllocatedVUs: 1\n",
			want: []string{`t.yaml:6:11: scenarios.browse.rate: must be an integer, got "0.5"; for a fractional rate raise timeUnit (rate: 1 with timeUnit: 2s is 0.5/s)`},
		},
		{
			name: "stages problems",
			src: scenarioHead + `    executor: ramping-vus
    stages:
      - {duration: 10s, target: 5}
      - {duraton: 10s, target: 5}
      - {duration: soon, target: many}
`,
			want: []string{
				`t.yaml:8:10: scenarios.browse.stages[1].duraton: unknown key (did you mean "duration"?); a stage takes duration and target`,
				`t.yaml:9:20: scenarios.browse.stages[2].duration: must be a duration such as 30s or 1m30s (a bare number means milliseconds), got "soon"`,
				`t.yaml:9:34: scenarios.browse.stages[2].target: must be an integer, got "many"`,
			},
		},
		{
			name: "k6 stage validation",
			src:  scenarioHead + "    executor: ramping-vus\n    stages:\n      - {duration: 10s, target: 5}\n      - {duration: 10s, target: -1}\n",
			want: []string{`t.yaml:8:25: scenarios.browse.stages[1].target: the target for stage 2 can't be negative`},
		},
		{
			name: "no stages",
			src:  scenarioHead + "    executor: ramping-arrival-rate\n    preAllocatedVUs: 5\n",
			want: []string{`t.yaml:4:3: scenarios.browse.stages: at least one stage has to be specified`},
		},
		{
			name: "k6 scenario name rule",
			src:  strings.Replace(scenarioHead, "browse", "browse it", 1) + "    executor: constant-vus\n    duration: 10s\n",
			want: []string{`t.yaml:4:3: scenarios.browse it: the scenario name should contain only numbers, latin letters, underscores, and dashes`},
		},
		{
			name: "missing executor",
			src:  scenarioHead + "    duration: 10s\n",
			want: []string{`t.yaml:4:3: scenarios.browse.executor: is required: one of constant-arrival-rate, ramping-arrival-rate, constant-vus, ramping-vus`},
		},
		{
			name: "unsupported executor",
			src:  scenarioHead + "    executor: per-vu-iterations\n",
			want: []string{`t.yaml:5:15: scenarios.browse.executor: k6's per-vu-iterations executor is not supported by loadcap yet; use one of constant-arrival-rate, ramping-arrival-rate, constant-vus, ramping-vus`},
		},
		{
			name: "misspelled executor",
			src:  scenarioHead + "    executor: constant-vu\n",
			want: []string{`t.yaml:5:15: scenarios.browse.executor: unknown executor "constant-vu" (did you mean "constant-vus"?); use one of constant-arrival-rate, ramping-arrival-rate, constant-vus, ramping-vus`},
		},
		{
			name: "k6 field without meaning",
			src:  scenarioHead + "    executor: constant-vus\n    duration: 10s\n    exec: main\n",
			want: []string{`t.yaml:7:5: scenarios.browse.exec: exec names a JavaScript function; in loadcap every iteration sends one request from the mix (choose them with requests:)`},
		},
		{
			name: "no VUs at all",
			src:  scenarioHead + "    executor: constant-arrival-rate\n    rate: 5\n    duration: 10s\n    preAllocatedVUs: 0\n",
			want: []string{`t.yaml:8:5: scenarios.browse.preAllocatedVUs: must be more than 0: with no VUs no request can ever be in flight`},
		},
		{
			name: "scenario requests subset",
			src:  scenarioHead + "    executor: constant-vus\n    duration: 10s\n    requests: [hom, home, home]\n",
			want: []string{
				`t.yaml:7:16: scenarios.browse.requests[0]: unknown request "hom" (did you mean "home"?); requests: home`,
				`t.yaml:7:27: scenarios.browse.requests[2]: request "home" is listed twice`,
			},
		},
		{
			name: "no scenarios",
			src:  "target: http://127.0.0.1\nrequests: [{name: a, path: /}]\nscenarios: {}\n",
			want: []string{"t.yaml:3:1: scenarios: needs at least one scenario"},
		},
		{
			name: "no requests",
			src:  "target: http://127.0.0.1\nrequests: []\nscenarios: {s: {executor: constant-vus, duration: 1s}}\n",
			want: []string{"t.yaml:2:1: requests: needs at least one request"},
		},
		{
			name: "request name rules",
			src: minimal(`  - {path: /}
  - {name: "a b", path: /}
  - {name: x, path: /}
  - {name: x, path: /}
`),
			want: []string{
				"t.yaml:8:5: requests[0].name: is required",
				`t.yaml:9:12: requests[1].name: "a b": a request name may only hold letters, digits, _, . and -`,
				`t.yaml:11:6: requests[3].name: duplicate request name "x" (first at line 10)`,
			},
		},
		{
			name: "path and url",
			src: minimal(`  - {name: a, path: /, url: http://127.0.0.1/}
  - {name: b}
  - {name: c, path: relative}
  - {name: d, url: "http://{{pick a b}}:80/"}
  - {name: e, url: "mailto:x@example.test"}
`),
			want: []string{
				"t.yaml:8:24: requests[0].url: give either path or url, not both",
				"t.yaml:9:5: requests[1].path: is required (or url: for an absolute URL)",
				`t.yaml:10:21: requests[2].path: must start with /, got "relative"`,
				"t.yaml:11:20: requests[3].url: the scheme and host can't hold generators ({{ }}); put them in the path",
				`t.yaml:12:20: requests[4].url: scheme "mailto" is not supported: use http or https`,
			},
		},
		{
			name: "weights",
			src: minimal(`  - {name: a, path: /, weight: 0}
  - {name: b, path: /, weight: -2}
  - {name: c, path: /, weight: lots}
`),
			want: []string{
				"t.yaml:8:32: requests[0].weight: must be more than 0, got 0",
				"t.yaml:9:32: requests[1].weight: must be more than 0, got -2",
				`t.yaml:10:32: requests[2].weight: must be a number, got "lots"`,
			},
		},
		{
			name: "unknown request key",
			src:  minimal("  - {name: a, path: /, methd: POST}\n"),
			want: []string{`t.yaml:8:24: requests[0].methd: unknown key (did you mean "method"?); expected one of: name, method, path, url, headers, body, weight, protocol`},
		},
		{
			name: "template problems at the scalar",
			src:  minimal("  - name: a\n    path: /p/{{randint 1 5}}\n    body: '{{seq x}}'\n"),
			want: []string{
				`t.yaml:9:11: requests[0].path: {{randint 1 5}}: unknown generator "randint" (did you mean "randInt"?); expected one of seq, randInt, pick, uuid, or SOURCE.COLUMN`,
				`t.yaml:10:11: requests[0].body: {{seq x}}: START must be an integer, got "x"`,
			},
		},
		{
			name: "bad headers",
			src:  minimal("  - name: a\n    path: /\n    headers: {\"Bad Name\": x, x-a: 1, X-A: 2, X-B: [1]}\n"),
			want: []string{
				`t.yaml:10:15: requests[0].headers.Bad Name: "Bad Name" is not a valid header name`,
				`t.yaml:10:38: requests[0].headers.X-A: duplicate header (header names ignore case; "x-a" is already set)`,
				`t.yaml:10:51: requests[0].headers.X-B: must be a string, got a list`,
			},
		},
		{
			name: "http section types",
			src:  minimal("  - {name: a, path: /}\n") + "http: {http2: yes please, insecureSkipTLSVerify: 1, timeout: 0s, proxy: x}\n",
			want: []string{
				`t.yaml:9:15: http.http2: must be true or false, got "yes please"`,
				`t.yaml:9:50: http.insecureSkipTLSVerify: must be true or false, got "1"`,
				`t.yaml:9:62: http.timeout: must be more than 0`,
				`t.yaml:9:66: http.proxy: unknown key; expected one of: timeout, http2, insecureSkipTLSVerify, headers`,
			},
		},
		{
			name: "seed",
			src:  minimal("  - {name: a, path: /}\n") + "seed: -1\n",
			want: []string{`t.yaml:9:7: seed: must be 0 or more`},
		},
		{
			name: "thresholds",
			src: minimal("  - {name: a, path: /}\n") + `thresholds:
  http_req_duraton: ["p(99)<1"]
  http_req_failed: ["p(99)<1", "rate<NaN", "rate=1", "rate<5ms"]
  "http_req_duration{name:b}": ["p(99)<1"]
  "http_req_duration{scenario:x}": ["p(99)<1"]
  "http_req_duration{status:200}": ["p(99)<1"]
  "dropped_iterations{name:a}": ["count<1"]
  http_reqs: [{threshold: "count>1", abortOnFail: maybe, delay: 1s}]
  data_sent: ["p(101)<1"]
`,
			want: []string{
				`t.yaml:10:3: thresholds.http_req_duraton: unknown metric "http_req_duraton" (did you mean "http_req_duration"?); loadcap measures: data_received, data_sent, dropped_iterations, grpc_req_duration, http_req_duration, http_req_failed, http_reqs`,
				`t.yaml:11:21: thresholds.http_req_failed[0]: "p(99)<1": p(N) does not apply to http_req_failed, a rate metric; use rate`,
				`t.yaml:11:32: thresholds.http_req_failed[1]: "rate<NaN": the value must be a finite number`,
				`t.yaml:11:44: thresholds.http_req_failed[2]: failed parsing threshold expression "rate=1"; reason: malformed threshold expression (expected AGGREGATION OPERATOR NUMBER, e.g. p(99)<200)`,
				`t.yaml:11:54: thresholds.http_req_failed[3]: failed parsing threshold expresion's "rate<5ms" right hand side; reason: strconv.ParseFloat: parsing "5ms": invalid syntax (expected AGGREGATION OPERATOR NUMBER, e.g. p(99)<200)`,
				`t.yaml:12:3: thresholds.http_req_duration{name:b}: no request is named "b"`,
				`t.yaml:13:3: thresholds.http_req_duration{scenario:x}: no scenario is named "x"`,
				`t.yaml:14:3: thresholds.http_req_duration{status:200}: unsupported tag "status": thresholds filter by name (a request) or scenario`,
				`t.yaml:15:3: thresholds.dropped_iterations{name:a}: dropped_iterations is not measured per request: filter it by scenario only`,
				`t.yaml:16:51: thresholds.http_reqs[0].abortOnFail: must be true or false, got "maybe"`,
				`t.yaml:16:58: thresholds.http_reqs[0].delay: unknown key; expected one of: threshold, abortOnFail, delayAbortEval`,
				`t.yaml:17:15: thresholds.data_sent[0]: "p(101)<1": a percentile must be between 0 and 100`,
			},
		},
		{
			name: "data problems",
			src: minimal("  - {name: a, path: \"/{{nope.x}}\"}\n") + `data:
  "bad name": {file: x.csv}
  u: {order: shuffled}
`,
			want: []string{
				`t.yaml:8:21: requests[0].path: {{nope.x}}: unknown data source "nope"; declared: bad name, u`,
				`t.yaml:10:3: data.bad name: a data source name may only hold letters, digits, _ and -`,
				`t.yaml:11:3: data.u.file: is required: the CSV file to read`,
				`t.yaml:11:14: data.u.order: must be sequential or random, got "shuffled"`,
			},
		},
		{
			name: "wrong shapes",
			src:  "target: http://127.0.0.1\nrequests: {a: 1}\nscenarios: [a]\nthresholds: 5\nhttp: []\ndata: x\n",
			want: []string{
				"t.yaml:2:11: requests: must be a list of requests, got a mapping",
				"t.yaml:3:12: scenarios: must be a mapping, got a list",
				`t.yaml:4:13: thresholds: must be a mapping, got "5"`,
				"t.yaml:5:7: http: must be a mapping, got a list",
				`t.yaml:6:7: data: must be a mapping, got "x"`,
			},
		},
		{
			name: "aliases and merge keys are followed",
			src: `target: http://127.0.0.1:8080
defaults: &d {executor: constant-vus, duration: 1s, vus: 0}
requests: [{name: a, path: /}]
scenarios:
  one: {<<: *d, vus: 2}
  two: *d
`,
			want: []string{
				`t.yaml:2:1: defaults: unknown key; expected one of: target, http, data, seed, scenarios, requests, thresholds, drill_id, replay, k6`,
				`t.yaml:2:53: scenarios.two.vus: the number of VUs must be more than 0`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := errorLines(t, tt.src)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestParseCSVErrors(t *testing.T) {
	src := minimal("  - {name: a, path: \"/{{u.id}}\"}\n") + "data:\n  u: {file: users.csv}\n"
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"missing", nil, "CSV file DIR/users.csv does not exist"},
		{"empty", map[string]string{"users.csv": ""}, "CSV file DIR/users.csv is empty: its first line must name the columns"},
		{"header only", map[string]string{"users.csv": "id,name\n"}, "CSV file DIR/users.csv has a header but no rows"},
		{"ragged", map[string]string{"users.csv": "id,name\n1,a\n2\n"}, "CSV DIR/users.csv: record on line 3: wrong number of fields"},
		{"duplicate column", map[string]string{"users.csv": "id,id\n1,2\n"}, `CSV file DIR/users.csv: header names column "id" twice`},
		{"empty column name", map[string]string{"users.csv": "id,\n1,2\n"}, "CSV file DIR/users.csv: header column 2 has no name"},
		{"directory", map[string]string{"users.csv/x": ""}, "CSV file DIR/users.csv is not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseIn(t, src, tt.files)
			var es Errors
			if !errors.As(err, &es) || len(es) != 1 {
				t.Fatalf("want one problem, got %v", err)
			}
			e := es[0]
			dir := filepath.Dir(e.File)
			msg := strings.ReplaceAll(e.Msg, dir, "DIR")
			// The problem is reported at the file: key, line 10 column 7.
			if e.Line != 10 || e.Col != 7 || e.Path != "data.u.file" || msg != tt.want {
				t.Errorf("got %d:%d %s: %s\nwant 10:7 data.u.file: %s", e.Line, e.Col, e.Path, msg, tt.want)
			}
		})
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	src := `target: http://127.0.0.1:8080
scenarios:
  a:
    executor: constant-arrival-rate
    rate: -1
    duration: 1s
    preAllocatedVUs: 1
  b:
    executor: ramping-vus
    stages: [{duration: 1s, target: 1}]
    requests: [missing]
requests:
  - {name: x, path: /, weight: 0}
  - {name: x, path: /}
  - {name: y, url: "ftp://127.0.0.1/"}
thresholds:
  http_req_duration: ["p(99)<"]
  bogus: ["count<1"]
extra: true
`
	got := errorLines(t, src)
	want := []string{
		"t.yaml:5:5: scenarios.a.rate: the iteration rate must be more than 0",
		`t.yaml:11:16: scenarios.b.requests[0]: unknown request "missing"; requests: x, y`,
		"t.yaml:13:32: requests[0].weight: must be more than 0, got 0",
		`t.yaml:14:6: requests[1].name: duplicate request name "x" (first at line 13)`,
		`t.yaml:15:20: requests[2].url: scheme "ftp" is not supported: use http or https`,
		`t.yaml:17:23: thresholds.http_req_duration[0]: failed parsing threshold expression "p(99)<"; reason: malformed threshold expression (expected AGGREGATION OPERATOR NUMBER, e.g. p(99)<200)`,
		`t.yaml:18:3: thresholds.bogus: unknown metric "bogus"; loadcap measures: data_received, data_sent, dropped_iterations, grpc_req_duration, http_req_duration, http_req_failed, http_reqs`,
		`t.yaml:19:1: extra: unknown key; expected one of: target, http, data, seed, scenarios, requests, thresholds, drill_id, replay, k6`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestParseValid(t *testing.T) {
	f := mustParse(t, `target: https://shop.example.test/api/
http:
  timeout: 5s
  http2: true
  insecureSkipTLSVerify: true
  headers: {User-Agent: lc}
seed: 9
scenarios:
  zeta: {executor: constant-vus, vus: 3, duration: 1m}
  alpha:
    executor: ramping-arrival-rate
    startTime: 10s
    startRate: 30
    timeUnit: 1m
    preAllocatedVUs: 5
    stages: [{duration: 10s, target: 120}, {duration: 20s, target: 0}]
  beta:
    executor: constant-arrival-rate
    rate: 5
    duration: 10s
    preAllocatedVUs: 2
    requests: [raw]
  gamma: {executor: ramping-vus, stages: [{duration: 5s, target: 4}], startTime: 10s}
requests:
  - {name: root, path: /}
  - {name: query, path: "?x=1", method: post, body: "b", weight: 2.5}
  - {name: raw, url: "http://[::1]/q?a={{seq}}", method: PURGE}
`, nil)
	if f.Timeout != 5*time.Second || !f.HTTP2 || !f.Insecure || f.Seed != 9 || len(f.Headers) != 1 {
		t.Errorf("http settings: timeout %v http2 %v insecure %v seed %d headers %d", f.Timeout, f.HTTP2, f.Insecure, f.Seed, len(f.Headers))
	}
	var order []string
	for _, s := range f.Scenarios {
		order = append(order, s.Name)
	}
	if got := strings.Join(order, ","); got != "beta,zeta,alpha,gamma" {
		t.Errorf("scenario order %s, want beta,zeta,alpha,gamma (start time, then name)", got)
	}
	reqs := map[string]string{}
	for _, r := range f.Requests {
		reqs[r.Name] = fmt.Sprintf("%s %s://%s%s w=%v body=%v", r.Method, r.Scheme, r.Host, r.Path, r.Weight, r.Body != nil)
	}
	want := map[string]string{
		"root":  "GET https://shop.example.test:443/api/ w=1 body=false",
		"query": "POST https://shop.example.test:443/api?x=1 w=2.5 body=true",
		"raw":   "PURGE http://[::1]:80/q?a={{seq}} w=1 body=false",
	}
	for k, v := range want {
		if reqs[k] != v {
			t.Errorf("request %s = %q, want %q", k, reqs[k], v)
		}
	}
	ws := map[string]Workload{}
	for _, s := range f.Scenarios {
		ws[s.Name] = s.Workload
	}
	alpha := ws["alpha"]
	if alpha.Model != Open || alpha.StartTime != 10*time.Second || alpha.StartRatePerSec != 0.5 ||
		len(alpha.RateStages) != 2 || alpha.RateStages[0].TargetPerSec != 2 || alpha.MaxVUs != 5 ||
		alpha.GracefulStop != 30*time.Second || alpha.Duration() != 30*time.Second || alpha.MaxVUsNeeded() != 5 {
		t.Errorf("alpha workload %+v", alpha)
	}
	beta := ws["beta"]
	if beta.StartRatePerSec != 5 || len(beta.RateStages) != 1 || beta.RateStages[0] != (RateStage{5, 10 * time.Second}) || beta.MaxVUs != 2 {
		t.Errorf("beta workload %+v", beta)
	}
	if zeta := ws["zeta"]; zeta.Model != Closed || zeta.StartVUs != 3 || len(zeta.VUStages) != 1 || zeta.VUStages[0] != (VUStage{3, time.Minute}) {
		t.Errorf("zeta workload %+v", zeta)
	}
	if gamma := ws["gamma"]; gamma.StartVUs != 1 || gamma.GracefulRampDown != 30*time.Second || gamma.MaxVUsNeeded() != 4 {
		t.Errorf("gamma workload %+v (k6 defaults: startVUs 1, gracefulRampDown 30s)", gamma)
	}
	for _, s := range f.Scenarios {
		wantReqs := "[0 1 2]"
		if s.Name == "beta" {
			wantReqs = "[2]"
		}
		if got := fmt.Sprint(s.Requests); got != wantReqs {
			t.Errorf("scenario %s requests %s, want %s", s.Name, got, wantReqs)
		}
		if s.Config == nil || s.Config.GetName() != s.Name {
			t.Errorf("scenario %s has no k6 config", s.Name)
		}
	}
}

func TestParseDefaults(t *testing.T) {
	f := mustParse(t, minimal("  - {name: a, path: /x}\n"), nil)
	if f.Timeout != DefaultTimeout || f.Seed != DefaultSeed || f.HTTP2 || f.Insecure {
		t.Errorf("defaults: timeout %v seed %d http2 %v insecure %v", f.Timeout, f.Seed, f.HTTP2, f.Insecure)
	}
	r := f.Requests[0]
	if r.Method != "GET" || r.Weight != 1 || r.Body != nil || r.Host != "127.0.0.1:8080" || r.Scheme != "http" {
		t.Errorf("request defaults: %+v", r)
	}
	if w := f.Scenarios[0].Workload; w.GracefulStop != 30*time.Second {
		t.Errorf("gracefulStop %v, want k6's 30s", w.GracefulStop)
	}
}

func TestThresholds(t *testing.T) {
	f := mustParse(t, minimal("  - {name: checkout, path: /}\n")+`thresholds:
  http_req_duration: ["p(99.9) < 200", "avg<=50"]
  "http_req_duration{name:checkout}": "med===10"
  http_req_failed: [{threshold: rate<0.01, abortOnFail: true, delayAbortEval: 10s}]
  http_reqs: ["rate>=100", "count!=0"]
`, nil)
	got := []string{}
	for _, th := range f.Thresholds {
		got = append(got, fmt.Sprintf("%s %s %s %v %s %v abort=%v delay=%v", th.Key(), th.Type, th.Agg, th.Pct, th.Op, th.Value, th.AbortOnFail, th.DelayAbortEval))
	}
	want := []string{
		"http_req_duration trend p 99.9 < 200 abort=false delay=0s",
		"http_req_duration trend avg 0 <= 50 abort=false delay=0s",
		"http_req_duration{name:checkout} trend med 0 == 10 abort=false delay=0s",
		"http_req_failed rate rate 0 < 0.01 abort=true delay=10s",
		"http_reqs counter rate 0 >= 100 abort=false delay=0s",
		"http_reqs counter count 0 != 0 abort=false delay=0s",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("thresholds:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if f.Thresholds[2].Tags["name"] != "checkout" {
		t.Errorf("tags = %v", f.Thresholds[2].Tags)
	}
}

func TestThresholdCompare(t *testing.T) {
	tests := []struct {
		op   string
		v    float64
		want bool
	}{
		{"<", 199, true}, {"<", 200, false},
		{"<=", 200, true}, {"<=", 201, false},
		{">", 201, true}, {">", 200, false},
		{">=", 200, true}, {">=", 199, false},
		{"==", 200, true}, {"==", 199, false},
		{"!=", 199, true}, {"!=", 200, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v%s200", tt.v, tt.op), func(t *testing.T) {
			if got := (Threshold{Op: tt.op, Value: 200}).Compare(tt.v); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		name string
		err  *Error
		want string
	}{
		{"full", &Error{File: "checkout.yaml", Pos: Pos{12, 5}, Path: "scenarios.browse.rate", Msg: "must be > 0"}, "checkout.yaml:12:5: scenarios.browse.rate: must be > 0"},
		{"line only", &Error{File: "a.yaml", Pos: Pos{Line: 3}, Msg: "YAML syntax: x"}, "a.yaml:3: YAML syntax: x"},
		{"no position", &Error{File: "a.yaml", Msg: "the file is empty"}, "a.yaml: the file is empty"},
		{"no file", &Error{Path: "rate", Msg: "must be a finite number"}, "rate: must be a finite number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	es := Errors{{File: "f", Pos: Pos{9, 1}, Msg: "b"}, {File: "f", Pos: Pos{2, 3}, Msg: "a"}}
	if got := es.Error(); got != "f:2:3: a\nf:9:1: b" {
		t.Errorf("Errors.Error() = %q, want sorted lines", got)
	}
}

func TestInvalid(t *testing.T) {
	_, perr := Parse("t.yaml", []byte("x: 1"))
	_, lerr := Load(filepath.Join(t.TempDir(), "missing.yaml"))
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"parse problems", perr, true},
		{"wrapped", fmt.Errorf("load: %w", perr), true},
		{"single", &Error{Msg: "x"}, true},
		{"missing file is a tool error", lerr, false},
		{"other", errors.New("boom"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Invalid(tt.err); got != tt.want {
				t.Errorf("Invalid(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestQuick(t *testing.T) {
	tests := []struct {
		name string
		opts QuickOptions
		want string // the workload, summarized
	}{
		{"open", QuickOptions{URL: "http://127.0.0.1:8080/x", RatePerSec: 200, Duration: 10 * time.Second},
			"open rate=200/s for 10s pre=30 max=1000"},
		{"fractional rate", QuickOptions{URL: "http://127.0.0.1:8080/x", RatePerSec: 2.5, MaxVUs: 5},
			"open rate=2.5/s for 30s pre=5 max=5"},
		{"slow rate", QuickOptions{URL: "http://127.0.0.1:8080/x", RatePerSec: 0.0002, Duration: time.Hour},
			"open rate=0.0002/s for 1h0m0s pre=11 max=1000"},
		{"closed", QuickOptions{URL: "http://127.0.0.1:8080/x", VUs: 4, Duration: time.Minute},
			"closed vus=4 for 1m0s"},
		{"closed default", QuickOptions{URL: "http://127.0.0.1:8080/x"},
			"closed vus=1 for 30s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Quick(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			w := f.Scenarios[0].Workload
			var got string
			if w.Model == Open {
				got = fmt.Sprintf("open rate=%.4g/s for %v pre=%d max=%d", w.StartRatePerSec, w.Duration(), w.PreAllocatedVUs, w.MaxVUs)
			} else {
				got = fmt.Sprintf("closed vus=%d for %v", w.StartVUs, w.Duration())
			}
			if got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
			if f.Scenarios[0].Name != "default" || f.Requests[0].Name != "default" || f.Target != tt.opts.URL {
				t.Errorf("names: scenario %q request %q target %q", f.Scenarios[0].Name, f.Requests[0].Name, f.Target)
			}
		})
	}
}

func TestQuickRequest(t *testing.T) {
	f, err := Quick(QuickOptions{
		URL: "https://127.0.0.1:8443/o/{{seq}}?q=1", Method: "post", Body: `{"n": {{seq 5}}}`,
		Headers: map[string]string{"X-B": "2", "X-A": "1"}, RatePerSec: 10,
		Timeout: time.Second, HTTP2: true, Insecure: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	r, s := f.Requests[0], f.NewState(0)
	got := fmt.Sprintf("%s %s://%s%s %s %s=%s %s=%s", r.Method, r.Scheme, r.Host, r.Path.AppendTo(nil, s), r.Body.AppendTo(nil, s),
		r.Headers[0].Name, r.Headers[0].Value, r.Headers[1].Name, r.Headers[1].Value)
	if want := `POST https://127.0.0.1:8443/o/1?q=1 {"n": 5} X-A=1 X-B=2`; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if f.Timeout != time.Second || !f.HTTP2 || !f.Insecure {
		t.Errorf("http options not applied: %+v", f)
	}
}

func TestQuickErrors(t *testing.T) {
	tests := []struct {
		name string
		opts QuickOptions
		want string
	}{
		{"bad url", QuickOptions{URL: "localhost:8080"}, `url: "localhost:8080" is not an absolute URL: write it as http://HOST[:PORT][/PATH]`},
		{"negative rate", QuickOptions{URL: "http://127.0.0.1/", RatePerSec: -1}, "rate: must be a finite number, 0 or more"},
		{"k6 validation", QuickOptions{URL: "http://127.0.0.1/", RatePerSec: 10, PreAllocatedVUs: 10, MaxVUs: 5}, "maxVUs: maxVUs can't be less than preAllocatedVUs"},
		{"short duration", QuickOptions{URL: "http://127.0.0.1/", Duration: time.Millisecond}, "duration: the duration must be at least 1s, but is 1ms"},
		{"bad template", QuickOptions{URL: "http://127.0.0.1/{{nope}}"}, `url: {{nope}}: unknown generator "nope"; expected one of seq, randInt, pick, uuid, or SOURCE.COLUMN`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Quick(tt.opts)
			if !Invalid(err) || err.Error() != tt.want {
				t.Errorf("got %v (Invalid=%v), want %s", err, Invalid(err), tt.want)
			}
		})
	}
}

// A "billion laughs" document must fail fast instead of expanding.
func TestAliasBomb(t *testing.T) {
	src := "x-a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	prev := "a"
	for _, n := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
		src += fmt.Sprintf("x-%s: &%s [*%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s]\n", n, n, prev, prev, prev, prev, prev, prev, prev, prev, prev, prev)
		prev = n
	}
	src += "target: http://127.0.0.1\nrequests: [{name: a, path: /}]\nscenarios:\n  s: {executor: ramping-vus, stages: *i}\n"
	got := errorLines(t, src)
	want := "t.yaml:13:30: scenarios.s.stages: the document expands to too many values (aliases nested too deeply?)"
	if strings.Join(got, "\n") != want {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), want)
	}
}

func TestAnchorsAndMergeKeys(t *testing.T) {
	f := mustParse(t, `x-open: &open {executor: constant-arrival-rate, timeUnit: 1m, preAllocatedVUs: 4}
x-json: &json {Content-Type: application/json}
target: http://127.0.0.1:8080
scenarios:
  a: {<<: *open, rate: 120, duration: 10s}
  b: {<<: *open, rate: 60, duration: 10s, preAllocatedVUs: 8}
requests:
  - {name: r, method: POST, path: /, headers: {<<: *json, X-B: b}, body: "{}"}
`, nil)
	if a, b := f.Scenarios[0].Workload, f.Scenarios[1].Workload; a.StartRatePerSec != 2 || a.MaxVUs != 4 || b.StartRatePerSec != 1 || b.MaxVUs != 8 {
		t.Errorf("merged workloads: a %+v, b %+v", a, b)
	}
	var hs []string
	for _, h := range f.Requests[0].Headers {
		hs = append(hs, h.Name+"="+h.Value.String())
	}
	if got := strings.Join(hs, " "); got != "X-B=b Content-Type=application/json" {
		t.Errorf("headers %s", got)
	}
}

func TestWithTarget(t *testing.T) {
	src := []byte(`target: http://127.0.0.1:8080/api
scenarios:
  s: {executor: constant-vus, vus: 1, duration: 1s}
requests:
  - {name: rel, path: /x}
  - {name: abs, url: "http://127.0.0.2:9000/y"}
`)
	f, err := Parse("t.yaml", src, WithTarget("https://127.0.0.1:9443/v2"))
	if err != nil {
		t.Fatal(err)
	}
	rel, abs := f.Requests[0], f.Requests[1]
	if rel.Scheme != "https" || rel.Host != "127.0.0.1:9443" || rel.Path.String() != "/v2/x" {
		t.Errorf("relative request: %s %s %s, want the override's base", rel.Scheme, rel.Host, rel.Path)
	}
	if abs.Host != "127.0.0.2:9000" {
		t.Errorf("absolute url: host %s, want it kept", abs.Host)
	}
	if _, err := Parse("t.yaml", src, WithTarget("ftp://x")); err == nil || !strings.Contains(err.Error(), "--target") {
		t.Errorf("bad override: %v, want an error naming --target", err)
	}
}
