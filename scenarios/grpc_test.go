package scenarios

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// grpcFile wraps requests (a YAML list body) in a file that lives in
// testdata/grpc, next to shop.proto.
func grpcFile(requests string) string {
	return `target: http://127.0.0.1:8080
scenarios:
  s: {executor: constant-vus, vus: 1, duration: 1s}
requests:
` + requests
}

func parseGRPC(t *testing.T, src string) (*File, error) {
	t.Helper()
	return Parse(filepath.Join("testdata", "grpc", "t.yaml"), []byte(src))
}

func TestGRPCRequests(t *testing.T) {
	f, err := parseGRPC(t, grpcFile(`
  - name: place
    protocol: grpc
    target: 127.0.0.1:9090
    method: shop.Order/Place
    message: '{"sku": "{{randInt 1 1000}}", "qty": 1, "lines": [{"sku": "{{pick "a" "b"}}", "qty": "2"}], "speed": "EXPRESS"}'
    proto: shop.proto
    metadata: {X-Region: east, x-req: "{{seq}}"}
    timeout: 2s
    connections: 8
    transport: grpc-go
    tls: true
    authority: shop.local
  - name: watch
    protocol: grpc
    method: shop.Order.Watch
    proto: shop.proto
  - {name: home, path: /}
`))
	if err != nil {
		t.Fatal(err)
	}
	g := f.Requests[0].GRPC
	if f.Requests[0].Protocol != GRPC || g == nil {
		t.Fatalf("request 0 is %v", f.Requests[0].Protocol)
	}
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"full method", g.FullMethod, "/shop.Order/Place"},
		{"target", g.Target, "127.0.0.1:9090"},
		{"authority", g.Authority, "shop.local"},
		{"tls", g.TLS, true},
		{"timeout", g.Timeout, 2 * time.Second},
		{"connections", g.Connections, 8},
		{"grpc-go transport", g.GRPCGo, true},
		{"our transport by default", f.Requests[1].GRPC.GRPCGo, false},
		{"input type", string(g.Method.Input().FullName()), "shop.PlaceRequest"},
		{"unary", g.Streaming(), false},
		{"metadata keys lower-cased", g.Metadata[0].Name + "," + g.Metadata[1].Name, "x-region,x-req"},
		{"proto resolved", g.Proto, filepath.Join("testdata", "grpc", "shop.proto")},
		{"method with a dot", f.Requests[1].GRPC.FullMethod, "/shop.Order/Watch"},
		{"target from the file", f.Requests[1].GRPC.Target, "127.0.0.1:8080"},
		{"no message is {}", f.Requests[1].GRPC.Message.String(), "{}"},
		{"server streaming", f.Requests[1].GRPC.Streaming(), true},
		{"http stays http", f.Requests[2].Protocol, HTTP},
	} {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestGRPCRequestErrors(t *testing.T) {
	for _, tc := range []struct {
		name, requests string
		want           []string // each "line:col: path: message part"
	}{
		{"unknown method", `
  - {name: a, protocol: grpc, method: shop.Order/Plase, proto: shop.proto}`,
			[]string{`6:39: requests[0].method: service shop.Order has no method "Plase" (did you mean "Place"?)`}},
		{"unknown service", `
  - {name: a, protocol: grpc, method: shop.Ordr/Place, proto: shop.proto}`,
			[]string{`6:39: requests[0].method: unknown service "shop.Ordr" in shop.proto (did you mean "shop.Order"?)`}},
		{"client streaming", `
  - {name: a, protocol: grpc, method: shop.Order/Upload, proto: shop.proto}`,
			[]string{`6:39: requests[0].method: /shop.Order/Upload is a client-streaming method`}},
		{"not a method name", `
  - {name: a, protocol: grpc, method: "shop Order", proto: shop.proto}`,
			[]string{`6:39: requests[0].method: "shop Order" is not a gRPC method`}},
		{"message field path", `
  - name: a
    protocol: grpc
    method: shop.Order/Place
    proto: shop.proto
    message: '{"sku": 1, "lines": [{"sku": "x"}, {"qty": -1, "skuu": "y"}], "speed": "SLOW", "total": {"units": 1.5}}'`,
			[]string{
				`10:14: requests[0].message.lines[1].qty: -1 is out of range for uint32`,
				`10:14: requests[0].message.lines[1].skuu: unknown field (did you mean "sku"?)`,
				`10:14: requests[0].message.sku: must be a string, got the number 1`,
				`10:14: requests[0].message.speed: "SLOW" is not a value of enum shop.Speed`,
				`10:14: requests[0].message.total.units: 1.5 is not an integer (int64)`,
			}},
		{"oneof twice and map keys", `
  - name: a
    protocol: grpc
    method: shop.Order/Place
    proto: shop.proto
    message: '{"card": "x", "voucher": "y", "tags": {"a": "1"}, "gift": "yes", "weight": [1]}'`,
			[]string{
				`10:14: requests[0].message.gift: must be true or false, got the string "yes"`,
				`10:14: requests[0].message.voucher: card and voucher are both set`,
				`10:14: requests[0].message.weight: must be a number, got an array`,
			}},
		{"generated values are checked too", `
  - name: a
    protocol: grpc
    method: shop.Order/Place
    proto: shop.proto
    message: '{"qty": {{pick "many"}}}'`,
			[]string{`10:14: requests[0].message: the message rendered with sample values is not valid JSON`}},
		{"not JSON", `
  - {name: a, protocol: grpc, method: shop.Order/Place, proto: shop.proto, message: "{sku: 1}"}`,
			[]string{`6:85: requests[0].message: the message is not valid JSON`}},
		{"missing proto file", `
  - {name: a, protocol: grpc, method: shop.Order/Place, proto: nope.proto}`,
			[]string{`6:64: requests[0].proto: ` + filepath.Join("testdata", "grpc", "nope.proto") + `: no such file`}},
		{"proto that does not compile", `
  - {name: a, protocol: grpc, method: broken.S/M, proto: broken.proto}`,
			[]string{`6:58: requests[0].proto: compile broken.proto:6:3: `}},
		{"both proto and reflection", `
  - {name: a, protocol: grpc, method: shop.Order/Place, proto: shop.proto, reflection: true}`,
			[]string{`6:76: requests[0].reflection: give either proto: or reflection: true, not both`}},
		{"neither proto nor reflection", `
  - {name: a, protocol: grpc, method: shop.Order/Place}`,
			[]string{`6:5: requests[0].proto: is required`}},
		{"http fields on a grpc request", `
  - name: a
    protocol: grpc
    method: shop.Order/Place
    reflection: true
    path: /x
    headers: {A: b}
    body: "{}"`,
			[]string{
				`10:5: requests[0].path: a gRPC request has no path`,
				`11:5: requests[0].headers: a gRPC request sends metadata:, not headers:`,
				`12:5: requests[0].body: a gRPC request sends message:`,
			}},
		{"grpc fields on an http request", `
  - {name: a, path: /, metadata: {a: b}, proto: x.proto}`,
			[]string{
				`6:24: requests[0].metadata: only a gRPC request takes metadata: (set protocol: grpc)`,
				`6:42: requests[0].proto: only a gRPC request takes proto: (set protocol: grpc)`,
			}},
		{"bad values", `
  - name: a
    protocol: grpc
    target: "http://h:1"
    method: shop.Order/Place
    reflection: true
    connections: 0
    timeout: 0s
    metadata: {grpc-status: x, "a b": c, K: x, k: y}
    tls: yes please
    transport: h3`,
			[]string{
				`8:13: requests[0].target: "http://h:1": a gRPC target is HOST:PORT, without a scheme`,
				`11:18: requests[0].connections: must be between 1 and 1024, got 0`,
				`12:14: requests[0].timeout: must be more than 0`,
				`13:16: requests[0].metadata.grpc-status: keys starting with grpc- are reserved`,
				`13:32: requests[0].metadata.a b: "a b" is not a valid metadata key`,
				`13:48: requests[0].metadata.k: duplicate metadata key`,
				`14:10: requests[0].tls: must be true or false`,
				`15:16: requests[0].transport: must be loadcap (the default) or grpc-go, got "h3"`,
			}},
		{"unknown protocol", `
  - {name: a, protocol: websocket, path: /}`,
			[]string{`6:25: requests[0].protocol: unknown protocol "websocket": http (the default) or grpc`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseGRPC(t, grpcFile(tc.requests))
			if err == nil {
				t.Fatal("parsed without error")
			}
			if !Invalid(err) {
				t.Fatalf("error %T is not Invalid: %v", err, err)
			}
			got := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(got, "t.yaml:"+w) {
					t.Errorf("missing %q in:\n%s", w, got)
				}
			}
			if n := strings.Count(got, "\n") + 1; n != len(tc.want) {
				t.Errorf("%d problems, want %d:\n%s", n, len(tc.want), got)
			}
		})
	}
}

