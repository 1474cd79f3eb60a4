package loadgen_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/loadgen/grpcc/grpcctest"
	"github.com/loadcap/loadcap/loadgen/target"
	"github.com/loadcap/loadcap/loadgen/target/targettest"
	"github.com/loadcap/loadcap/scenarios"
	"github.com/loadcap/loadcap/test/israce"
	"github.com/loadcap/loadcap/test/quiet"
)

// grpcParse parses a scenario in a fresh directory holding users.csv;
// %[1]s in yaml is the test service's .proto file.
func grpcParse(t *testing.T, yaml string, args ...any) *scenarios.File {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "users.csv"), []byte("id,name\n7,ann\n8,bob\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := strings.ReplaceAll(fmt.Sprintf(yaml, args...), "PROTO", filepath.Join(grpcctest.ProtoDir(), "loadtest.proto"))
	f, err := scenarios.Parse(filepath.Join(dir, "t.yaml"), []byte(src))
	if err != nil {
		t.Fatalf("scenario: %v", err)
	}
	return f
}

func TestGRPCEndToEnd(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   grpcctest.Options
		schema string
	}{
		{"proto file", grpcctest.Options{Record: true}, "proto: PROTO"},
		{"reflection v1", grpcctest.Options{Record: true, Reflection: grpcctest.ReflectionV1}, "reflection: true"},
		{"reflection v1alpha", grpcctest.Options{Record: true, Reflection: grpcctest.ReflectionV1AlphaOnly}, "reflection: true"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := grpcctest.Start(t, tc.opts)
			f := grpcParse(t, `
drill_id: drill-42
data:
  users: {file: users.csv, order: sequential}
scenarios:
  s: {executor: constant-arrival-rate, rate: 100, duration: 1s, preAllocatedVUs: 4, maxVUs: 20}
requests:
  - name: place
    protocol: grpc
    target: %s
    method: loadtest.Shop/Place
    %s
    message: '{"sku": "S-{{randInt 1 1000}}", "qty": {{seq}}, "kind": "{{pick "EXPRESS" "KIND_UNSPECIFIED"}}", "customer_id": "{{users.name}}-{{uuid}}"}'
    metadata: {X-Region: east, x-user: "{{users.id}}"}
`, srv.Addr, tc.schema)
			res := run(t, f)
			calls := srv.Calls()
			// 100 arrivals; on a starved machine the last may wait too long
			// for a VU and be dropped at the end, never sent: at most 2,
			// unless the run reports its host stalled it.
			tt := res.Totals
			maxDropped := int64(2)
			if res.Disturbed() > 0 {
				maxDropped = 100
			}
			if tt.Completed+tt.Dropped != 100 || tt.Dropped > maxDropped || tt.Failed != 0 || len(calls) != int(tt.Completed) {
				t.Fatalf("completed %d dropped %d failed %d (errors %v), server saw %d; want 100 completed (at most %d dropped), 0 failed, all seen",
					tt.Completed, tt.Dropped, tt.Failed, res.Requests[0].Errors, len(calls), maxDropped)
			}
			// Each receipt: a 5-byte prefix, id, qty and 16 bytes of padding.
			if n := tt.Completed; res.Totals.BytesSent < n*(5+20) || res.Totals.BytesRecv < n*(5+2+3+2+18) {
				t.Errorf("bytes sent %d received %d", res.Totals.BytesSent, res.Totals.BytesRecv)
			}
			seqs := map[float64]bool{}
			cust := regexp.MustCompile(`^(ann|bob)-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
			for _, c := range calls {
				m := c.Message
				if sku, _ := m["sku"].(string); !regexp.MustCompile(`^S-\d{1,4}$`).MatchString(sku) {
					t.Errorf("sku %q", m["sku"])
				}
				qty, _ := m["qty"].(float64)
				seqs[qty] = true
				if k, ok := m["kind"]; ok && k != "EXPRESS" {
					t.Errorf("kind %v", k)
				}
				id, _ := m["customerId"].(string)
				if !cust.MatchString(id) {
					t.Errorf("customer_id %q", id)
				}
				want := map[string]string{"x-loadcap-shadow": "drill-42", "baggage": "loadcap.shadow=drill-42", "x-region": "east"}
				for k, v := range want {
					if got := c.Metadata.Get(k); len(got) != 1 || got[0] != v {
						t.Errorf("metadata %s = %q, want %q", k, got, v)
					}
				}
				// The row of a request is the same across message and metadata.
				if u := c.Metadata.Get("x-user"); len(u) != 1 || (u[0] == "7") != strings.HasPrefix(id, "ann") {
					t.Errorf("x-user %q with customer %q", u, id)
				}
			}
			if len(seqs) != int(tt.Completed) || !seqs[1] {
				t.Errorf("seq gave %d distinct values over %d calls (1: %v), want one each from 1", len(seqs), tt.Completed, seqs[1])
			}
		})
	}
}

func TestGRPCStatusCodesAreErrorClasses(t *testing.T) {
	srv := grpcctest.Start(t, grpcctest.Options{})
	f := grpcParse(t, `
scenarios:
  s: {executor: constant-vus, vus: 2, duration: 1s}
requests:
  - {name: unavailable, protocol: grpc, target: %[1]s, method: loadtest.Shop/Fail, proto: PROTO, message: '{"code": 14}'}
  - {name: exhausted, protocol: grpc, target: %[1]s, method: loadtest.Shop/Fail, proto: PROTO, message: '{"code": 8}'}
  - {name: slow, protocol: grpc, target: %[1]s, method: loadtest.Shop/Slow, proto: PROTO, message: '{"ms": 1000}', timeout: 20ms}
  - {name: ok, protocol: grpc, target: %[1]s, method: loadtest.Shop/Fail, proto: PROTO}
  - {name: stream, protocol: grpc, target: %[1]s, method: loadtest.Shop/List, proto: PROTO, message: '{"n": 3}'}
`, srv.Addr)
	res := run(t, f)
	for _, tc := range []struct {
		name, class string
	}{
		{"unavailable", "grpc_unavailable"},
		{"exhausted", "grpc_resource_exhausted"},
		{"slow", "grpc_deadline_exceeded"},
		{"ok", ""},
		{"stream", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := res.Request(tc.name)
			if r == nil || r.Completed+r.Failed == 0 {
				t.Fatalf("no calls of %s", tc.name)
			}
			if tc.class == "" {
				if r.Failed != 0 {
					t.Errorf("%d failed: %v %v", r.Failed, r.Errors, r.ErrorSamples)
				}
				return
			}
			if r.Completed != 0 || r.Errors[tc.class] != r.Failed {
				t.Errorf("completed %d, errors %v; want every call in %s", r.Completed, r.Errors, tc.class)
			}
			if !strings.Contains(r.ErrorSamples[tc.class], "/loadtest.Shop/") {
				t.Errorf("sample %q", r.ErrorSamples[tc.class])
			}
		})
	}
	if s := res.Request("stream"); s.BytesRecv < 3*(s.Completed) {
		t.Errorf("stream received %d bytes in %d calls: every message counts", s.BytesRecv, s.Completed)
	}
	if r := res.Request("slow"); r.Latency.Max() > 500_000 {
		t.Errorf("slow call latency max %dµs with a 20ms timeout", r.Latency.Max())
	}
}

func TestGRPCTLSAndConnections(t *testing.T) {
	srv := grpcctest.Start(t, grpcctest.Options{TLS: true})
	for _, tc := range []struct {
		name             string
		insecure         bool
		conns            string
		vus, wantPeers   int
		wantClass        string
		wantPeersAtLeast bool
	}{
		{"insecure skip verify, default connections = VUs", true, "", 6, 6, "", false},
		{"connections: 3", true, "connections: 3", 6, 3, "", false},
		{"unverified certificate fails", false, "", 1, 0, "grpc_unavailable", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := srv.Peers()
			f := grpcParse(t, `
http: {insecureSkipTLSVerify: %t}
scenarios:
  s: {executor: constant-vus, vus: %d, duration: 1s}
requests:
  - {name: a, protocol: grpc, target: %s, tls: true, method: loadtest.Shop/Fail, proto: PROTO, timeout: 1s, %s}
`, tc.insecure, tc.vus, srv.Addr, tc.conns)
			res := run(t, f)
			r := res.Request("a")
			if tc.wantClass != "" {
				if r.Completed != 0 || r.Errors[tc.wantClass] == 0 {
					t.Errorf("completed %d, errors %v; want %s", r.Completed, r.Errors, tc.wantClass)
				}
				return
			}
			if r.Failed != 0 || r.Completed == 0 {
				t.Fatalf("completed %d failed %d %v", r.Completed, r.Failed, r.ErrorSamples)
			}
			if got := srv.Peers() - before; got != tc.wantPeers {
				t.Errorf("server saw %d new connections, want %d", got, tc.wantPeers)
			}
		})
	}
}

func TestGRPCReflectionProblemsAreInvalidInput(t *testing.T) {
	srv := grpcctest.Start(t, grpcctest.Options{Reflection: grpcctest.ReflectionV1})
	for _, tc := range []struct{ name, req, want string }{
		{"unknown method", `{name: a, protocol: grpc, target: %s, method: loadtest.Shop/Plce, reflection: true}`,
			`t.yaml:4:64: requests[0].method: service loadtest.Shop has no method "Plce" (did you mean "Place"?)`},
		{"unknown service", `{name: a, protocol: grpc, target: %s, method: loadtest.Shp/Place, reflection: true}`,
			`t.yaml:4:64: requests[0].method: unknown service "loadtest.Shp"`},
		{"message does not fit", `{name: a, protocol: grpc, target: %s, method: loadtest.Shop/Place, reflection: true, message: '{"qty": "x"}'}`,
			`requests[0].message.qty: "x" is not an integer (int32)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := grpcParse(t, "scenarios:\n  s: {executor: constant-vus, vus: 1, duration: 1s}\nrequests:\n  - "+tc.req+"\n", srv.Addr)
			_, err := loadgen.New(f)
			if err == nil || !scenarios.Invalid(err) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v\nwant invalid input with %q", err, tc.want)
			}
		})
	}
	t.Run("no reflection service is a tool error", func(t *testing.T) {
		plain := grpcctest.Start(t, grpcctest.Options{})
		f := grpcParse(t, "scenarios:\n  s: {executor: constant-vus, vus: 1, duration: 1s}\nrequests:\n  - {name: a, protocol: grpc, target: %s, method: loadtest.Shop/Place, reflection: true}\n", plain.Addr)
		if _, err := loadgen.New(f); err == nil || scenarios.Invalid(err) || !strings.Contains(err.Error(), "server reflection") {
			t.Errorf("New: %v", err)
		}
	})
}

