package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/loadcap/loadcap/loadgen/cluster/clusterpb"
	"github.com/loadcap/loadcap/loadgen/target"
	"github.com/loadcap/loadcap/loadgen/target/targettest"
	"github.com/loadcap/loadcap/scenarios"

	"github.com/loadcap/loadcap/test/testkit"
)

func prepareRequest(t *testing.T, yaml string) *clusterpb.PrepareRequest {
	t.Helper()
	return &clusterpb.PrepareRequest{RunId: "r1", ScenarioName: "s.yaml", Scenario: []byte(yaml), Segment: "0:1", Sequence: "0,1"}
}

func TestAgentRefusesClientsWithoutAValidCertificate(t *testing.T) {
	srv := targettest.Start(t, target.Config{})
	certs, other := newCerts(t), newCerts(t)
	addr := localAgent(t, certs.agentConfig())
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(certs.path(CAFile))
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(ca)
	withCert := func(c testCerts, cert, key string) *tls.Config {
		kp, err := tls.LoadX509KeyPair(c.path(cert), c.path(key))
		if err != nil {
			t.Fatal(err)
		}
		return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{kp}, MinVersion: tls.VersionTLS13}
	}
	tests := []struct {
		name  string
		creds credentials.TransportCredentials
		ok    bool
	}{
		{"coordinator certificate", credentials.NewTLS(withCert(certs, CoordinatorCertFile, CoordinatorKeyFile)), true},
		{"no client certificate", credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}), false},
		{"certificate of another CA", credentials.NewTLS(withCert(other, CoordinatorCertFile, CoordinatorKeyFile)), false},
		{"server-only certificate", credentials.NewTLS(withCert(certs, AgentCertFile, AgentKeyFile)), false},
		{"plaintext", insecure.NewCredentials(), false},
	}
	plan := prepareRequest(t, "target: "+srv.URL()+"\nscenarios:\n  s: {executor: constant-vus, vus: 1, duration: 1s}\nrequests:\n  - {name: a, path: /}\n")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(tc.creds))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err = clusterpb.NewAgentClient(conn).Prepare(ctx, plan)
			if tc.ok && err != nil {
				t.Fatalf("a valid coordinator certificate was refused: %v", err)
			}
			if !tc.ok && err == nil {
				t.Fatal("the agent accepted a plan from a client without a valid certificate")
			}
			if !tc.ok && status.Code(err) != codes.Unavailable {
				t.Errorf("refused with %v, want the connection refused (Unavailable)", err)
			}
		})
	}
}

