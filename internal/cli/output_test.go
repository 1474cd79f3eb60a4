package cli

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteAtomic(t *testing.T) {
	boom := errors.New("boom")
	coded := WithCode(ExitInvalid, boom)
	tests := []struct {
		name  string
		write func(io.Writer) error
		err   error  // want errors.Is
		want  string // the file afterwards
	}{
		{"replaces the file", func(w io.Writer) error { _, err := io.WriteString(w, "new\n"); return err }, nil, "new\n"},
		{"a failed writer keeps the old file", func(w io.Writer) error {
			io.WriteString(w, strings.Repeat("half ", 100<<10)) // past the buffer: bytes reached the temporary file
			return boom
		}, boom, "old\n"},
		{"the writer's error is returned as it is", func(io.Writer) error { return coded }, coded, "old\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "out.json")
			if err := os.WriteFile(path, []byte("old\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			err := WriteAtomic(path, tc.write)
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if tc.err != nil && ExitCode(tc.err) != ExitCode(err) {
				t.Errorf("exit code %d, want the writer's %d", ExitCode(err), ExitCode(tc.err))
			}
			b, _ := os.ReadFile(path)
			if string(b) != tc.want {
				t.Errorf("file holds %.40q, want %q", b, tc.want)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if tc.err == nil && fi.Mode().Perm() != 0o644 {
				t.Errorf("mode %v, want 0644", fi.Mode().Perm())
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("temporary files left behind: %v", entries)
			}
		})
	}
	t.Run("a missing directory names the path", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "nope", "out.json")
		err := WriteAtomic(path, func(io.Writer) error { return nil })
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("err %v, want one naming %s", err, path)
		}
	})
}

func TestCheckOutput(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
		want string // in the error; "" for none
	}{
		{"a new file in a directory", filepath.Join(dir, "run.json"), ""},
		{"an existing file", file, ""},
		{"a bare name (the working directory)", "run.json", ""},
		{"a missing directory", filepath.Join(dir, "missing", "run.json"), "missing does not exist"},
		{"a file as the directory", filepath.Join(file, "run.json"), "is not a directory"},
		{"a directory as the file", dir, "is a directory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckOutput(tc.path)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.path)):
				t.Errorf("err %v, want one naming %s and saying %q", err, tc.path, tc.want)
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the check left files: %v", entries)
	}
	if os.Geteuid() != 0 { // root writes anywhere
		ro := filepath.Join(t.TempDir(), "ro")
		if err := os.Mkdir(ro, 0o555); err != nil {
			t.Fatal(err)
		}
		if err := CheckOutput(filepath.Join(ro, "run.json")); err == nil || !strings.Contains(err.Error(), "not writable") {
			t.Errorf("a read-only directory: %v", err)
		}
	}
}

var errInvalid = errors.New("invalid")

func TestExitCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, 0},
		{"plain", errors.New("x"), 1},
		{"coded", WithCode(ExitThresholds, errors.New("x")), 99},
		{"coded, wrapped", errors.Join(errors.New("a"), WithCode(ExitRegression, errors.New("x"))), 110},
		{"classified", errInvalid, 104},
		{"coded beats classified", WithCode(ExitUsage, errInvalid), 2},
	}
	invalid := func(err error) (Code, bool) { return ExitInvalid, errors.Is(err, errInvalid) }
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ExitCode(tc.err, invalid); got != tc.want {
				t.Errorf("ExitCode = %d, want %d", got, tc.want)
			}
		})
	}
	if !Silent(WithCode(ExitInvalid, ErrSilent)) || Silent(WithCode(ExitInvalid, errors.New("x"))) {
		t.Error("Silent")
	}
}

func TestRemoveTemporaries(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.json")
	if err := os.WriteFile(path, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	writing, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- WriteAtomic(path, func(w io.Writer) error {
			io.WriteString(w, strings.Repeat("half ", 100<<10))
			close(writing)
			<-release // the process exits at once here
			return errors.New("stopped")
		})
	}()
	<-writing
	RemoveTemporaries()
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("a write under way left %v", entries)
	}
	if b, _ := os.ReadFile(path); string(b) != "old\n" {
		t.Errorf("the file holds %.40q", b)
	}
	close(release)
	<-done
}