func TestGRPCCoordinatedOmission(t *testing.T) {
	// As TestCoordinatedOmission, over gRPC: the server stops answering for
	// 200 ms of every second; at 500 calls/s p90 ≈ 100 ms and p99 ≈ 190 ms,
	// also when only 20 VUs may be in flight.
	for _, maxVUs := range []int{500, 20} {
		t.Run(fmt.Sprintf("maxVUs=%d", maxVUs), func(t *testing.T) {
			srv := grpcctest.Start(t, grpcctest.Options{StallEvery: time.Second, StallFor: 200 * time.Millisecond})
			f := grpcParse(t, `
scenarios:
  co: {executor: constant-arrival-rate, rate: 500, duration: 3s, preAllocatedVUs: %d, maxVUs: %d}
requests:
  - {name: a, protocol: grpc, target: %s, method: loadtest.Shop/Fail, proto: PROTO}
`, min(maxVUs, 50), maxVUs, srv.Addr)
			// A freeze skews every percentile: measure again, the stall
			// windows restarted each time.
			quiet.Retry(t, 3, func(a *quiet.A) {
				srv.RestartStalls() // stalls at 0, 1 and 2 s of the run, none at its end
				res := run(t, f)
				if res.Totals.Failed != 0 {
					t.Errorf("failed %d: %v", res.Totals.Failed, res.Requests[0].ErrorSamples)
				}
				checkCO(a, res, maxVUs == 20)
			})
		})
	}
}

