package scenarios

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that a failure is always Errors
// with positions inside the input, and that what it accepts can be rendered.
// The seed corpus is testdata/fuzz/FuzzParse plus the examples.
func FuzzParse(f *testing.F) {
	paths, _ := filepath.Glob("examples/*.yaml")
	for _, p := range paths {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	// The file "lives" in examples/, so data/users.csv resolves.
	const name = "examples/fuzz.yaml"
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(name, data)
		if err != nil {
			checkErrors(t, name, data, err)
			return
		}
		if len(file.Scenarios) == 0 || (len(file.Requests) == 0) == (file.K6Script == "") {
			t.Fatalf("accepted a file with %d scenarios and %d requests", len(file.Scenarios), len(file.Requests))
		}
		s := file.NewState(0)
		for i := range file.Scenarios {
			sc := &file.Scenarios[i]
			if file.K6Script != "" {
				break // the script's requests are k6's
			}
			if sc.Config == nil || len(sc.Requests) == 0 {
				t.Fatalf("scenario %s: config %v, requests %v", sc.Name, sc.Config, sc.Requests)
			}
			if r := sc.Pick(s); r < 0 || r >= len(file.Requests) {
				t.Fatalf("scenario %s picked request %d of %d", sc.Name, r, len(file.Requests))
			}
		}
		var buf []byte
		for _, r := range file.Requests {
			s.Next()
			if g := r.GRPC; g != nil {
				if g.Target == "" || g.FullMethod == "" || (g.Method == nil) != g.Reflection || g.Message == nil || !(r.Weight > 0) {
					t.Fatalf("gRPC request %s is incomplete: %+v", r.Name, g)
				}
				buf = g.Message.AppendTo(buf[:0], s)
				for _, h := range g.Metadata {
					buf = h.Value.AppendTo(buf[:0], s)
					if strings.ContainsAny(string(buf), "\r\n") {
						t.Fatalf("metadata %s renders a line break: %q", h.Name, buf)
					}
				}
				continue
			}
			if r.Path == nil || r.Host == "" || (r.Scheme != "http" && r.Scheme != "https") || !(r.Weight > 0) {
				t.Fatalf("request %s is incomplete: %+v", r.Name, r)
			}
			buf = r.Path.AppendTo(buf[:0], s)
			for _, h := range append(r.Headers, file.Headers...) {
				buf = h.Value.AppendTo(buf[:0], s)
				if strings.ContainsAny(string(buf), "\r\n") {
					t.Fatalf("header %s renders a line break: %q", h.Name, buf)
				}
			}
			if r.Body != nil {
				buf = r.Body.AppendTo(buf[:0], s)
			}
		}
	})
}

func checkErrors(t *testing.T, name string, data []byte, err error) {
	var es Errors
	if !errors.As(err, &es) || len(es) == 0 {
		t.Fatalf("error is %T, want non-empty Errors: %v", err, err)
	}
	lines := splitLines(string(data))
	for _, e := range es {
		if e.File != name {
			t.Errorf("error names file %q, want %q: %v", e.File, name, e)
		}
		if e.Msg == "" {
			t.Errorf("error without a message at %d:%d", e.Line, e.Col)
		}
		switch {
		case e.Line == 0 && e.Col == 0:
			// A problem with the whole file.
		case e.Line < 1 || e.Line > len(lines):
			t.Errorf("line %d outside the input's %d lines: %v", e.Line, len(lines), e)
		case e.Col < 0 || e.Col > len(lines[e.Line-1])+1:
			t.Errorf("column %d outside line %d (%d bytes): %v", e.Col, e.Line, len(lines[e.Line-1]), e)
		}
	}
}

// splitLines splits on the line breaks YAML knows.
func splitLines(s string) []string {
	r := strings.NewReplacer("\r\n", "\n", "\r", "\n", "\u0085", "\n", "\u2028", "\n", "\u2029", "\n")
	return strings.Split(r.Replace(s), "\n")
}
