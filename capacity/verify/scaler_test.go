package verify

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The command hook: {service} and {replicas} reach the command, the ready
// command's number is the readiness, and a name that could inject shell
// is refused before anything runs.
func TestCmdScaler(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "replicas")
	c := &CmdScaler{
		ScaleCmd: "echo {replicas} > " + state + ".{service}",
		ReadyCmd: "cat " + state + ".{service}",
	}
	ctx := context.Background()
	if err := c.Scale(ctx, "cart", 7); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(state + ".cart"); strings.TrimSpace(string(b)) != "7" {
		t.Errorf("the scale command wrote %q", b)
	}
	if n, err := c.Ready(ctx, "cart"); err != nil || n != 7 {
		t.Errorf("ready %d, %v", n, err)
	}
	if err := WaitReady(ctx, c, map[string]int{"cart": 7}, 0, nil); err != nil {
		t.Errorf("WaitReady: %v", err)
	}
	if err := WaitReady(ctx, c, map[string]int{"cart": 9}, 0, nil); err == nil || !strings.Contains(err.Error(), "cart 7/9") {
		t.Errorf("WaitReady for 9 of 7: %v", err)
	}
	if err := c.Scale(ctx, "cart; touch "+filepath.Join(dir, "pwned"), 1); err == nil {
		t.Error("a service name with shell in it was run")
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Error("the injected command ran")
	}
	// Without a ready command, what the last scale asked for counts.
	c = &CmdScaler{ScaleCmd: "true {replicas}"}
	if _, err := c.Ready(ctx, "cart"); err == nil {
		t.Error("ready before any scale, with no ready command")
	}
	c.Scale(ctx, "cart", 3)
	if n, _ := c.Ready(ctx, "cart"); n != 3 {
		t.Errorf("ready %d after scaling to 3", n)
	}
	c = &CmdScaler{ScaleCmd: "exit 3"}
	if err := c.Scale(ctx, "cart", 1); err == nil {
		t.Error("a failing scale command passed")
	}
}
