package scenarios

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A confined parse refuses every kind of file reference that leaves the
// scenario's directory, with the same message whether the file exists.
func TestConfinedRefusesFilesOutside(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "plan")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"x.csv", "x.jsonl", "x.js", "x.yaml"} {
		if err := os.WriteFile(filepath.Join(root, name), []byte("secret_first_line\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct{ name, yaml, key string }{
		{"data", "target: http://127.0.0.1:9\ndata: {u: ../%s.csv}\nscenarios: {s: {executor: constant-vus, vus: 1, duration: 1s}}\nrequests: [{name: a, path: '/{{u.secret_first_line}}'}]\n", "data.u.file"},
		{"replay file", "target: http://127.0.0.1:9\nreplay: {file: ../%s.jsonl}\nscenarios: {s: {executor: constant-vus, vus: 1, duration: 1s}}\n", "replay.file"},
		{"replay rewrite", "target: http://127.0.0.1:9\nreplay: {file: r.jsonl, rewrite: ../%s.yaml}\nscenarios: {s: {executor: constant-vus, vus: 1, duration: 1s}}\n", "replay.rewrite"},
		{"k6 script", "target: http://127.0.0.1:9\nscenarios: {s: {executor: constant-vus, vus: 1, duration: 1s}}\nk6: {script: ../%s.js}\n", "k6.script"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var msgs []string
			for _, name := range []string{"x", "missing"} {
				_, err := Parse(filepath.Join(dir, "s.yaml"), []byte(strings.Replace(tt.yaml, "%s", name, 1)), Confined())
				if err == nil || !strings.Contains(err.Error(), tt.key+": ../"+name) || !strings.Contains(err.Error(), "outside the scenario's directory") {
					t.Fatalf("confined parse of %s: %v, want %s refused as outside", name, err, tt.key)
				}
				msgs = append(msgs, strings.Replace(err.Error(), "../"+name, "PATH", 1))
			}
			if msgs[0] != msgs[1] || strings.Contains(msgs[0], "secret_first_line") {
				t.Errorf("the errors differ or quote the file:\n%s\n%s", msgs[0], msgs[1])
			}
		})
	}
}
