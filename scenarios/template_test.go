package scenarios

import (
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
)

const usersCSV = "id,name,token\n1,ada,t1\n2,grace,t2\n3,linus,t3\n"

func TestTemplateRender(t *testing.T) {
	tests := []struct {
		name string
		tmpl string
		mode escapeMode
		want string
	}{
		{"literal", "/plain/path?a=1", urlMode, "/plain/path?a=1"},
		{"seq default starts at 1", "/o/{{seq}}", urlMode, "/o/1"},
		{"seq start", "/o/{{ seq 1000 }}", urlMode, "/o/1000"},
		{"seq negative start", "{{seq -5}}", rawMode, "-5"},
		{"randInt single value", "{{randInt 7 7}}", rawMode, "7"},
		{"pick single", `{{pick "only"}}`, rawMode, "only"},
		{"pick bare word", `{{pick word}}`, rawMode, "word"},
		{"quoted literal braces", `a{{"{{"}}b}}`, rawMode, "a{{b}}"},
		{"quoted literal with closing braces", `{{"}}"}}`, rawMode, "}}"},
		{"raw string literal", "{{`x\"y`}}", rawMode, `x"y`},
		{"lone braces are text", "{a} } {", rawMode, "{a} } {"},
		{"url literal space encoded", "/a b/é", urlMode, "/a%20b/%C3%A9"},
		{"url pick escaped", `/s?q={{pick "red shoes"}}`, urlMode, "/s?q=red%20shoes"},
		{"url keeps reserved", `/{{pick "a/b?c=d&e=%20"}}`, urlMode, "/a/b?c=d&e=%20"},
		{"body unescaped", `{"q": "{{pick "a b"}}"}`, rawMode, `{"q": "a b"}`},
		{"header pick keeps tab", "{{pick \"a\\tb\"}}", headerMode, "a\tb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tm, errs := compileTemplate(tt.tmpl, tt.mode, &dataEnv{})
			if len(errs) > 0 {
				t.Fatalf("compile: %v", errs)
			}
			f := &File{}
			got := string(tm.AppendTo(nil, f.NewState(0)))
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if tm.String() != tt.tmpl {
				t.Errorf("String() = %q, want the source %q", tm.String(), tt.tmpl)
			}
		})
	}
}

func TestTemplateStatic(t *testing.T) {
	tests := []struct {
		tmpl   string
		static bool
	}{
		{"/a/b", true},
		{`/a{{"{{"}}b`, true},
		{"/a/{{seq}}", false},
		{"{{uuid}}", false},
	}
	for _, tt := range tests {
		t.Run(tt.tmpl, func(t *testing.T) {
			tm, errs := compileTemplate(tt.tmpl, rawMode, &dataEnv{})
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			if tm.Static() != tt.static {
				t.Errorf("Static() = %v, want %v", tm.Static(), tt.static)
			}
			if tt.static && string(tm.AppendTo(nil, nil)) == "" && tt.tmpl != "" {
				t.Error("static template rendered empty with a nil State")
			}
		})
	}
}

