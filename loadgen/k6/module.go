package k6

import (
	"os"

	"go.k6.io/k6/js/modules"

	"github.com/loadcap/loadcap/scenarios"
)

// ModuleName is the JS module a script imports for the drill's shadow tag:
//
//	import loadcap from 'k6/x/loadcap';
//	http.get(url, { headers: loadcap.headers() });
//
// headers() returns {"X-Loadcap-Shadow": id, "Baggage": "loadcap.shadow=" + id}
// for the drill id of the run (an empty object when the run is untagged);
// drillId is the id itself. Both are also named exports.
const ModuleName = "k6/x/loadcap"

// EnvDrillID names the variable holding the drill id: in the child's
// environment and in the script's __ENV.
const EnvDrillID = "LOADCAP_DRILL_ID"

// rootModule is registered once per child process.
type rootModule struct{}

type moduleInstance struct {
	exports modules.Exports
}

var (
	_ modules.Module   = rootModule{}
	_ modules.Instance = (*moduleInstance)(nil)
)

// NewModuleInstance is called once per VU that imports the module. The
// drill id comes from the child's environment, which the parent set: a
// script cannot change it with -e.
func (rootModule) NewModuleInstance(modules.VU) modules.Instance {
	id := os.Getenv(EnvDrillID)
	if !scenarios.ValidDrillID(id) {
		id = ""
	}
	headers := func() map[string]string {
		if id == "" {
			return map[string]string{}
		}
		return shadowHeaders(id)
	}
	named := map[string]any{"headers": headers, "drillId": id}
	return &moduleInstance{exports: modules.Exports{Default: named, Named: named}}
}

// Exports implements modules.Instance.
func (m *moduleInstance) Exports() modules.Exports { return m.exports }

// shadowHeaders returns the HTTP headers of the shadow tag (docs/ARCHITECTURE.md):
// a fresh map on every call, so a script may add to it.
func shadowHeaders(id string) map[string]string {
	return map[string]string{
		scenarios.ShadowHeader: id,
		"Baggage":              scenarios.ShadowBaggageKey + "=" + id,
	}
}
