// Package cluster runs one scenario over many loadcap agents: a coordinator
// splits it by k6 execution segments, starts the agents together, and
// merges the snapshots they stream into one loadgen.Result, as if a single
// process had run it.
//
// The protocol is gRPC (clusterpb, from clusterpb/cluster.proto): Prepare
// ships the scenario file and the files it reads, with the agent's segment;
// the agent parses it in a private directory, checks every target host
// against its allow list and opens a connection to each. Clock measures the
// agent's clock offset (the NTP exchange with the shortest round trip of
// eight). Start begins the run at an agreed instant converted to each
// agent's clock and streams one Interval per second (counts, packed HDR
// histograms of latency and service time per series, status codes, error
// samples, pacer lag, dropped arrivals, the busy integral) and a Final with
// the agent's totals. Stop ends it early.
//
// Guarantees:
//
//   - Exactness: open-model arrival i goes to the segment whose striped
//     offsets hold i; closed-model VUs are scaled by ExecutionTuple.ScaleInt64;
//     replay record i goes to the segment owning i. Histograms merge bucket by
//     bucket (loadgen.Merger), so every percentile equals a single recorder's.
//   - Security: mutual TLS by default (ServerTLS, ClientTLS, WriteCerts);
//     plaintext only when every address is loopback. An agent refuses plans
//     aimed outside its allow list (AllowList; loopback only by default) and
//     never logs secret header values.
//   - Faults: an agent lost mid-run leaves a partial result naming it, when
//     and its share (loadgen.Result.Lost, Report); an agent short of CPU is
//     named with its shortfall (Report.Problems); an agent that loses its
//     coordinator (stream broken or keepalive unanswered) stops generating
//     within CoordinatorTimeout; Stop reaches every agent at once.
//   - Live metrics in Prometheus text format on both sides (MetricsListen).
//
// Kubernetes places agents with K8sAgents' Indexed Job and headless
// Service; K8sAgentAddrs lists their stable addresses.
package cluster
