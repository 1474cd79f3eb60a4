package cluster

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/loadgen/cluster/clusterpb"
	"github.com/loadcap/loadcap/scenarios"
	"github.com/loadcap/loadcap/test/israce"
	"github.com/loadcap/loadcap/test/quiet"
)

// The scale the coordinator is sized for (issue 17): 100 agents, each
// sending 10,000 requests a second over 20 request names.
const (
	simAgents  = 100
	simNames   = 20
	simRatePer = 10_000 // requests a second, per agent
)

// simScenario is a scenario of n request names at rate requests a second
// for dur, against a port nothing listens on (the simulated agents send
// nothing).
func simScenario(tb testing.TB, n, rate int, dur time.Duration) *scenarios.File {
	tb.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "target: http://127.0.0.1:9\nscenarios:\n  s:\n    executor: constant-arrival-rate\n    rate: %d\n    timeUnit: 1s\n    duration: %s\n    preAllocatedVUs: 100\nrequests:\n", rate, dur)
	for i := range n {
		fmt.Fprintf(&b, "  - {name: r%02d, path: /r%d}\n", i, i)
	}
	path := filepath.Join(tb.TempDir(), "sim.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	f, err := scenarios.Load(path)
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

// simSecond is one second of a simulated agent as it goes on the wire:
// rate requests spread evenly over names series, latencies log-normal
// around 3 ms (σ 0.7: 90% between 1.2 and 9.5 ms) with 1% of them in a
// tail up to 250 ms, service times 80-100% of the latency, 0.5% failed.
// Each histogram holds a few hundred populated buckets, as a busy
// agent's do.
func simSecond(rng *rand.Rand, t, names, rate int) *clusterpb.Interval {
	top := loadgen.DefaultHistTop.Microseconds()
	s := &loadgen.Snapshot{T: t, End: time.Duration(t+1) * time.Second, Scheduled: int64(rate), Inflight: 30,
		Busy: time.Duration(t+1) * 30 * time.Second / 1000, VUs: 40, PeakVUs: 45, Steal: -1,
		Series: make([]loadgen.SeriesDelta, names)}
	per := rate / names
	for j := range s.Series {
		lat, svc := hdr.NewPacked(1, top, 3), hdr.NewPacked(1, top, 3)
		sd := &s.Series[j]
		for range per {
			v := math.Exp(math.Log(3000) + 0.7*rng.NormFloat64())
			if rng.IntN(100) == 0 {
				v = 10_000 + rng.Float64()*240_000
			}
			us := max(int64(v), 1)
			_ = lat.RecordValue(us)
			_ = svc.RecordValue(max(int64(float64(us)*(0.8+0.2*rng.Float64())), 1))
			sd.LatencySum += time.Duration(us) * time.Microsecond
			if rng.IntN(200) == 0 {
				sd.Failed++
				sd.Classes[1]++
			} else {
				sd.Completed++
				sd.Classes[0]++
			}
		}
		sd.Sent, sd.ServiceSum = int64(per), sd.LatencySum*9/10
		sd.BytesSent, sd.BytesRecv = int64(per)*120, int64(per)*900
		sd.Latency, sd.Service = lat, svc
		sd.StatusCodes = map[int]int64{200: int64(t+1) * sd.Completed}
	}
	return encodeInterval(s)
}

// simWire is what a simulated agent streams in second t: one of a few
// distinct seconds (making a second's histograms costs more than merging
// them) with its own interval number.
type simWire struct {
	seconds []*clusterpb.Interval
	bodies  [][]byte // each second's Interval marshalled, without t and end_nanos
}

func newSimWire(distinct, names, rate int) *simWire {
	rng := rand.New(rand.NewPCG(17, 5))
	w := &simWire{}
	for range distinct {
		iv := simSecond(rng, 0, names, rate)
		b, err := proto.Marshal(iv)
		if err != nil {
			panic(err)
		}
		w.seconds, w.bodies = append(w.seconds, iv), append(w.bodies, b)
	}
	return w
}

// appendMessage appends agent a's snapshot of second t as gRPC hands it
// over: the Snapshot's bytes. A field repeated later in a message wins,
// so t and end_nanos go after the prepared body, which costs a copy
// instead of marshalling the second again.
func (w *simWire) appendMessage(b []byte, a, t int) []byte {
	body := w.bodies[(a+t)%len(w.bodies)]
	var tail [24]byte
	tl := protowire.AppendVarint(protowire.AppendTag(tail[:0], 1, protowire.VarintType), uint64(int32(t)))
	tl = protowire.AppendVarint(protowire.AppendTag(tl, 2, protowire.VarintType), uint64(time.Duration(t+1)*time.Second))
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(len(body)+len(tl)))
	return append(append(b, body...), tl...)
}

