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
	if res.Totals.Scheduled != 100 || res.Totals.Failed != 0 {
		t.Errorf("scheduled %d, failed %d (%v); want 100 calls, none failed", res.Totals.Scheduled, res.Totals.Failed, res.Requests[0].ErrorSamples)
	}
	// An agent its host kept from running may cut off arrivals at the
	// end: the run says so, and then only its counts must add up.
	timed := t.Errorf
	if n := res.Disturbed(); n > 0 {
		timed = t.Logf
		t.Logf("the agents' host stalled them in %d seconds (up to %v): the calls completed are not judged", n, res.Totals.MaxStall)
	}
	if res.Totals.Completed != 100 {
		timed("completed %d of 100 calls (%d dropped)", res.Totals.Completed, res.Totals.Dropped)
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
