package k6

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"go.k6.io/k6/cmd"
)

// envTestChild makes the test binary the k6 child (Child with k6's
// cmd.Execute), as `loadcap k6-child` is in the product.
const envTestChild = "LOADCAP_K6_TEST_AS_CHILD"

// childBin is the command the end-to-end tests start as the child: this
// test binary again, with envTestChild set ("" with -short).
var childBin []string

func TestMain(m *testing.M) {
	if os.Getenv(envTestChild) == "1" {
		if err := Child(os.Args[1:], cmd.Execute); err != nil {
			fmt.Fprintln(os.Stderr, "k6 child:", err)
			os.Exit(104)
		}
		return
	}
	flag.Parse()
	if !testing.Short() {
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		childBin = []string{exe}
	}
	os.Exit(m.Run())
}

// asChild makes a Runner start this test binary as its child.
func asChild() Option {
	return func(o *options) {
		WithCommand(childBin...)(o)
		WithEnv(envTestChild + "=1")(o)
	}
}