// benchCoordinator is a coordinator of agents agents, started, whose
// snapshots the benchmark hands it as its follow loops would.
func benchCoordinator(tb testing.TB, f *scenarios.File, agents int, onInterval func(loadgen.Interval)) *Coordinator {
	tb.Helper()
	addrs := make([]string, agents)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", 20000+i)
	}
	plan, err := NewPlan(f, "")
	if err != nil {
		tb.Fatal(err)
	}
	c, err := NewCoordinator(f, plan, CoordinatorConfig{Agents: addrs, Insecure: true, OnInterval: onInterval})
	if err != nil {
		tb.Fatal(err)
	}
	c.merger.Start(time.Now())
	return c
}

// BenchmarkCoordinatorSecond is one second of a run on 100 agents of
// 10,000 requests a second over 20 names, on one core: every agent's
// snapshot unmarshalled (what gRPC does on receipt), decoded and merged
// (Coordinator.interval), the merged interval closed. One op is one
// second of the run; it must take well under a second for the
// coordinator to keep up.
func BenchmarkCoordinatorSecond(b *testing.B) {
	f := simScenario(b, simNames, simAgents*simRatePer, time.Hour)
	w := newSimWire(8, simNames, simRatePer)
	// What the merged intervals keep (their per-name histograms) is the
	// run's retention; everything else a second allocates is garbage.
	var kept int
	c := benchCoordinator(b, f, simAgents, func(iv loadgen.Interval) {
		for _, h := range iv.Hists {
			kept += h.GetMemorySize()
		}
	})
	sums := make([]AgentReport, simAgents)
	wire := make([][]byte, simAgents)
	var bytes int
	var r0, r1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
	// The live heap from the third second on (the first ones size the
	// merger's histograms and buffers) less what the merged seconds keep:
	// what else a second leaves behind (at -benchtime of 20x or more).
	const warm = 3
	var heapWarm uint64
	keptWarm := 0
	b.ReportAllocs()
	for t := 0; b.Loop(); t++ {
		if t == warm {
			heapWarm, keptWarm = liveHeap(), kept
		}
		bytes = 0
		for a := range wire {
			wire[a] = w.appendMessage(wire[a][:0], a, t)
			bytes += len(wire[a])
			var snap clusterpb.Snapshot
			if err := proto.Unmarshal(wire[a], &snap); err != nil {
				b.Fatal(err)
			}
			if _, err := c.interval(a, snap.GetInterval(), &sums[a]); err != nil {
				b.Fatal(err)
			}
		}
	}
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
	// CPU time, unlike ns/op, does not count the time this shared
	// machine's other work took the core away.
	cpu := time.Duration(r1.Utime.Nano() + r1.Stime.Nano() - r0.Utime.Nano() - r0.Stime.Nano())
	b.ReportMetric(cpu.Seconds()*1000/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(kept)/float64(b.N), "intervals-kept-B/op")
	if b.N >= 20 {
		secs := float64(b.N - warm)
		b.ReportMetric((float64(liveHeap())-float64(heapWarm)-float64(kept-keptWarm))/secs, "other-heap-growth-B/op")
		// Alive at the warm-up reading, so alive at this one too.
		runtime.KeepAlive(c)
		runtime.KeepAlive(w)
		runtime.KeepAlive(wire)
		runtime.KeepAlive(sums)
	}
	b.ReportMetric(float64(bytes)/simAgents, "wire-bytes/agent")
	b.ReportMetric(float64(simAgents*simRatePer), "req/s-merged")
}

// liveHeap is the heap in use after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// simAgent is an agent that sends no request: it streams one simulated
// second a second (simWire) from the agreed start, then its final totals.
type simAgent struct {
	clusterpb.UnimplementedAgentServer
	series  []loadgen.Series
	wire    *simWire
	id      int
	seconds int
}

func (a *simAgent) Prepare(context.Context, *clusterpb.PrepareRequest) (*clusterpb.PrepareResponse, error) {
	resp := &clusterpb.PrepareResponse{}
	for _, s := range a.series {
		resp.Series = append(resp.Series, &clusterpb.Series{Scenario: s.Scenario, Name: s.Name})
	}
	return resp, nil
}

func (a *simAgent) Clock(context.Context, *clusterpb.ClockRequest) (*clusterpb.ClockResponse, error) {
	now := time.Now().UnixNano()
	return &clusterpb.ClockResponse{T2UnixNano: now, T3UnixNano: now}, nil
}