func TestTemplateErrors(t *testing.T) {
	env := &dataEnv{sources: []*DataSource{{Name: "users", Columns: []string{"id", "token"}}}, declared: []string{"users"}}
	tests := []struct {
		name string
		tmpl string
		want string
	}{
		{"unknown generator", "{{randint 1 2}}", `{{randint 1 2}}: unknown generator "randint" (did you mean "randInt"?); expected one of seq, randInt, pick, uuid, or SOURCE.COLUMN`},
		{"unclosed", "/a/{{seq", `unclosed "{{seq": close it with }}, or write a literal {{ as {{"{{"}}`},
		{"empty", "{{ }}", `{{ }}: empty generator; expected one of seq, randInt, pick, uuid, or SOURCE.COLUMN`},
		{"randInt arity", "{{randInt 1}}", `{{randInt 1}}: randInt takes two arguments: {{randInt MIN MAX}}`},
		{"randInt order", "{{randInt 5 1}}", `{{randInt 5 1}}: MIN (5) is greater than MAX (1)`},
		{"randInt not int", "{{randInt a 1}}", `{{randInt a 1}}: MIN must be an integer, got "a"`},
		{"seq arity", "{{seq 1 2}}", `{{seq 1 2}}: seq takes at most one argument: {{seq}} or {{seq START}}`},
		{"uuid args", "{{uuid 4}}", `{{uuid 4}}: uuid takes no arguments`},
		{"pick empty", "{{pick}}", `{{pick}}: pick needs at least one choice: {{pick "a" "b"}}`},
		{"unterminated quote", `{{pick "a}}`, `unclosed "{{pick \"a}}": close it with }}, or write a literal {{ as {{"{{"}}`},
		{"unknown source", "{{user.id}}", `{{user.id}}: unknown data source "user" (did you mean "users"?); declared: users`},
		{"unknown column", "{{users.idd}}", `{{users.idd}}: data source "users" has no column "idd" (did you mean "id"?); columns: id, token`},
		{"literal with args", `{{"a" "b"}}`, `{{"a" "b"}}: a quoted literal must be alone inside {{ }}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs := compileTemplate(tt.tmpl, rawMode, env)
			if len(errs) != 1 || errs[0] != tt.want {
				t.Errorf("errors = %q\nwant     [%q]", errs, tt.want)
			}
		})
	}
}

func TestTemplateURLAndHeaderRules(t *testing.T) {
	tests := []struct {
		name string
		tmpl string
		mode escapeMode
		want string
	}{
		{"fragment refused", "/a#top", urlMode, "a URL fragment (#...) is never sent to the server; remove it or write # as %23"},
		{"control in url", "/a\tb", urlMode, `control character '\t' is not allowed in a URL`},
		{"newline in header", "a\r\nX-Evil: 1", headerMode, `control character '\r' is not allowed in a header value`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs := compileTemplate(tt.tmpl, tt.mode, &dataEnv{})
			if len(errs) != 1 || errs[0] != tt.want {
				t.Errorf("errors = %q, want [%q]", errs, tt.want)
			}
		})
	}
}

// A CSV value can hold anything; where it lands decides how it is made safe.
func TestColumnEscaping(t *testing.T) {
	csv := "v\n\"a b#c\nX-Evil: 1\"\n"
	f := mustParse(t, `target: http://127.0.0.1:8080
data: {d: d.csv}
scenarios: {s: {executor: constant-vus, duration: 1s}}
requests:
  - name: r
    path: /x/{{d.v}}
    headers: {X-V: "{{d.v}}"}
    body: "{{d.v}}"
`, map[string]string{"d.csv": csv})
	r, s := f.Requests[0], f.NewState(0)
	s.Next()
	if got, want := string(r.Path.AppendTo(nil, s)), "/x/a%20b%23c%0AX-Evil:%201"; got != want {
		t.Errorf("path = %q, want %q", got, want)
	}
	if got, want := string(r.Headers[0].Value.AppendTo(nil, s)), "a b#c X-Evil: 1"; got != want {
		t.Errorf("header = %q, want %q", got, want)
	}
	if got, want := string(r.Body.AppendTo(nil, s)), "a b#c\nX-Evil: 1"; got != want {
		t.Errorf("body = %q, want %q", got, want)
	}
}

func TestSeqUniqueAcrossConcurrentStates(t *testing.T) {
	f := mustParse(t, minimal("  - {name: a, path: \"/{{seq}}\"}\n"), nil)
	tm := f.Requests[0].Path
	const vus, per = 8, 2000
	results := make([][]string, vus)
	var wg sync.WaitGroup
	for v := 0; v < vus; v++ {
		wg.Add(1)
		go func(v int) {
			defer wg.Done()
			s := f.NewState(v)
			for i := 0; i < per; i++ {
				s.Next()
				results[v] = append(results[v], string(tm.AppendTo(nil, s)))
			}
		}(v)
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, rs := range results {
		for _, r := range rs {
			if seen[r] {
				t.Fatalf("value %s generated twice", r)
			}
			seen[r] = true
		}
	}
	for i := 1; i <= vus*per; i++ {
		if !seen["/"+strconv.Itoa(i)] {
			t.Fatalf("value %d missing: seq must hand out 1..%d without gaps", i, vus*per)
		}
	}
}

func TestSeqCountsPerOccurrence(t *testing.T) {
	f := mustParse(t, minimal("  - {name: a, path: \"/{{seq}}/{{seq 100}}\"}\n"), nil)
	s := f.NewState(0)
	var got []string
	for i := 0; i < 3; i++ {
		s.Next()
		got = append(got, string(f.Requests[0].Path.AppendTo(nil, s)))
	}
	want := []string{"/1/100", "/2/101", "/3/102"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestRandIntBounds(t *testing.T) {
	tests := []struct {
		name     string
		min, max int64
	}{
		{"small", 1, 6},
		{"negative", -3, 3},
		{"single", 42, 42},
		{"full int64", -9223372036854775808, 9223372036854775807},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "{{randInt " + strconv.FormatInt(tt.min, 10) + " " + strconv.FormatInt(tt.max, 10) + "}}"
			tm, errs := compileTemplate(src, rawMode, &dataEnv{})
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			s := (&File{}).NewState(3)
			seen := map[int64]bool{}
			for i := 0; i < 5000; i++ {
				v, err := strconv.ParseInt(string(tm.AppendTo(nil, s)), 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				if v < tt.min || v > tt.max {
					t.Fatalf("%d outside [%d, %d]", v, tt.min, tt.max)
				}
				seen[v] = true
			}
			if span := tt.max - tt.min + 1; span > 0 && span <= 16 && int64(len(seen)) != span {
				t.Errorf("saw %d distinct values, want all %d (MIN and MAX included)", len(seen), span)
			}
		})
	}
}

func TestPickUsesEveryChoice(t *testing.T) {
	tm, _ := compileTemplate(`{{pick "a" "b" "c"}}`, rawMode, &dataEnv{})
	s := (&File{}).NewState(0)
	count := map[string]int{}
	for i := 0; i < 3000; i++ {
		count[string(tm.AppendTo(nil, s))]++
	}
	for _, c := range []string{"a", "b", "c"} {
		if count[c] < 800 || count[c] > 1200 {
			t.Errorf("%s picked %d times of 3000, want about 1000", c, count[c])
		}
	}
}

func TestUUIDv4(t *testing.T) {
	tm, _ := compileTemplate("{{uuid}}", rawMode, &dataEnv{})
	s := (&File{}).NewState(0)
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		u := string(tm.AppendTo(nil, s))
		if !re.MatchString(u) {
			t.Fatalf("%q is not a v4 UUID", u)
		}
		if seen[u] {
			t.Fatalf("%s repeated", u)
		}
		seen[u] = true
	}
}

func TestCSVRowConsistentWithinRequest(t *testing.T) {
	for _, order := range []string{"sequential", "random"} {
		t.Run(order, func(t *testing.T) {
			f := mustParse(t, `target: http://127.0.0.1:8080
data: {users: {file: users.csv, order: `+order+`}}
scenarios: {s: {executor: constant-vus, duration: 1s}}
http: {headers: {X-Default: "{{users.name}}"}}
requests:
  - name: r
    path: /u/{{users.id}}
    headers: {X-Token: "{{users.token}}"}
    body: '{{users.id}}:{{users.name}}'
`, map[string]string{"users.csv": usersCSV})
			r := f.Requests[0]
			s := f.NewState(1)
			want := map[string][2]string{"1": {"ada", "t1"}, "2": {"grace", "t2"}, "3": {"linus", "t3"}}
			for i := 0; i < 30; i++ {
				s.Next()
				id := strings.TrimPrefix(string(r.Path.AppendTo(nil, s)), "/u/")
				tok := string(r.Headers[0].Value.AppendTo(nil, s))
				def := string(f.Headers[0].Value.AppendTo(nil, s))
				body := string(r.Body.AppendTo(nil, s))
				if w := want[id]; tok != w[1] || def != w[0] || body != id+":"+w[0] {
					t.Fatalf("request %d mixes rows: id %s, token %s, default header %s, body %s", i, id, tok, def, body)
				}
			}
		})
	}
}

func TestCSVSequentialWrapsAndIsShared(t *testing.T) {
	f := mustParse(t, `target: http://127.0.0.1:8080
data: {users: users.csv}
scenarios: {s: {executor: constant-vus, duration: 1s}}
requests: [{name: r, path: "/{{users.id}}"}]
`, map[string]string{"users.csv": usersCSV})
	a, b := f.NewState(0), f.NewState(1)
	var got []string
	for i := 0; i < 4; i++ {
		for _, s := range []*State{a, b} {
			s.Next()
			got = append(got, string(f.Requests[0].Path.AppendTo(nil, s)))
		}
	}
	want := "/1 /2 /3 /1 /2 /3 /1 /2"
	if strings.Join(got, " ") != want {
		t.Errorf("rows = %s, want %s (one cursor shared by all VUs, wrapping)", strings.Join(got, " "), want)
	}
}

func TestNextChoosesNewRow(t *testing.T) {
	f := mustParse(t, `target: http://127.0.0.1:8080
data: {users: users.csv}
scenarios: {s: {executor: constant-vus, duration: 1s}}
requests: [{name: r, path: "/{{users.id}}/{{users.id}}"}]
`, map[string]string{"users.csv": usersCSV})
	s := f.NewState(0)
	s.Next()
	first := string(f.Requests[0].Path.AppendTo(nil, s))
	again := string(f.Requests[0].Path.AppendTo(nil, s))
	s.Next()
	next := string(f.Requests[0].Path.AppendTo(nil, s))
	if first != "/1/1" || again != first || next != "/2/2" {
		t.Errorf("got %s, %s then %s; want /1/1 twice within a request, /2/2 after Next", first, again, next)
	}
}

func TestDeterministicBySeed(t *testing.T) {
	render := func(seed string, vu int) string {
		f := mustParse(t, "seed: "+seed+"\n"+minimal(`  - name: r
    path: /{{randInt 1 1000000}}/{{uuid}}/{{pick a b c d e f g}}
`), nil)
		s := f.NewState(vu)
		var out []string
		for i := 0; i < 5; i++ {
			s.Next()
			out = append(out, string(f.Requests[0].Path.AppendTo(nil, s)))
		}
		return strings.Join(out, " ")
	}
	first, again := render("7", 1), render("7", 1)
	if first != again {
		t.Error("same seed and VU gave different values")
	}
	if first == render("8", 1) {
		t.Error("different seeds gave the same values")
	}
	if first == render("7", 2) {
		t.Error("different VUs gave the same values")
	}
}

func TestScenarioPickFollowsWeights(t *testing.T) {
	f := mustParse(t, `target: http://127.0.0.1:8080
scenarios:
  all: {executor: constant-vus, duration: 1s}
  some: {executor: constant-vus, duration: 1s, requests: [c, a]}
requests:
  - {name: a, path: /a, weight: 1}
  - {name: b, path: /b, weight: 3}
  - {name: c, path: /c, weight: 6}
`, nil)
	s := f.NewState(0)
	count := map[string]int{}
	all := &f.Scenarios[0]
	for i := 0; i < 10000; i++ {
		count[f.Requests[all.Pick(s)].Name]++
	}
	for name, want := range map[string]int{"a": 1000, "b": 3000, "c": 6000} {
		if d := count[name] - want; d < -300 || d > 300 {
			t.Errorf("%s picked %d times of 10000, want about %d", name, count[name], want)
		}
	}
	some := &f.Scenarios[1]
	for i := 0; i < 1000; i++ {
		if n := f.Requests[some.Pick(s)].Name; n == "b" {
			t.Fatal("scenario with requests: [c, a] picked b")
		}
	}
}
