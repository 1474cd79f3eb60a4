package testkit

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// A golden file that differs fails the test; one that matches passes.
func TestGolden(t *testing.T) {
	path := filepath.Join(t.TempDir(), "g.txt")
	if err := os.WriteFile(path, []byte("want\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	Golden(t, path, []byte("want\n"))
	ft := &testing.T{}
	done := make(chan struct{})
	go func() { defer close(done); Golden(ft, path, []byte("other\n")) }()
	<-done
	if !ft.Failed() {
		t.Error("a differing output passed the golden file")
	}
}

func TestSyncBufferConcurrent(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				b.Write([]byte("x"))
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	if b.Len() != 800 || strings.Count(b.String(), "x") != 800 {
		t.Errorf("%d bytes, want 800", b.Len())
	}
}

func TestFreePort(t *testing.T) {
	if p := FreePort(t); p <= 0 || p > 65535 {
		t.Errorf("port %d", p)
	}
	if a := FreeAddr(t); !strings.HasPrefix(a, "127.0.0.1:") {
		t.Errorf("addr %s", a)
	}
}
