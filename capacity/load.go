package capacity

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/loadcap/loadcap/internal/cli"
	"github.com/loadcap/loadcap/internal/runner"
	"github.com/loadcap/loadcap/loadgen/k6"
	"github.com/loadcap/loadcap/scenarios"
)

// Load is what capacity find drives: a scenario file's request mix (File,
// re-aimed at Target), a k6 script's default function (File a script,
// with K6Args and DrillID), or one URL.
type Load struct {
	File, URL, Target string
	K6Args            []string
	DrillID           string
	Stderr            io.Writer // a k6 script's own output
}

// Apply sets cfg's Base, or its RunStep for a script. Its errors carry
// exit codes (internal/cli): 2 for what does not fit together, 104 for a
// file that cannot be read.
func (l Load) Apply(cfg *FindConfig) error {
	usage := func(format string, a ...any) error { return cli.WithCode(cli.ExitUsage, fmt.Errorf(format, a...)) }
	switch {
	case l.File != "" && l.URL != "":
		return usage("give either a scenario file or --url, not both")
	case l.File != "" && runner.IsScript(l.File):
		if l.Target != "" {
			return usage("--target does not apply to a k6 script: pass the address to the script (--k6-arg=--env=BASE=...)")
		}
		if _, err := os.Stat(l.File); err != nil {
			return cli.WithCode(cli.ExitInvalid, err)
		}
		if err := k6.CheckArgs(l.K6Args); err != nil {
			return cli.WithCode(cli.ExitUsage, err)
		}
		cfg.RunStep = K6Step(l.File, l.K6Args, l.DrillID, l.Stderr)
	case l.File != "":
		var opts []scenarios.Option
		if l.Target != "" {
			opts = append(opts, scenarios.WithTarget(l.Target))
		}
		f, err := scenarios.Load(l.File, opts...)
		if errors.Is(err, fs.ErrNotExist) {
			return cli.WithCode(cli.ExitInvalid, err)
		}
		if err != nil {
			return err
		}
		cfg.Base = f
	case l.URL != "":
		f, err := scenarios.Quick(scenarios.QuickOptions{URL: l.URL, RatePerSec: 1, Duration: time.Second})
		if err != nil {
			return cli.WithCode(cli.ExitUsage, err)
		}
		cfg.Base = f
	default:
		return usage("nothing to measure: give --url or a scenario file")
	}
	return nil
}
