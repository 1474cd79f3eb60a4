// Package cluster runs one scenario over many loadcap agents: a coordinator
// splits it by k6 execution segments, starts the agents together, and
// merges the snapshots they stream into one loadgen.Result, as if a single
// process had run it.
//
// The protocol is gRPC (clusterpb, from clusterpb/cluster.proto): Prepare
// ships the scenario file and the files it reads, with the agent's segment;
// the agent parses it in a private directory, confined to it
// (scenarios.Confined: a file reference outside it is refused before
// anything is opened, so a plan reads and probes none of the agent's
// files), checks every target host
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
//     A coordinator may run one part of a wider load
//     (CoordinatorConfig.Segment): several coordinators' results then add up
//     to one run's exactly (reports.Merge, loadcap merge).
//   - Security: mutual TLS by default (ServerTLS, ClientTLS, WriteCerts);
//     plaintext only when every address is loopback. An agent refuses plans
//     aimed outside its allow list (AllowList; loopback only by default) and
//     never logs secret header values.
//   - Faults: an agent lost mid-run leaves a partial result naming it, when
//     (inside the run) and its share, and counting the arrivals planned for
//     it that it never sent (loadgen.Result.Lost, Totals.Lost, Report);
//     an agent short of CPU is
//     named with its shortfall (Report.Problems); an agent that loses its
//     coordinator (stream broken or keepalive unanswered) stops generating
//     within CoordinatorTimeout; Stop reaches every agent at once.
//   - Live metrics (loadgen/live) on both sides: an agent's from its own
//     intervals (MetricsListen), a coordinator's from the merged ones, with
//     the agents connected (CoordinatorConfig.Metrics, or MetricsListen).
//
// # k6 scripts
//
// NewK6Coordinator and RunK6 run a k6 test the same way: the coordinator
// ships a k6 archive (k6.Archive: the script, its imports, the files its
// init code open()s, its options) with "k6 run" flags and the drill id;
// each agent runs the archive in its k6 child (k6.Runner) with its
// --execution-segment and --execution-segment-sequence, so the agents run
// the test exactly once, and forwards the child's frames as they come
// (Snapshot.k6_frame: series are declared inside the interval that first
// has them), then a Final with k6's exit code. The coordinator merges them
// with k6.Merge into one k6.Outcome: the script's thresholds on metrics
// loadcap measures are evaluated on the merged data; the others keep the
// agents' k6 verdicts, noted as such. Stop and Kill reach every agent's
// child as SIGINT (Kill: a second one, then SIGKILL) within the Stop
// call's one-second bound.
//
// What an agent enforces on a k6 archive:
//
//   - k6 flags: only those that shape the load (CheckK6Args); no outputs,
//     no files written, no system environment, no other segment.
//   - Addresses: the child gets --blacklist-ip with the complement of the
//     allow list (Complement: its ranges, plus the addresses its exact
//     names resolve to when the plan is prepared; wildcard names admit
//     nothing). k6 checks every address it connects to, after its own name
//     resolution and the script's hosts option, for HTTP, WebSocket and
//     gRPC; the command-line list replaces a blacklistIPs of the script's.
//     Name lookups themselves still go to the agent's resolver.
//   - Environment: none of the agent's. The child runs with
//     --include-system-env-vars=false (k6.WithoutSystemEnv): __ENV holds
//     the plan's --env and the archive's variables only.
//   - Files: none of the agent's. k6 runs an archive from the archive
//     itself (its in-memory file system): open() and imports of paths it
//     does not hold fail, alike whether the agent has such a file or not.
//   - Remote modules: none fetched (k6.WithoutRemoteModules). An archive
//     holds the remote imports seen when it was made; a require() of an
//     https URL computed at run time fails rather than reach a host with
//     Go's default client, which --blacklist-ip does not bind.
//   - k6/browser and k6/experimental/browser: refused by k6's module
//     resolution (k6.WithoutBrowser: the names resolve to a module that
//     throws), however the script computes them, as the browser's
//     Chromium does not connect through k6.
//
// Kubernetes places agents with K8sAgents' Indexed Job and headless
// Service; K8sAgentAddrs lists their stable addresses.
package cluster