func TestAgentRefusesTargetsOutsideItsAllowList(t *testing.T) {
	srv := targettest.Start(t, target.Config{})
	tests := []struct {
		name  string
		allow []string
		yaml  string
		host  string
	}{
		{"target outside the default loopback list", nil,
			"target: http://outside.invalid:8080\nscenarios:\n  s: {executor: constant-vus, vus: 1, duration: 1s}\nrequests:\n  - {name: a, path: /}\n",
			`"outside.invalid:8080"`},
		{"one request elsewhere", nil,
			"target: " + srv.URL() + "\nscenarios:\n  s: {executor: constant-vus, vus: 1, duration: 1s}\nrequests:\n  - {name: a, path: /}\n  - {name: b, url: 'http://blocked.invalid/x'}\n",
			`"blocked.invalid:80"`},
		{"a gRPC call elsewhere", nil,
			"target: " + srv.URL() + "\nscenarios:\n  s: {executor: constant-vus, vus: 1, duration: 1s}\nrequests:\n  - {name: a, path: /}\n" +
				"  - {name: g, protocol: grpc, target: 'blocked.invalid:9090', method: loadtest.Shop/Place, reflection: true}\n",
			`"blocked.invalid:9090"`},
		{"loopback not on an explicit list", []string{"10.20.0.0/16", "shop.internal"},
			"target: " + srv.URL() + "\nscenarios:\n  s: {executor: constant-vus, vus: 1, duration: 1s}\nrequests:\n  - {name: a, path: /}\n",
			`"` + srv.Addr() + `"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr := localAgent(t, AgentConfig{Insecure: true, AllowTargets: tc.allow})
			f := scenario(t, tc.yaml, nil)
			plan, err := NewPlan(f, "")
			if err != nil {
				t.Fatal(err)
			}
			_, rep, err := Run(context.Background(), f, plan, CoordinatorConfig{Agents: []string{addr}, Insecure: true, PrepareTimeout: 5 * time.Second})
			if err == nil {
				t.Fatal("the agent accepted a plan aimed outside its allow list")
			}
			if msg := err.Error(); !strings.Contains(msg, tc.host) || !strings.Contains(msg, "allow list") || !strings.Contains(msg, addr) {
				t.Errorf("error %q must name the agent, the host %s and the allow list", msg, tc.host)
			}
			if rep.Agents[0].Status != AgentRefused {
				t.Errorf("agent status %s, want refused", rep.Agents[0].Status)
			}
			if srv.Stats().Arrived != 0 {
				t.Errorf("the target saw %d requests from a refused plan", srv.Stats().Arrived)
			}
		})
	}
}

func TestAllowListCheck(t *testing.T) {
	a, err := ParseAllowList("10.20.0.0/16,shop.internal", "*.svc.local", "192.0.2.7")
	if err != nil {
		t.Fatal(err)
	}
	a.lookup = func(_ context.Context, host string) ([]netip.Addr, error) {
		switch host {
		case "inside.corp":
			return []netip.Addr{netip.MustParseAddr("10.20.3.4")}, nil
		case "straddle.corp":
			return []netip.Addr{netip.MustParseAddr("10.20.3.4"), netip.MustParseAddr("203.0.113.9")}, nil
		}
		return nil, &netipError{}
	}
	tests := []struct {
		host string
		ok   bool
	}{
		{"10.20.1.2:80", true},
		{"10.21.0.1:80", false},
		{"[::ffff:10.20.0.9]:443", true},
		{"192.0.2.7", true},
		{"192.0.2.8:80", false},
		{"shop.internal:8080", true},
		{"SHOP.internal.:8080", true},
		{"evil-shop.internal:80", false},
		{"api.svc.local:7070", true},
		{"svc.local:7070", false},
		{"inside.corp:80", true},
		{"straddle.corp:80", false},
		{"unknown.corp:80", false},
		{"127.0.0.1:80", false},
	}
	for _, tc := range tests {
		t.Run(tc.host, func(t *testing.T) {
			err := a.Check(context.Background(), tc.host)
			if (err == nil) != tc.ok {
				t.Errorf("Check(%s) = %v, want allowed %v", tc.host, err, tc.ok)
			}
			if err != nil && !strings.Contains(err.Error(), tc.host) {
				t.Errorf("the error %q must name the host", err)
			}
		})
	}
	d := DefaultAllowList()
	for _, h := range []string{"127.0.0.1:1", "[::1]:1", "localhost:8080", "127.9.9.9"} {
		if err := d.Check(context.Background(), h); err != nil {
			t.Errorf("default list refuses loopback %s: %v", h, err)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "http://x", "a b", ""} {
		if _, err := ParseAllowList(bad); err == nil {
			t.Errorf("ParseAllowList(%q) accepted", bad)
		}
	}
}

type netipError struct{}

func (*netipError) Error() string { return "no such host" }

func TestInsecureOnlyOnLoopback(t *testing.T) {
	tests := []struct {
		name string
		err  func() error
		want string
	}{
		{"agent on all interfaces", func() error {
			return ServeAgent(context.Background(), AgentConfig{Listen: "0.0.0.0:0", Insecure: true})
		}, "loopback"},
		{"agent without certificates", func() error {
			return ServeAgent(context.Background(), AgentConfig{Listen: "127.0.0.1:0"})
		}, "mutual TLS"},
		{"agent TLS without client auth", func() error {
			return ServeAgent(context.Background(), AgentConfig{Listen: "127.0.0.1:0", TLS: &tls.Config{}})
		}, "client certificates"},
		{"coordinator with a remote agent", func() error {
			_, err := NewCoordinator(twoRequests(t), &Plan{}, CoordinatorConfig{Agents: []string{"127.0.0.1:7070", "10.0.0.5:7070"}, Insecure: true})
			return err
		}, "10.0.0.5:7070"},
		{"coordinator without certificates", func() error {
			_, err := NewCoordinator(twoRequests(t), &Plan{}, CoordinatorConfig{Agents: []string{"127.0.0.1:7070"}})
			return err
		}, "mutual TLS"},
		{"coordinator with too few segments", func() error {
			_, err := NewCoordinator(twoRequests(t), &Plan{}, CoordinatorConfig{Agents: []string{"127.0.0.1:7070", "[::1]:7070"}, Insecure: true, Sequence: "0,1"})
			return err
		}, "1 segments for 2 agents"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.err()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
	if _, err := NewCoordinator(twoRequests(t), &Plan{}, CoordinatorConfig{Agents: []string{"127.0.0.1:7070", "localhost:7071", "[::1]:7072"}, Insecure: true}); err != nil {
		t.Errorf("insecure on loopback refused: %v", err)
	}
}

func twoRequests(t *testing.T) *scenarios.File {
	return scenario(t, "target: http://127.0.0.1:9\nscenarios:\n  s: {executor: constant-vus, vus: 1, duration: 1s}\nrequests:\n  - {name: a, path: /}\n  - {name: b, path: /b}\n", nil)
}

func TestSecretHeadersNeverLogged(t *testing.T) {
	srv := targettest.Start(t, target.Config{})
	var log testkit.SyncBuffer
	addr := localAgent(t, AgentConfig{
		Insecure: true, SecretHeaders: []string{"X-Shop-Key"},
		Logger: slog.New(slog.NewJSONHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	f := scenario(t, `
target: `+srv.URL()+`
http:
  headers:
    Cookie: sid=c00kie-value
scenarios:
  s: {executor: constant-arrival-rate, rate: 20, duration: 1s, preAllocatedVUs: 2, maxVUs: 20}
requests:
  - name: a
    path: /
    headers:
      Authorization: Bearer s3cr3t-token
      X-Shop-Key: k3y-v4lue
      X-Trace: visible-value
`, nil)
	res, _ := runCluster(t, f, CoordinatorConfig{Agents: []string{addr}, Insecure: true})
	if res.Totals.Completed == 0 {
		t.Error("the run sent nothing")
	}
	out := log.String()
	for _, secret := range []string{"s3cr3t-token", "k3y-v4lue", "c00kie-value"} {
		if strings.Contains(out, secret) {
			t.Errorf("the agent logged the secret %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, "[redacted]") || !strings.Contains(out, "visible-value") {
		t.Errorf("the plan's headers should be logged, secrets redacted:\n%s", out)
	}
}

func TestPlanStaysInsideTheScenarioDirectory(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(dir, "users.csv")
	if err := os.WriteFile(outside, []byte(usersCSV), 0o644); err != nil {
		t.Fatal(err)
	}
	yaml := "target: http://127.0.0.1:9\ndata:\n  users: %s\nscenarios:\n  s: {executor: constant-vus, vus: 1, duration: 1s}\nrequests:\n  - {name: a, path: '/{{users.id}}'}\n"
	f := scenario(t, strings.Replace(yaml, "%s", outside, 1), nil)
	if _, err := NewPlan(f, ""); err == nil || !strings.Contains(err.Error(), "outside the scenario's directory") {
		t.Errorf("NewPlan with a CSV outside the scenario's directory: %v", err)
	}
	// An agent refuses a plan that reads a file it did not ship.
	addr := localAgent(t, AgentConfig{Insecure: true})
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cl := clusterpb.NewAgentClient(conn)
	for name, req := range map[string]*clusterpb.PrepareRequest{
		"absolute data path": prepareRequest(t, strings.Replace(yaml, "%s", outside, 1)),
		"escaping file name": {RunId: "r", ScenarioName: "s.yaml", Scenario: []byte(strings.Replace(yaml, "%s", "../users.csv", 1)),
			Files: map[string][]byte{"../users.csv": []byte(usersCSV)}},
		"path as scenario name": {RunId: "r", ScenarioName: "../s.yaml", Scenario: []byte("x: 1")},
	} {
		_, err := cl.Prepare(context.Background(), req)
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: Prepare = %v, want InvalidArgument", name, err)
		}
	}
}

// A coordinator cannot make an agent open, read or probe a file outside
// the plan's own directory, by any kind of file reference: the agent
// refuses before opening anything, with the same error whether the file
// exists or not, and nothing of its content.
func TestAgentOpensNoFileOutsideThePlan(t *testing.T) {
	out := t.TempDir() // the agent's host files
	for name, body := range map[string]string{
		"secret.csv":   "topsecret_column\nhunter2\n",
		"secret.proto": "syntax = \"proto3\";\npackage topsecretpkg;\nmessage TopSecret {}\n",
	} {
		if err := os.WriteFile(filepath.Join(out, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(out, "protos"), 0o700); err != nil {
		t.Fatal(err)
	}
	// From the agent's plan directory (os.TempDir()/loadcap-agent-*/protos)
	// to out, for a proto import.
	rel, err := filepath.Rel(os.TempDir(), out)
	if err != nil || !filepath.IsLocal(rel) {
		t.Skipf("the test's directory %s is not under %s", out, os.TempDir())
	}
	up := "../../" + filepath.ToSlash(rel)
	addr := localAgent(t, AgentConfig{Insecure: true})
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cl := clusterpb.NewAgentClient(conn)
	grpcReq := func(call string, files map[string][]byte) *clusterpb.PrepareRequest {
		y := "target: http://127.0.0.1:9\nscenarios:\n  s: {executor: constant-vus, vus: 1, duration: 1s}\nrequests:\n" +
			"  - {name: g, protocol: grpc, target: '127.0.0.1:9', method: p.S/M, " + call + "}\n"
		return &clusterpb.PrepareRequest{RunId: "r", ScenarioName: "s.yaml", Scenario: []byte(y), Files: files, Segment: "0:1", Sequence: "0,1"}
	}
	shipped := func(imp string) map[string][]byte {
		return map[string][]byte{"protos/a.proto": []byte("syntax = \"proto3\";\npackage p;\nimport \"" + imp + "\";\nmessage Msg {}\nservice S { rpc M(Msg) returns (Msg); }\n")}
	}
	tests := []struct {
		name            string
		exists, missing *clusterpb.PrepareRequest
		// the path as each request writes it, replaced before comparing
		existsPath, missingPath string
	}{
		{name: "data file",
			exists:     prepareRequest(t, "target: http://127.0.0.1:9\ndata:\n  u: "+filepath.Join(out, "secret.csv")+"\nscenarios:\n  s: {executor: constant-vus, vus: 1, duration: 1s}\nrequests:\n  - {name: a, path: '/{{u.topsecret_column}}'}\n"),
			missing:    prepareRequest(t, "target: http://127.0.0.1:9\ndata:\n  u: "+filepath.Join(out, "missing.csv")+"\nscenarios:\n  s: {executor: constant-vus, vus: 1, duration: 1s}\nrequests:\n  - {name: a, path: '/{{u.topsecret_column}}'}\n"),
			existsPath: filepath.Join(out, "secret.csv"), missingPath: filepath.Join(out, "missing.csv")},
		{name: "proto",
			exists: grpcReq("proto: "+filepath.Join(out, "secret.proto"), nil), missing: grpcReq("proto: "+filepath.Join(out, "missing.proto"), nil),
			existsPath: filepath.Join(out, "secret.proto"), missingPath: filepath.Join(out, "missing.proto")},
		{name: "import path",
			exists:     grpcReq("proto: protos/a.proto, import_paths: ["+out+"]", shipped("secret.proto")),
			missing:    grpcReq("proto: protos/a.proto, import_paths: ["+filepath.Join(out, "nodir")+"]", shipped("secret.proto")),
			existsPath: out, missingPath: filepath.Join(out, "nodir")},
		{name: "proto import",
			exists: grpcReq("proto: protos/a.proto", shipped(up+"/secret.proto")), missing: grpcReq("proto: protos/a.proto", shipped(up+"/missing.proto")),
			existsPath: up + "/secret.proto", missingPath: up + "/missing.proto"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errExists := cl.Prepare(context.Background(), tt.exists)
			_, errMissing := cl.Prepare(context.Background(), tt.missing)
			if status.Code(errExists) != codes.InvalidArgument || status.Code(errMissing) != codes.InvalidArgument {
				t.Fatalf("Prepare = %v / %v, want both refused as InvalidArgument", errExists, errMissing)
			}
			a := strings.ReplaceAll(status.Convert(errExists).Message(), tt.existsPath, "PATH")
			b := strings.ReplaceAll(status.Convert(errMissing).Message(), tt.missingPath, "PATH")
			if a != b {
				t.Errorf("the errors tell an existing file from a missing one:\n exists:  %s\n missing: %s", a, b)
			}
			for _, secret := range []string{"topsecret", "TopSecret", "hunter2"} {
				if strings.Contains(a, secret) {
					t.Errorf("the error quotes the outside file: %s", a)
				}
			}
		})
	}
}

func TestWriteCertsRefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	if err := WriteCerts(dir, "agent.example", "10.1.2.3"); err != nil {
		t.Fatal(err)
	}
	if err := WriteCerts(dir); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second WriteCerts into the same directory: %v", err)
	}
	st, err := os.Stat(filepath.Join(dir, AgentKeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("agent key mode %v (%v), want 0600", st.Mode(), err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, AgentCertFile))
	cert, err := tls.X509KeyPair(b, mustRead(t, filepath.Join(dir, AgentKeyFile)))
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(cert.Certificate[0])
	if err := leaf.VerifyHostname("agent.example"); err != nil {
		t.Error(err)
	}
	if err := leaf.VerifyHostname("10.1.2.3"); err != nil {
		t.Error(err)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// With two certificate sets, a certificate either side rejects is said at
// once on both sides, as "certificate rejected" with the reason: not as a
// "broken pipe" at the end of the prepare timeout, and not silently.
func TestCertificateRejectedAtOnce(t *testing.T) {
	srv := targettest.Start(t, target.Config{})
	certs, other := newCerts(t), newCerts(t)
	f := scenario(t, steady(srv.URL(), 10, "1s"), map[string]string{"data/users.csv": usersCSV})
	tests := []struct {
		name                 string
		coordinator          CoordinatorConfig
		coordWant, agentWant []string
	}{
		{name: "the agent rejects the coordinator's",
			coordinator: CoordinatorConfig{CertFile: other.path(CoordinatorCertFile), KeyFile: other.path(CoordinatorKeyFile), CAFile: certs.path(CAFile)},
			coordWant:   []string{"certificate rejected by the agent", "unknown certificate authority"},
			agentWant:   []string{"certificate rejected", "by=agent", "unknown authority"}},
		{name: "the coordinator rejects the agent's",
			coordinator: CoordinatorConfig{CertFile: certs.path(CoordinatorCertFile), KeyFile: certs.path(CoordinatorKeyFile), CAFile: other.path(CAFile)},
			coordWant:   []string{"certificate rejected: the agent's certificate", "unknown authority"},
			agentWant:   []string{"certificate rejected", "by=coordinator", "bad certificate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log testkit.SyncBuffer
			cfg := certs.agentConfig()
			cfg.Logger = slog.New(slog.NewTextHandler(&log, nil))
			addr := localAgent(t, cfg)
			cc := tt.coordinator
			cc.Agents = []string{addr} // the default 30 s prepare timeout
			began := time.Now()
			_, _, err := Run(context.Background(), f, NewPlanOrFatal(t, f), cc)
			took := time.Since(began)
			if err == nil || took > 3*time.Second {
				t.Fatalf("coordinator: %v after %v, want a refusal within a second or two", err, took)
			}
			for _, w := range tt.coordWant {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("coordinator's error lacks %q: %v", w, err)
				}
			}
			logged := func() bool {
				for _, w := range tt.agentWant {
					if !strings.Contains(log.String(), w) {
						return false
					}
				}
				return true
			}
			for deadline := began.Add(2 * time.Second); !logged() && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
			}
			if !logged() {
				t.Errorf("agent's log lacks one of %q within 2 s:\n%s", tt.agentWant, log.String())
			}
		})
	}
}

// NewPlanOrFatal is NewPlan for a test.
func NewPlanOrFatal(t *testing.T, f *scenarios.File) *Plan {
	t.Helper()
	p, err := NewPlan(f, "")
	if err != nil {
		t.Fatal(err)
	}
	return p
}