func (a *simAgent) Start(req *clusterpb.StartRequest, stream grpc.ServerStreamingServer[clusterpb.Snapshot]) error {
	start := time.Unix(0, req.StartUnixNano)
	var fin clusterpb.Final
	for t := range a.seconds {
		select {
		case <-time.After(time.Until(start.Add(time.Duration(t+1) * time.Second))):
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
		iv := proto.Clone(a.wire.seconds[(a.id+t)%len(a.wire.seconds)]).(*clusterpb.Interval)
		iv.T, iv.EndNanos = int32(t), int64(time.Duration(t+1)*time.Second)
		fin.Scheduled += iv.Scheduled
		for _, d := range iv.Series {
			fin.Sent += d.Sent
			fin.Completed += d.Completed
			fin.Failed += d.Failed
		}
		if err := stream.Send(&clusterpb.Snapshot{Kind: &clusterpb.Snapshot_Interval{Interval: iv}}); err != nil {
			return err
		}
	}
	fin.Status, fin.DurationNanos = loadgen.StatusPassed, int64(time.Duration(a.seconds)*time.Second)
	return stream.Send(&clusterpb.Snapshot{Kind: &clusterpb.Snapshot_Final{Final: &fin}})
}

func (a *simAgent) Stop(context.Context, *clusterpb.StopRequest) (*clusterpb.StopResponse, error) {
	return &clusterpb.StopResponse{}, nil
}

// serveSimAgents serves n simulated agents on loopback until the test
// ends and returns their addresses.
func serveSimAgents(t *testing.T, f *scenarios.File, n, seconds int, w *simWire) []string {
	t.Helper()
	var addrs []string
	for i := range n {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := grpc.NewServer()
		clusterpb.RegisterAgentServer(srv, &simAgent{series: loadgen.SeriesOf(f), wire: w, id: i, seconds: seconds})
		go func() { _ = srv.Serve(lis) }()
		t.Cleanup(srv.Stop)
		addrs = append(addrs, lis.Addr().String())
	}
	return addrs
}

// TestCoordinatorKeepsUpWithAHundredAgents streams 100 simulated agents
// (20 names, 10,000 requests a second each: a million a second in all)
// into one coordinator over gRPC on loopback, in this one process, and
// checks that every merged second is out within a second of its end (no
// backlog builds) and that the merged totals are every agent's. With the
// race detector, whose code runs several times slower, 4 agents.
func TestCoordinatorKeepsUpWithAHundredAgents(t *testing.T) {
	agents, seconds := simAgents, 4
	if israce.Enabled {
		agents = 4
	}
	f := simScenario(t, simNames, agents*simRatePer, time.Duration(seconds)*time.Second)
	w := newSimWire(8, simNames, simRatePer)
	addrs := serveSimAgents(t, f, agents, seconds, w)
	plan, err := NewPlan(f, "")
	if err != nil {
		t.Fatal(err)
	}
	quiet.Retry(t, 3, func(a *quiet.A) {
		var start time.Time
		var lags []time.Duration
		// KeepIntervals as loadcap run sets it, scaled down: the merged
		// seconds stream out through OnInterval, and the coordinator keeps
		// only the last one or two, yet its totals stay every agent's.
		cfg := CoordinatorConfig{Agents: addrs, Insecure: true, PrepareTimeout: 20 * time.Second, KeepIntervals: 1,
			OnStart: func(s time.Time) { start = s },
			OnInterval: func(iv loadgen.Interval) {
				lags = append(lags, time.Since(start.Add(time.Duration(iv.T+1)*time.Second)))
			}}
		var r0, r1 syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
		res, rep, err := Run(context.Background(), f, plan, cfg)
		if err != nil {
			t.Fatal(err)
		}
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
		cpu := time.Duration(r1.Utime.Nano() + r1.Stime.Nano() - r0.Utime.Nano() - r0.Stime.Nano())
		a.Logf("%d agents, %d seconds: this process (the agents' gRPC sends and the coordinator) used %v of CPU a second",
			agents, seconds, (cpu / time.Duration(seconds)).Round(time.Millisecond))
		if len(lags) != seconds {
			a.Errorf("merged %d seconds, want %d", len(lags), seconds)
		}
		if len(res.Intervals) > 2 || res.Earlier+len(res.Intervals) != seconds {
			t.Errorf("the coordinator kept %d merged seconds (and let %d go) of %d: want at most 2 kept, none lost", len(res.Intervals), res.Earlier, seconds)
		}
		for i, l := range lags {
			a.Logf("second %d merged %v after its end", i, l.Round(time.Millisecond))
			if l > time.Second {
				a.Errorf("second %d merged %v after its end: the coordinator falls behind %d agents", i, l, agents)
			}
		}
		var want int64
		for i := range agents {
			for s := range seconds {
				for _, d := range w.seconds[(i+s)%len(w.seconds)].Series {
					want += d.Sent
				}
			}
		}
		if res.Totals.Sent != want || res.Latency.TotalCount() != res.Totals.Completed+res.Totals.Failed {
			a.Errorf("merged sent %d (want %d), latency count %d, completed+failed %d", res.Totals.Sent, want, res.Latency.TotalCount(), res.Totals.Completed+res.Totals.Failed)
		}
		for _, ar := range rep.Agents {
			if ar.Status != AgentDone || ar.Error != "" {
				a.Errorf("agent %s: %s %s", ar.Addr, ar.Status, ar.Error)
			}
		}
	})
}