func TestGRPCHardStopAbandonsCalls(t *testing.T) {
	srv := grpcctest.Start(t, grpcctest.Options{})
	f := grpcParse(t, `
scenarios:
  s: {executor: constant-vus, vus: 3, duration: 1s, gracefulStop: 0s}
requests:
  - {name: a, protocol: grpc, target: %s, method: loadtest.Shop/Slow, proto: PROTO, message: '{"ms": 5000}', timeout: 10s}
`, srv.Addr)
	e, err := loadgen.New(f)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := e.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, res)
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("run took %v: calls in flight at the hard stop must be abandoned", d)
	}
	if res.Totals.InflightAtStop != 3 || res.Totals.Failed != 0 {
		t.Errorf("in flight at stop %d, failed %d; want 3, 0", res.Totals.InflightAtStop, res.Totals.Failed)
	}
}

// TestGRPCReqDurationThreshold: grpc_req_duration judges the gRPC calls
// alone, http_req_duration every request. Fast gRPC calls beside a slow
// HTTP request pass the first and fail the second.
func TestGRPCReqDurationThreshold(t *testing.T) {
	srv := grpcctest.Start(t, grpcctest.Options{})
	slow := targettest.Start(t, target.Config{ServiceTime: 60 * time.Millisecond})
	f := grpcParse(t, `
target: %s
scenarios:
  s: {executor: constant-arrival-rate, rate: 40, duration: 1s, preAllocatedVUs: 10}
requests:
  - {name: call, protocol: grpc, target: %s, method: loadtest.Shop/Fail, proto: PROTO}
  - {name: page, path: /}
thresholds:
  grpc_req_duration: ['p(99)<50']
  'grpc_req_duration{name:call}': ['max<50']
  http_req_duration: ['p(99)<50']
  'grpc_req_duration{name:page}': ['p(99)<50']
`, slow.URL(), srv.Addr)
	// A freeze longer than 50 ms fails the fast calls' thresholds too:
	// that attempt is measured again.
	quiet.Retry(t, 3, func(a *quiet.A) {
		res := run(t, f)
		got := map[string]bool{}
		for _, th := range res.Thresholds {
			got[th.Metric] = th.Passed
		}
		want := map[string]bool{
			"grpc_req_duration":            true,  // loopback calls, well under 50 ms
			"grpc_req_duration{name:call}": true,  // the same, by name
			"http_req_duration":            false, // includes the 60 ms page
			"grpc_req_duration{name:page}": false, // page is no gRPC call: no data fails
		}
		if israce.Enabled {
			delete(want, "grpc_req_duration")
			delete(want, "grpc_req_duration{name:call}")
		}
		for m, w := range want {
			if got[m] == w {
				continue
			}
			if w { // only a slow call fails a passing one
				a.Errorf("%s passed = %v, want %v (thresholds %+v)", m, got[m], w, res.Thresholds)
			} else {
				t.Errorf("%s passed = %v, want %v (thresholds %+v)", m, got[m], w, res.Thresholds)
			}
		}
	})
}
