package shadow_test

import (
	"log/slog"
	"os"
	"testing"
)

// TestMain keeps refusals of tagged contexts without a policy, which log to
// slog.Default, out of the test output.
func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.DiscardHandler))
	os.Exit(m.Run())
}
