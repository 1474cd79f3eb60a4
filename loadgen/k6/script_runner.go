package k6

import (
	"context"
	"errors"
	"fmt"

	"github.com/loadcap/loadcap/loadgen"
)

// ScriptRunner is a Runner as a loadgen.Runner: the script's result is the
// run's Result, and how k6 itself ended (its exit code, its error, the
// iterations) stays in Outcome for the caller that wants k6's verdict.
type ScriptRunner struct {
	*Runner
	// Outcome is set by Run: how k6 ended. nil before Run returns.
	Outcome *Outcome
}

var _ loadgen.Runner = (*ScriptRunner)(nil)

// Run runs the script. When k6 stopped before the test started (a syntax
// error, invalid options) there is no Result and the error says why, with
// k6's exit code in Outcome.
func (s *ScriptRunner) Run(ctx context.Context) (*loadgen.Result, error) {
	o, err := s.Runner.Run(ctx)
	s.Outcome = o
	if err != nil {
		return nil, err
	}
	if o.Result == nil {
		if o.Err != "" {
			return nil, fmt.Errorf("k6 exited with code %d before the test started: %s", o.ExitCode, o.Err)
		}
		return nil, errors.New("k6 exited before the test started")
	}
	return o.Result, nil
}
