package e2e

// The fault matrix: what a user gets when the target, the disk or a
// process fails under `loadcap run`. Each test applies one fault to the
// built binary on loopback and asserts the exit code, the message, that an
// earlier output survives intact and that the run's accounting adds up
// (readRun checks the totals' invariants). README's "When things break"
// table lists every case of the matrix with the test that proves it, and
// TestFaultMatrixDocumented keeps the two in step.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loadcap/loadcap/reports"
	"github.com/loadcap/loadcap/test/testkit"
)

// scenarioWithThresholds writes a scenario that sends rate req/s to path on
// url for dur, failing when more than 1% of the requests fail.
func scenarioWithThresholds(t *testing.T, url, path string, rate int, dur, timeout time.Duration) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "s.yaml")
	if err := os.WriteFile(f, fmt.Appendf(nil, `target: %s
http: {timeout: %v}
scenarios:
  s: {executor: constant-arrival-rate, rate: %d, duration: %v, preAllocatedVUs: 20, maxVUs: 200, gracefulStop: 2s}
requests:
  - {name: get, path: %q}
thresholds:
  http_req_failed: ['rate<0.01']
`, url, timeout, rate, dur, path), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// targetStats reads the calibrated target's counters.
func targetStats(t *testing.T, url string) (arrived, resets, errors int64) {
	t.Helper()
	resp, err := http.Get(url + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s struct{ Arrived, Resets, Errors int64 }
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s.Arrived, s.Resets, s.Errors
}

// errorsOf sums one error class over the run's requests.
func errorsOf(run *reports.Run, class string) int64 {
	var n int64
	for _, r := range run.Requests {
		n += r.Errors[class]
	}
	return n
}

func statusOf(run *reports.Run, code string) int64 {
	var n int64
	for _, r := range run.Requests {
		n += r.StatusCodes[code]
	}
	return n
}

// A target that resets one connection in four: the resets are failures of
// class "reset", counted exactly, the threshold fails the run (99), and
// the result adds up.
func TestFaultTargetResets(t *testing.T) {
	t.Parallel()
	url := startTarget(t, "--reset-every", "4")
	out := filepath.Join(t.TempDir(), "run.json")
	p := start(t, "run", "-q", "--no-summary", scenarioWithThresholds(t, url, "/", 100, 2*time.Second, 2*time.Second), "--out", out)
	if code := p.wait(t, 30*time.Second); code != 99 {
		t.Fatalf("exit %d, want 99 (threshold failed)\n%s", code, p.stderr.String())
	}
	run := readRun(t, out)
	_, resets, _ := targetStats(t, url)
	if got := errorsOf(run, "reset"); got == 0 || got != resets || got != run.Totals.Failed {
		t.Errorf("reset failures %d, failed %d; the target reset %d connections", got, run.Totals.Failed, resets)
	}
	if run.Status != "failed" && run.Status != "thresholds_failed" {
		t.Logf("status %q", run.Status)
	}
}

// A target that never answers: every request ends at the scenario's
// timeout as class "timeout", and the run ends on time, not when the
// target gives up.
func TestFaultTargetHangs(t *testing.T) {
	t.Parallel()
	url := startTarget(t)
	out := filepath.Join(t.TempDir(), "run.json")
	begin := time.Now()
	p := start(t, "run", "-q", "--no-summary", scenarioWithThresholds(t, url, "/sleep?ms=30000", 20, 2*time.Second, time.Second), "--out", out)
	if code := p.wait(t, 30*time.Second); code != 99 {
		t.Fatalf("exit %d, want 99\n%s", code, p.stderr.String())
	}
	if d := time.Since(begin); d > 12*time.Second {
		t.Errorf("the run took %v: 2 s of arrivals and a 1 s timeout should end it well before", d)
	}
	run := readRun(t, out)
	if got := errorsOf(run, "timeout"); got == 0 || got != run.Totals.Sent || run.Totals.Completed != 0 {
		t.Errorf("timeouts %d of %d sent, %d completed: want every request timed out", got, run.Totals.Sent, run.Totals.Completed)
	}
}

// A target answering half its requests 500: the answers are counted under
// their status, failed, and fail the threshold.
func TestFaultTarget5xx(t *testing.T) {
	t.Parallel()
	url := startTarget(t, "--error-rate", "0.5")
	out := filepath.Join(t.TempDir(), "run.json")
	p := start(t, "run", "-q", "--no-summary", scenarioWithThresholds(t, url, "/", 100, 2*time.Second, 2*time.Second), "--out", out)
	if code := p.wait(t, 30*time.Second); code != 99 {
		t.Fatalf("exit %d, want 99\n%s", code, p.stderr.String())
	}
	run := readRun(t, out)
	_, _, injected := targetStats(t, url)
	if got := statusOf(run, "500"); got != injected || got != run.Totals.Failed || got < run.Totals.Sent/4 {
		t.Errorf("500s in run.json %d, failed %d, sent %d; the target answered %d with 500", got, run.Totals.Failed, run.Totals.Sent, injected)
	}
}

// A target that goes away mid-run: the requests after it are refused
// (class "refused"), the run still ends on schedule and adds up.
func TestFaultTargetVanishes(t *testing.T) {
	t.Parallel()
	port := testkit.FreePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	target := start(t, "target", "--listen", fmt.Sprintf("127.0.0.1:%d", port))
	t.Cleanup(func() { target.cmd.Process.Kill(); target.cmd.Wait() })
	waitListening(t, fmt.Sprintf("127.0.0.1:%d", port))
	out := filepath.Join(t.TempDir(), "run.json")
	begin := time.Now()
	p := start(t, "run", "-q", "--no-summary", scenarioWithThresholds(t, url, "/", 50, 4*time.Second, time.Second), "--out", out)
	time.Sleep(1500 * time.Millisecond)
	target.cmd.Process.Kill()
	if code := p.wait(t, 30*time.Second); code != 99 {
		t.Fatalf("exit %d, want 99\n%s", code, p.stderr.String())
	}
	if d := time.Since(begin); d > 12*time.Second {
		t.Errorf("the run took %v for 4 s of arrivals", d)
	}
	run := readRun(t, out)
	if run.Totals.Completed == 0 || errorsOf(run, "refused")+errorsOf(run, "reset") == 0 {
		t.Errorf("completed %d, refused %d, reset %d: want answers before the target died and refusals after",
			run.Totals.Completed, errorsOf(run, "refused"), errorsOf(run, "reset"))
	}
}

// mountTmpfs mounts a fresh tmpfs of size bytes (ro for read-only) and
// unmounts it when the test ends. Mounting needs root, which CI has.
func mountTmpfs(t *testing.T, size int, ro bool) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root (CI runs as root)")
	}
	dir := t.TempDir()
	opts := fmt.Sprintf("size=%d", size)
	if ro {
		opts += ",ro"
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	return dir
}

// The disk fills up: the run's result cannot be written. loadcap says so
// with the path and the cause (exit 1), the summary still reaches the
// terminal, and the earlier run.json in that place is left as it was.
func TestFaultDiskFull(t *testing.T) {
	t.Parallel()
	url := startTarget(t)
	dir := mountTmpfs(t, 64<<10, false)
	out := filepath.Join(dir, "run.json")
	earlier := []byte(`{"schema":"loadcap.run/v1","note":"the earlier result"}` + "\n")
	if err := os.WriteFile(out, earlier, 0o644); err != nil {
		t.Fatal(err)
	}
	// Fill the rest of the file system.
	fill, _ := os.Create(filepath.Join(dir, "fill"))
	fill.Write(make([]byte, 64<<10))
	fill.Close()
	p := start(t, "run", "-q", "--url", url+"/", "--rate", "50", "--duration", "1s", "--out", out)
	code := p.wait(t, 30*time.Second)
	if code == 0 {
		t.Fatalf("exit 0 with the result unwritten\n%s", p.stderr.String())
	}
	if !strings.Contains(p.stderr.String(), out) || !strings.Contains(p.stderr.String(), "no space left") {
		t.Errorf("exit %d; stderr does not name %s and the full disk:\n%s", code, out, p.stderr.String())
	}
	if !strings.Contains(p.stdout.String(), "status") {
		t.Errorf("no summary on stdout:\n%s", p.stdout.String())
	}
	if b, _ := os.ReadFile(out); !bytes.Equal(b, earlier) {
		t.Errorf("the earlier run.json changed: %q", b)
	}
	if left := strays(t, dir, "run.json", "fill"); len(left) > 0 {
		t.Errorf("files left behind: %v", left)
	}
}

// strays lists the files in dir other than keep.
func strays(t *testing.T, dir string, keep ...string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range ents {
		if !contains(keep, e.Name()) {
			left = append(left, e.Name())
		}
	}
	return left
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// An output directory that cannot be written is refused before the first
// request: a usage error naming the path, nothing sent.
func TestFaultReadOnlyOutput(t *testing.T) {
	t.Parallel()
	url := startTarget(t)
	dir := mountTmpfs(t, 64<<10, true)
	out := filepath.Join(dir, "run.json")
	p := start(t, "run", "-q", "--url", url+"/", "--rate", "50", "--duration", "5s", "--out", out)
	code := p.wait(t, 10*time.Second)
	if code != 2 || !strings.Contains(p.stderr.String(), out) || !strings.Contains(p.stderr.String(), "read-only") {
		t.Errorf("exit %d, want 2 naming %s as read-only:\n%s", code, out, p.stderr.String())
	}
	if arrived, _, _ := targetStats(t, url); arrived != 0 {
		t.Errorf("the target saw %d requests from a run that could not write its result", arrived)
	}
}

// The generator killed outright (SIGKILL, the OOM killer): it can write
// no result, but the earlier run.json survives byte for byte, and the
// seconds it had streamed are left in run.intervals.partial, readable
// (gzip'd JSON lines behind a loadcap.intervals/v1 header) though the
// gzip stream is cut: what a soak killed at its twentieth hour keeps.
// Nothing else is left.
func TestFaultGeneratorKilled(t *testing.T) {
	t.Parallel()
	url := startTarget(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "run.json")
	earlier := []byte(`{"schema":"loadcap.run/v1","note":"the earlier result"}` + "\n")
	if err := os.WriteFile(out, earlier, 0o644); err != nil {
		t.Fatal(err)
	}
	p := start(t, "run", "-q", "--url", url+"/", "--rate", "100", "--duration", "10s", "--out", out)
	deadline := time.Now().Add(10 * time.Second)
	// 250 arrivals at 100/s: two seconds have closed and been streamed.
	for arrived, _, _ := targetStats(t, url); arrived < 250; arrived, _, _ = targetStats(t, url) {
		if time.Now().After(deadline) {
			t.Fatal("the run never got going")
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.cmd.Process.Kill()
	p.wait(t, 5*time.Second)
	if b, _ := os.ReadFile(out); !bytes.Equal(b, earlier) {
		t.Errorf("the earlier run.json changed: %q", b)
	}
	if left := strays(t, dir, "run.json", "run.intervals.partial"); len(left) > 0 {
		t.Errorf("files left behind: %v", left)
	}
	f, err := os.Open(filepath.Join(dir, "run.intervals.partial"))
	if err != nil {
		t.Fatalf("the seconds streamed before the kill are gone: %v", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("run.intervals.partial: %v", err)
	}
	b, _ := io.ReadAll(zr) // the stream is cut: what was flushed reads, then an unexpected EOF
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 2 || !strings.Contains(lines[0], `"loadcap.intervals/v1"`) {
		t.Errorf("run.intervals.partial holds %d lines, want the header and at least one second:\n%s", len(lines), b)
	}
}

// The coordinator killed outright mid-run: its agents notice the lost
// connection and stop sending within seconds; the load does not run on
// unwatched.
func TestFaultCoordinatorKilled(t *testing.T) {
	t.Parallel()
	url := startTarget(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	a := start(t, "agent", "--listen", addr, "--insecure")
	t.Cleanup(func() { a.cmd.Process.Signal(syscall.SIGTERM); a.wait(t, 10*time.Second) })
	waitListening(t, addr)
	scen := filepath.Join(t.TempDir(), "s.yaml")
	os.WriteFile(scen, []byte(`target: `+url+`
scenarios:
  s: {executor: constant-arrival-rate, rate: 100, duration: 30s, preAllocatedVUs: 10}
requests:
  - {name: home, path: /}
`), 0o644)
	p := start(t, "run", "-q", "--no-summary", scen, "--agents", addr, "--insecure-agents")
	deadline := time.Now().Add(20 * time.Second)
	for arrived, _, _ := targetStats(t, url); arrived < 50; arrived, _, _ = targetStats(t, url) {
		if time.Now().After(deadline) {
			p.cmd.Process.Kill()
			t.Fatalf("the distributed run never got going\n%s", p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.cmd.Process.Kill()
	p.wait(t, 5*time.Second)
	killed := time.Now()
	// The agent stops within its grace; then the count stays put.
	var last int64 = -1
	for {
		time.Sleep(time.Second)
		arrived, _, _ := targetStats(t, url)
		if arrived == last {
			break
		}
		last = arrived
		if time.Since(killed) > 15*time.Second {
			t.Fatalf("the agent still sends %v after its coordinator died (%d requests so far)\nagent:\n%s",
				time.Since(killed).Round(time.Second), arrived, a.stderr.String())
		}
	}
	t.Logf("the agent stopped within %v of the coordinator's death", time.Since(killed).Round(time.Second))
	if arrived, _, _ := targetStats(t, url); arrived >= 3000 {
		t.Errorf("the target saw %d requests: the agent ran the whole 30 s", arrived)
	}
}

// matrixRow is one line of README's fault matrix.
type matrixRow struct{ fault, command, test string }

// readMatrix reads the table between the fault-matrix markers of README.md.
func readMatrix(t *testing.T) []matrixRow {
	t.Helper()
	f, err := os.Open("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []matrixRow
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.Contains(line, "<!-- fault matrix -->"):
			in = true
			continue
		case strings.Contains(line, "<!-- /fault matrix -->"):
			in = false
		}
		if !in || !strings.HasPrefix(line, "|") || strings.HasPrefix(line, "| ---") || strings.HasPrefix(line, "| fault") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) != 4 {
			t.Fatalf("README fault matrix: want 4 cells (fault, command, what you get, test), got %q", line)
		}
		rows = append(rows, matrixRow{strings.TrimSpace(cells[0]), strings.Trim(strings.TrimSpace(cells[1]), "`"), strings.Trim(strings.TrimSpace(cells[3]), "`")})
	}
	return rows
}

// Every row of README's fault matrix names a test that exists, in the
// package the row says; and every fault test of this file has its row. A
// row cannot claim a guarantee no test checks.
func TestFaultMatrixDocumented(t *testing.T) {
	t.Parallel()
	rows := readMatrix(t)
	if len(rows) < 20 {
		t.Fatalf("README's fault matrix has %d rows", len(rows))
	}
	testRef := regexp.MustCompile(`^([a-z0-9/]+)\.(Test[A-Za-z0-9_]+)(/.*)?$`)
	sources := map[string]string{}
	named := map[string]bool{}
	for _, r := range rows {
		m := testRef.FindStringSubmatch(r.test)
		if m == nil {
			t.Errorf("row %q / %q: test %q is not PKG.TestName", r.fault, r.command, r.test)
			continue
		}
		pkg, name := m[1], m[2]
		src, ok := sources[pkg]
		if !ok {
			files, _ := filepath.Glob(filepath.Join("../..", pkg, "*_test.go"))
			var b strings.Builder
			for _, f := range files {
				data, _ := os.ReadFile(f)
				b.Write(data)
			}
			src = b.String()
			sources[pkg] = src
		}
		if !strings.Contains(src, "func "+name+"(t *testing.T)") {
			t.Errorf("row %q / %q names %s, which is not a test in %s", r.fault, r.command, name, pkg)
		}
		if m[3] != "" {
			sub := strings.TrimPrefix(m[3], "/")
			if !strings.Contains(src, fmt.Sprintf("t.Run(%q", strings.ReplaceAll(sub, "_", " "))) {
				t.Errorf("row %q / %q names subtest %q, which %s does not run", r.fault, r.command, sub, name)
			}
		}
		named[pkg+"."+name] = true
	}
	own, _ := os.ReadFile("faults_test.go")
	for _, m := range regexp.MustCompile(`(?m)^func (TestFault[A-Za-z0-9]+)\(`).FindAllSubmatch(own, -1) {
		if n := string(m[1]); n != "TestFaultMatrixDocumented" && !named["test/e2e."+n] {
			t.Errorf("%s is not in README's fault matrix", n)
		}
	}
}
