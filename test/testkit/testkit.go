// Package testkit is the one home of loadcap's test helpers: golden files,
// a buffer several goroutines may write to, free loopback ports, a headless
// browser over the DevTools protocol (devtools.go). Import it from _test.go
// files only.
package testkit

import (
	"bytes"
	"flag"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

// update is -update: Golden rewrites the files instead of comparing.
var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// Updating reports whether the test binary runs with -update.
func Updating() bool { return *update }

// Golden compares got with the golden file at path, or with -update
// (`go test ./PKG -update`) writes got there, creating its directory.
func Golden(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		if len(got)+len(want) < 8<<10 {
			t.Errorf("%s differs from the output (run go test -update and review the diff):\n--- got\n%s\n--- want\n%s", path, got, want)
			return
		}
		t.Errorf("%s differs from the output (run go test -update and review the diff)", path)
	}
}

// SyncBuffer is a bytes.Buffer that goroutines may write to and read from
// at once: a logger's or a command's output under test. The zero value is
// ready to use.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Len returns how many bytes were written so far.
func (s *SyncBuffer) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Len()
}

// FreeAddr returns a loopback address ("127.0.0.1:PORT") whose port was
// free a moment ago and that no earlier call in this process returned:
// the kernel may hand a port it just freed out again, and a test that
// asks for several before any is bound (ten agent processes) would get
// the same one twice.
func FreeAddr(t testing.TB) string {
	t.Helper()
	givenMu.Lock()
	defer givenMu.Unlock()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if !given[addr] {
			given[addr] = true
			return addr
		}
	}
	t.Fatal("testkit: no loopback port that was not handed out before")
	return ""
}

var (
	givenMu sync.Mutex
	given   = map[string]bool{} // the addresses FreeAddr returned
)

// FreePort is FreeAddr's port.
func FreePort(t testing.TB) int {
	t.Helper()
	_, p, _ := net.SplitHostPort(FreeAddr(t))
	n, _ := strconv.Atoi(p)
	return n
}
