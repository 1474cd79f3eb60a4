package scenarios

import (
	"os"
	"path/filepath"
	"testing"
)

// parseIn writes files (name → content) into a fresh directory and parses src
// as dir/t.yaml, so relative CSV paths resolve there.
func parseIn(t *testing.T, src string, files map[string]string) (*File, error) {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return Parse(filepath.Join(dir, "t.yaml"), []byte(src))
}

// mustParse is parseIn for files that must be valid.
func mustParse(t *testing.T, src string, files map[string]string) *File {
	t.Helper()
	f, err := parseIn(t, src, files)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return f
}

// minimal wraps requests (a YAML list body) in a valid file.
func minimal(requests string) string {
	return `target: http://127.0.0.1:8080
scenarios:
  s:
    executor: constant-vus
    vus: 1
    duration: 1s
requests:
` + requests
}
