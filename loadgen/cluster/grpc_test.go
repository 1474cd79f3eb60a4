package cluster

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/loadcap/loadcap/loadgen/grpcc/grpcctest"
)

// TestGRPCScenarioOnAgents runs a gRPC scenario on two agents: the .proto
// file and the file it imports travel with the plan, and the agents
// together make exactly the scenario's calls.
func TestGRPCScenarioOnAgents(t *testing.T) {
	srv := grpcctest.Start(t, grpcctest.Options{})
	files := map[string]string{}
	for _, name := range []string{"loadtest.proto", "item.proto"} {
		b, err := os.ReadFile(filepath.Join(srv.Dir, name))
		if err != nil {
			t.Fatal(err)
		}
		files["protos/"+name] = string(b)
	}
	f := scenario(t, `
scenarios:
  s: {executor: constant-arrival-rate, rate: 50, duration: 2s, preAllocatedVUs: 5}
requests:
  - {name: place, protocol: grpc, target: '`+srv.Addr+`', method: loadtest.Shop/Fail, proto: protos/loadtest.proto}
`, files)
	plan, err := NewPlan(f, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"protos/loadtest.proto", "protos/item.proto"} {
		if _, ok := plan.Files[name]; !ok {
			t.Errorf("the plan ships %v; it lacks %s", keys(plan.Files), name)
		}
	}
	var addrs []string
	for range 2 {
		addrs = append(addrs, localAgent(t, AgentConfig{Insecure: true}))
	}
	res, rep := runCluster(t, f, CoordinatorConfig{Agents: addrs, Insecure: true})
	checkInvariants(t, res)
	if res.Totals.Completed != 100 || res.Totals.Failed != 0 {
		t.Errorf("completed %d, failed %d (%v); want 100 calls, none failed", res.Totals.Completed, res.Totals.Failed, res.Requests[0].ErrorSamples)
	}
	for _, a := range rep.Agents {
		if a.Status != AgentDone || a.Sent == 0 {
			t.Errorf("agent %s: %s, %d sent; want done with a share", a.Addr, a.Status, a.Sent)
		}
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
