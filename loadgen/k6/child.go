package k6

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"go.k6.io/k6/js/modules"
	"go.k6.io/k6/output"
)

// ChildCommand is the hidden subcommand of loadcap's own executable that
// runs k6 for loadcap: `loadcap k6-child [k6 run arguments]` calls Child
// with go.k6.io/k6/cmd.Execute. A Runner starts it (FindChild); it is not
// meant to be run by hand.
const ChildCommand = "k6-child"

// Environment the parent gives the child.
const (
	// EnvFD holds the file descriptor of the pipe to the parent.
	EnvFD = "LOADCAP_K6_FD"
)

// archiveMode, as the child's first argument, makes it run "k6 archive"
// rather than "k6 run" (Archive).
const archiveMode = "--loadcap-archive"

// childEnv is forced on k6 in the child, whatever the caller's
// environment says: nothing may reach the network on loadcap's behalf.
var childEnv = map[string]string{
	"K6_NO_USAGE_REPORT":           "true",  // no usage report to Grafana
	"K6_AUTO_EXTENSION_RESOLUTION": "false", // no download of a k6 binary for extensions
	"K6_BINARY_PROVISIONING":       "false", // the same, by its v1.0 name
	"K6_WEB_DASHBOARD":             "false", // no dashboard server
}

// forcedFlags go after every flag of the caller, so they win (pflag keeps
// the last value): the REST API off, no usage report, and no mode that
// waits for a REST call or a second Ctrl+C.
var forcedFlags = []string{
	"--address=", "--no-usage-report", "--profiling-enabled=false", "--paused=false", "--linger=false",
}

// CheckArgs refuses k6 run arguments that would end the child's option
// list early ("--"), read the script from stdin, or add a second loadcap
// output.
func CheckArgs(args []string) error {
	for i, a := range args {
		switch a {
		case "--":
			return fmt.Errorf(`k6 arguments: "--" is not allowed (loadcap appends its own flags)`)
		case "-":
			return fmt.Errorf(`k6 arguments: a script from stdin ("-") is not supported`)
		}
		out := ""
		for _, p := range []string{"--out=", "-o=", "-o"} {
			if v, ok := strings.CutPrefix(a, p); ok && v != "" {
				out = v
				break
			}
		}
		if (a == "--out" || a == "-o") && i+1 < len(args) {
			out = args[i+1]
		}
		if out == outputName || strings.HasPrefix(out, outputName+"=") {
			return fmt.Errorf("k6 arguments: --out %s is loadcap's own", out)
		}
	}
	return nil
}

var registerOnce sync.Once

// Register adds loadcap's output ("loadcap") and JS module (ModuleName) to
// k6's extension registry; later calls do nothing.
func Register() {
	registerOnce.Do(func() {
		output.RegisterExtension(outputName, newOutput)
		modules.Register(ModuleName, rootModule{})
	})
}

// Child runs "k6 run" with args (k6's flags and the script) in this
// process through execute, which is go.k6.io/k6/cmd.Execute: it exits with
// k6's exit code, so Child returns only an error about args, before k6
// starts. It is the body of ChildCommand, which a Runner starts with the
// pipe to the parent at file descriptor $LOADCAP_K6_FD.
//
// Whatever args say, the usage report, the REST API and automatic
// extension resolution stay off. With $LOADCAP_K6_NO_BROWSER=1
// (WithoutBrowser), k6's browser modules fail to load; with
// $LOADCAP_K6_NO_REMOTE_MODULES=1 (WithoutRemoteModules), k6 fetches no
// module over the network.
//
// With archiveMode as its first argument it runs "k6 archive" with the
// rest instead (Archive), under the same forced environment.
func Child(args []string, execute func()) error {
	if err := CheckArgs(args); err != nil {
		return err
	}
	archive := len(args) > 0 && args[0] == archiveMode
	Register()
	if os.Getenv(EnvNoBrowser) == "1" {
		refuseBrowser()
	}
	if os.Getenv(EnvNoRemoteModules) == "1" {
		refuseRemoteModules()
	}
	// Until k6 traps SIGINT (once the test is loaded), a stop from the
	// parent ends the child the default way: nothing has run yet. A
	// handler the caller installed would swallow it.
	signal.Reset(os.Interrupt, syscall.SIGTERM)
	for k, v := range childEnv {
		_ = os.Setenv(k, v)
	}
	if archive {
		os.Args = append([]string{"k6", "archive"}, args[1:]...)
	} else {
		os.Args = childArgv(args, strings.TrimSpace(os.Getenv(EnvFD)))
	}
	execute() // exits the process with k6's code
	return nil
}

// childArgv is k6's command line: "k6 run", the caller's args, then the
// forced flags (the last value of a flag wins), then loadcap's output to
// fd when there is one.
func childArgv(args []string, fd string) []string {
	argv := append([]string{"k6", "run"}, args...)
	argv = append(argv, forcedFlags...)
	if fd != "" {
		argv = append(argv, "--out", outputName+"="+fd)
	}
	return argv
}