func TestGRPCMessageEscapesGeneratedText(t *testing.T) {
	f := mustParse(t, `target: http://127.0.0.1:8080
data:
  users: data.csv
scenarios:
  s: {executor: constant-vus, vus: 1, duration: 1s}
requests:
  - name: a
    protocol: grpc
    method: shop.Order/Place
    proto: `+filepath.Join(mustAbs(t, "testdata/grpc"), "shop.proto")+`
    message: '{"sku": "{{users.name}}", "customer_id": "{{pick "a\"b"}}"}'
`, map[string]string{"data.csv": "name\n\"say \"\"hi\"\"\\\"\n"})
	got := string(f.Requests[0].GRPC.Message.AppendTo(nil, f.NewState(0)))
	want := `{"sku": "say \"hi\"\\", "customer_id": "a\"b"}`
	if got != want {
		t.Errorf("rendered %s, want %s", got, want)
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestGRPCImportPaths(t *testing.T) {
	dir := t.TempDir()
	for name, src := range map[string]string{
		"protos/api/svc.proto": "syntax = \"proto3\";\npackage api;\nimport \"types/t.proto\";\nservice S { rpc M(types.T) returns (types.T); }\n",
		"vendor/types/t.proto": "syntax = \"proto3\";\npackage types;\nmessage T { string v = 1; }\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src := grpcFile(`
  - {name: a, protocol: grpc, method: api.S/M, proto: protos/api/svc.proto, import_paths: [protos, vendor], message: '{"v": "x"}'}`)
	f, err := Parse(filepath.Join(dir, "t.yaml"), []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Requests[0].GRPC.Method.Input().FullName(); got != "types.T" {
		t.Errorf("input %s", got)
	}
	// Without the vendor import path the import is not found.
	src = strings.Replace(src, "[protos, vendor]", "[protos]", 1)
	if _, err := Parse(filepath.Join(dir, "t.yaml"), []byte(src)); err == nil || !strings.Contains(err.Error(), "types/t.proto") {
		t.Errorf("missing import: %v", err)
	}
}

func TestGRPCReflectionResolvesLater(t *testing.T) {
	f, err := parseGRPC(t, grpcFile(`
  - {name: a, protocol: grpc, target: "127.0.0.1:9", method: shop.Order/Place, reflection: true, message: '{"sku": 1}'}`))
	if err != nil {
		t.Fatal(err)
	}
	g := f.Requests[0].GRPC
	if g.Method != nil || !g.Reflection || g.ServiceName() != "shop.Order" {
		t.Fatalf("reflection call resolved at parse time: %+v", g)
	}
	// The engine resolves it with what the server describes; here the
	// schema of shop.proto stands in for the server's.
	p, err := parseGRPC(t, grpcFile(`
  - {name: a, protocol: grpc, method: shop.Order/Place, proto: shop.proto}`))
	if err != nil {
		t.Fatal(err)
	}
	sd := p.Requests[0].GRPC.Method.Parent()
	err = g.Resolve(p.Requests[0].GRPC.findMethod)
	if err == nil || !Invalid(err) || !strings.Contains(err.Error(), "t.yaml:6:") || !strings.Contains(err.Error(), "requests[0].message.sku: must be a string") {
		t.Errorf("resolve with a bad message: %v", err)
	}
	_ = sd
	g.Message = literal(`{"sku": "1"}`)
	if err := g.Resolve(p.Requests[0].GRPC.findMethod); err != nil || g.Method == nil {
		t.Errorf("resolve: %v, method %v", err, g.Method)
	}
}

func TestK6Script(t *testing.T) {
	files := map[string]string{"checkout.js": "export default function () {}\n"}
	f := mustParse(t, `scenarios:
  s: {executor: constant-arrival-rate, rate: 10, duration: 1s, preAllocatedVUs: 2}
k6: {script: checkout.js}
`, files)
	if filepath.Base(f.K6Script) != "checkout.js" || !filepath.IsAbs(f.K6Script) && !strings.Contains(f.K6Script, string(filepath.Separator)) {
		t.Errorf("script %q", f.K6Script)
	}
	if f.K6Pos.Line != 3 || len(f.Requests) != 0 || len(f.Scenarios) != 1 {
		t.Errorf("pos %v, %d requests, %d scenarios", f.K6Pos, len(f.Requests), len(f.Scenarios))
	}
	for _, tc := range []struct{ name, src, want string }{
		{"requests too", "scenarios: {s: {executor: constant-vus, vus: 1, duration: 1s}}\nrequests: [{name: a, path: /}]\nk6: {script: checkout.js}\n",
			"t.yaml:2:1: requests: a file with k6: takes its requests from the script; remove requests:"},
		{"no scenarios", "k6: {script: checkout.js}\n", "t.yaml:1:1: scenarios: is required with k6:"},
		{"missing script", "scenarios: {s: {executor: constant-vus, vus: 1, duration: 1s}}\nk6: {script: nope.js}\n", "t.yaml:2:14: k6.script: "},
		{"no script key", "scenarios: {s: {executor: constant-vus, vus: 1, duration: 1s}}\nk6: {scrpt: a.js}\n", "t.yaml:2:6: k6.scrpt: unknown key (did you mean \"script\"?)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseIn(t, tc.src, files)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestReplayRefusesGRPC(t *testing.T) {
	_, err := parseIn(t, `target: http://127.0.0.1:8080
replay: {file: rec.jsonl}
requests:
  - {name: a, protocol: grpc, method: a.B/C, reflection: true}
`, nil)
	if err == nil || !strings.Contains(err.Error(), "t.yaml:4:25: requests[0].protocol: replay is HTTP-only") {
		t.Errorf("error %v", err)
	}
}
