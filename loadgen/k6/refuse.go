package k6

import (
	"errors"
	"fmt"
	"net/http"

	"go.k6.io/k6/ext"
	"go.k6.io/k6/js/common"
	"go.k6.io/k6/js/modules"
)

// EnvNoBrowser, set to 1 in the child's environment (WithoutBrowser), makes
// k6's browser modules fail to load.
const EnvNoBrowser = "LOADCAP_K6_NO_BROWSER"

// EnvNoRemoteModules, set to 1 in the child's environment
// (WithoutRemoteModules), makes k6 fetch no module over the network.
const EnvNoRemoteModules = "LOADCAP_K6_NO_REMOTE_MODULES"

// browserModules are k6's modules that drive a browser: its Chromium
// connects on its own, outside k6's dialer and so outside --blacklist-ip.
var browserModules = []string{"k6/browser", "k6/experimental/browser"}

// refusedModule stands in for a module the child must not load: any VU
// that resolves its name (import, require, a computed name alike) throws.
type refusedModule struct{ name string }

var _ modules.Module = refusedModule{}

func (m refusedModule) NewModuleInstance(vu modules.VU) modules.Instance {
	common.Throw(vu.Runtime(), fmt.Errorf("%s is refused here: loadcap agents do not run browser tests, as the browser's connections are not bound by the agent's allow list", m.name))
	return nil
}

// refuseBrowser replaces k6's browser modules in this process's module
// table: k6 lets a registered JS extension take a built-in module's name,
// so the replacement holds however the script names the module.
func refuseBrowser() {
	for _, name := range browserModules {
		ext.Register(name, ext.JSExtension, refusedModule{name: name})
	}
}

// errRemoteModule is what a module fetch gets under WithoutRemoteModules.
var errRemoteModule = errors.New("remote modules are refused here: loadcap agents run a script's archive as shipped, and fetch nothing outside their allow list")

// refusingTransport refuses every request.
type refusingTransport struct{}

func (refusingTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errRemoteModule
}

// refuseRemoteModules stops k6's loader from fetching a module that the
// archive does not hold (a require() of an https URL computed at run
// time): it fetches with Go's default HTTP client, outside k6's dialer
// and so outside --blacklist-ip. k6's own requests (k6/http, gRPC,
// WebSockets) have their own transports and are not affected.
func refuseRemoteModules() {
	http.DefaultTransport = refusingTransport{}
	http.DefaultClient = &http.Client{Transport: refusingTransport{}}
}
