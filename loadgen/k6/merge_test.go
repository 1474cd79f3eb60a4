package k6

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loadcap/loadcap/loadgen"
)

// A distributed k6 run in one process: the script archived with its
// module and data file, two children running one segment each of the
// archive, their frames merged. The server sees each iteration exactly
// once, and the script's thresholds are judged on the merged data.
func TestArchiveSegmentsMerge(t *testing.T) {
	needChild(t)
	var hits atomic.Int64
	var words sync.Map
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		words.Store(r.URL.Query().Get("w"), true)
	}))
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tar := filepath.Join(t.TempDir(), "main.tar")
	var stderr bytes.Buffer
	if err := Archive(ctx, filepath.Join("testdata", "dist", "main.js"), tar, asChild(), WithOutput(io.Discard, &stderr),
		WithArgs("--vus", "2", "-e", "BASE="+srv.URL)); err != nil {
		t.Fatalf("archive: %v\n%s", err, stderr.String())
	}
	// The agents get the archive alone, in another directory.
	m, err := NewMerge(MergeConfig{Path: "main.js", Parts: 2, Start: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, seg := range []string{"0:1/2", "1/2:1"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := New(tar, asChild(), WithSegment(seg, "0,1/2,1"), WithOutput(io.Discard, io.Discard),
				WithFrames(func(line []byte) {
					if err := m.Frame(i, line); err != nil {
						t.Errorf("part %d: %v", i, err)
					}
				}))
			if err != nil {
				errs[i] = err
				return
			}
			out, err := r.Run(ctx)
			if err != nil {
				errs[i] = err
				return
			}
			if out.Result == nil || out.Result.Totals.Sent == 0 {
				t.Errorf("segment %s did no share: %+v", seg, out)
			}
			m.End(i, out.ExitCode, out.Err)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	out := m.Outcome()
	if out.Result == nil {
		t.Fatalf("no merged result: exit %d %s", out.ExitCode, out.Err)
	}
	if got := hits.Load(); got != 90 || out.Result.Totals.Sent != 90 || out.Result.Totals.Completed != 90 {
		t.Errorf("server saw %d, merged sent %d completed %d: want 90 each", got, out.Result.Totals.Sent, out.Result.Totals.Completed)
	}
	if _, ok := words.Load("word"); !ok {
		t.Error("the open()ed file did not travel in the archive")
	}
	if len(out.Iterations) != 1 || out.Iterations[0].Count != 90 {
		t.Errorf("iterations %+v, want 90", out.Iterations)
	}
	// Each segment's k6 fails count==90 (it made 45); the merged data passes.
	if out.ExitCode != 0 {
		t.Errorf("exit %d (%s): a segment's threshold verdict leaked into the merged run", out.ExitCode, out.Err)
	}
	got := map[string]loadgen.ThresholdResult{}
	for _, th := range out.Result.Thresholds {
		got[th.Metric+" "+th.Expr] = th
	}
	if th := got["http_reqs count==90"]; !th.Passed || th.Value != 90 || th.Note != "" {
		t.Errorf("http_reqs count==90: %+v, want passed on the merged 90", th)
	}
	if th := got["checks rate==1"]; !th.Passed || th.Value != 1 {
		t.Errorf("checks: %+v", th)
	}
	if th := got["iteration_duration max<30000"]; !th.Passed || !strings.Contains(th.Note, "per agent") {
		t.Errorf("iteration_duration: %+v, want k6's per-agent verdicts with a note", th)
	}
	if out.Result.Status != loadgen.StatusPassed {
		t.Errorf("status %s %s", out.Result.Status, out.Result.AbortReason)
	}
}
