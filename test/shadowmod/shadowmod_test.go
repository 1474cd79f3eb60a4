// Package shadowmod proves what a service takes on when it embeds the
// shadow library: a scratch module that imports it is resolved by the go
// command, and its module graph must hold none of loadcap's tool-side
// dependencies.
package shadowmod_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// forbidden are modules a service must never inherit from the library.
// gonum is not among them: gRPC itself requires it.
var forbidden = []string{
	"go.k6.io/k6",
	"k8s.io/",
	"github.com/chromedp/",
	"github.com/HdrHistogram/",
	"modernc.org/sqlite",
	"github.com/jackc/pgx",
	"github.com/redis/go-redis",
	"github.com/spf13/cobra",
	"gonum.org/v1/plot",
	"github.com/loadcap/loadcap ", // the tool's own module
}

func TestEmbeddingServiceGraph(t *testing.T) {
	if testing.Short() {
		t.Skip("resolves a module graph with the go command")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	lib, err := filepath.Abs("../../shadow")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/orderservice\n\ngo 1.25\n\n"+
		"require github.com/loadcap/loadcap/shadow v0.1.0\n\n"+
		"replace github.com/loadcap/loadcap/shadow => "+lib+"\n")
	// A service that uses every part of the library it is asked to embed:
	// the tag, HTTP and gRPC middleware, database/sql routing and queues.
	write("main.go", `package main

import (
	"net/http"

	"google.golang.org/grpc"

	"github.com/loadcap/loadcap/shadow"
)

func main() {
	p, err := shadow.NewPolicy(shadow.Tables("orders"), shadow.Topics("events"))
	if err != nil {
		panic(err)
	}
	_ = p.Middleware(http.NotFoundHandler())
	_ = grpc.NewServer(p.ServerOptions()...)
	_ = p.DB(nil, nil)
}
`)
	run := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(goBin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	run("mod", "tidy")
	run("build", "./...")
	graph := run("list", "-m", "all")

	selected := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(graph))
	for sc.Scan() {
		line := sc.Text() + " "
		for _, f := range forbidden {
			if strings.HasPrefix(line, f) {
				t.Errorf("a service embedding the shadow library inherits %s", strings.TrimSpace(line))
			}
		}
		if fields := strings.Fields(line); len(fields) >= 2 {
			selected[fields[0]] = fields[1]
		}
	}
	// The library must not raise a service's own versions beyond what it
	// states it needs: what the service resolves for the library's direct
	// requirements is exactly what the library's go.mod asks for.
	libMod, err := os.ReadFile(filepath.Join(lib, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(libMod), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 || !strings.Contains(f[0], ".") || strings.HasPrefix(line, "module") {
			continue
		}
		if got := selected[f[0]]; got != "" && got != f[1] {
			t.Errorf("%s resolves to %s in the service, but the library asks for %s: a dependency of the library raised it", f[0], got, f[1])
		}
	}
	if t.Failed() {
		t.Logf("go list -m all:\n%s", graph)
	}
}
