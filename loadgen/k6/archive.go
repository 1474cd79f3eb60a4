package k6

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// Archive writes a k6 archive (a .tar: the script, every module it
// imports, every file its init code open()s, and its options) of script to
// out, with "k6 archive" run in the child under the same forced
// environment as a run: nothing reaches the network. A distributed run
// ships the archive to its agents, so that each runs exactly the test the
// coordinator saw.
//
// Of opts, WithCommand, WithEnv and WithOutput (k6's log goes to its
// stderr) apply, and of WithArgs only what shapes the init code: --env/-e
// and --compatibility-mode (ArchiveArgs). The error holds k6's message.
func Archive(ctx context.Context, script, out string, opts ...Option) error {
	o := options{}
	for _, fn := range opts {
		fn(&o)
	}
	if script == "" || script == "-" {
		return errors.New("k6 archive: no script")
	}
	if len(o.command) == 0 {
		argv, err := FindChild()
		if err != nil {
			return err
		}
		o.command = argv
	}
	argv := append(append([]string{}, o.command...), archiveMode, "--quiet", "--log-format=raw")
	argv = append(argv, ArchiveArgs(o.args)...)
	argv = append(argv, "--archive-out", out, scriptArg(script))
	if err := CheckArgs(argv[len(o.command)+1:]); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	env := []string{}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != EnvDrillID && k != EnvFD {
			env = append(env, kv)
		}
	}
	env = append(env, o.env...)
	for k, v := range childEnv {
		env = append(env, k+"="+v)
	}
	cmd.Env = env
	tail := &tailWriter{w: o.stderr, max: 16 << 10}
	cmd.Stderr = tail
	cmd.Stdout = o.stdout
	if cmd.Stdout == nil {
		cmd.Stdout = io.Discard
	}
	if err := cmd.Run(); err != nil {
		msg := tail.lastError()
		if msg == "" {
			tail.mu.Lock()
			msg = strings.TrimSpace(string(tail.buf))
			tail.mu.Unlock()
		}
		return fmt.Errorf("k6 archive %s: %w: %s", script, err, msg)
	}
	return nil
}

// ArchiveArgs returns the arguments of a "k6 run" command line that "k6
// archive" needs too: the environment (--env, -e) and the compatibility
// mode, which the script's init code sees when k6 collects its files.
func ArchiveArgs(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, _, hasValue := strings.Cut(a, "=")
		switch name {
		case "-e", "--env", "--compatibility-mode":
			out = append(out, a)
			if !hasValue && i+1 < len(args) {
				i++
				out = append(out, args[i])
			}
		}
	}
	return out
}
