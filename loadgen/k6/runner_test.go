package k6

import (
	"slices"
	"strings"
	"testing"
)

func TestNewRefuses(t *testing.T) {
	tests := []struct {
		name   string
		script string
		opts   []Option
		want   string // in the error
	}{
		{name: "no script", script: "", want: "no script"},
		{name: "stdin", script: "-", want: "no script"},
		{name: "option terminator", script: "a.js", opts: []Option{WithArgs("--vus", "2", "--", "--address=:6565")}, want: `"--"`},
		{name: "stdin in args", script: "a.js", opts: []Option{WithArgs("-")}, want: "stdin"},
		{name: "second loadcap output", script: "a.js", opts: []Option{WithArgs("--out", "loadcap=4")}, want: "loadcap's own"},
		{name: "second loadcap output, short", script: "a.js", opts: []Option{WithArgs("-oloadcap")}, want: "loadcap's own"},
		{name: "drill id", script: "a.js", opts: []Option{WithDrillID("no spaces allowed")}, want: "drill id"},
		{name: "segment", script: "a.js", opts: []Option{WithSegment("1/2:1/3", "")}, want: "segment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.script, append(tt.opts, WithCommand("/bin/false"))...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one mentioning %s", err, tt.want)
			}
		})
	}
}

func TestChildCommandLine(t *testing.T) {
	r, err := New("-weird.js", WithCommand("/opt/loadcap-k6"), WithArgs("--vus", "3"), WithDrillID("d-1"), WithSegment("0:1/2", "0,1/2,1"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/opt/loadcap-k6", "--quiet", "--vus", "3", "--env", "LOADCAP_DRILL_ID=d-1",
		"--execution-segment", "0:1/2", "--execution-segment-sequence", "0,1/2,1", "./-weird.js"}
	if got := r.Args(); !slices.Equal(got, want) {
		t.Errorf("args %q\nwant %q", got, want)
	}
	env := strings.Join(r.env, "\n")
	for _, kv := range []string{"K6_NO_USAGE_REPORT=true", "K6_AUTO_EXTENSION_RESOLUTION=false", "LOADCAP_K6_FD=3", "LOADCAP_DRILL_ID=d-1"} {
		if !strings.Contains(env, kv) {
			t.Errorf("child environment lacks %s", kv)
		}
	}
}

func TestChildArgvForcesSafety(t *testing.T) {
	got := childArgv([]string{"--address", "0.0.0.0:6565", "--no-usage-report=false", "-p", "--out", "json=x.json", "s.js"}, "3")
	want := []string{"k6", "run", "--address", "0.0.0.0:6565", "--no-usage-report=false", "-p", "--out", "json=x.json", "s.js",
		"--address=", "--no-usage-report", "--profiling-enabled=false", "--paused=false", "--linger=false", "--out", "loadcap=3"}
	if !slices.Equal(got, want) {
		t.Errorf("argv %q\nwant %q", got, want)
	}
	if err := CheckArgs([]string{"--out", "json=x.json", "-o", "csv=y.csv"}); err != nil {
		t.Errorf("other outputs refused: %v", err)
	}
}

func TestLastError(t *testing.T) {
	tests := []struct {
		name, log, want string
	}{
		{name: "logfmt", want: "could not load JS test: Line 3:7 Unexpected token \"x\"",
			log: `time="2026-01-01T00:00:00Z" level=info msg="starting"` + "\n" +
				`time="2026-01-01T00:00:00Z" level=error msg="could not load JS test: Line 3:7 Unexpected token \"x\"" hint="script exception"` + "\n"},
		{name: "last error wins", want: "second",
			log: "level=error msg=\"first\"\nlevel=error msg=\"second\"\nlevel=warning msg=\"later\"\n"},
		{name: "json", want: "boom", log: `{"level":"error","msg":"boom","time":"x"}` + "\n"},
		{name: "none", want: "", log: "level=info msg=\"fine\"\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tw := &tailWriter{max: 1 << 10}
			_, _ = tw.Write([]byte(tt.log))
			if got := tw.lastError(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTailWriterKeepsTheEnd(t *testing.T) {
	tw := &tailWriter{max: 64}
	for range 100 {
		_, _ = tw.Write([]byte("level=info msg=\"noise noise noise\"\n"))
	}
	_, _ = tw.Write([]byte("level=error msg=\"the end\"\n"))
	if len(tw.buf) > 64 || tw.lastError() != "the end" {
		t.Errorf("kept %d bytes, last error %q", len(tw.buf), tw.lastError())
	}
}
