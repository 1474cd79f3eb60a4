package cluster

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/loadgen/cluster/clusterpb"
	"github.com/loadcap/loadcap/loadgen/k6"
)

// k6Run is a prepared k6 archive: its child's Runner and the frames it
// forwards.
type k6Run struct {
	runner *k6.Runner
	frames chan []byte
}

// k6Flags are the "k6 run" flags an agent accepts from a coordinator, by
// name, and whether each takes a value. The others are refused: they
// write files on the agent (--summary-export, --console-output), send
// data elsewhere (--out, --log-output, --traces-output), expose its
// environment (--include-system-env-vars), log secrets (--http-debug) or
// override its segment.
var k6Flags = map[string]bool{
	"vus": true, "u": true, "duration": true, "d": true, "iterations": true, "i": true,
	"stage": true, "s": true, "max-vus": true, "m": true, "env": true, "e": true, "tag": true,
	"system-tags": true, "summary-trend-stats": true, "summary-time-unit": true, "summary-mode": true,
	"user-agent": true, "batch": true, "batch-per-host": true, "rps": true, "max-redirects": true,
	"min-iteration-duration": true, "compatibility-mode": true, "setup-timeout": true,
	"teardown-timeout": true, "blacklist-ip": true, "block-hostnames": true, "dns": true, "log-format": true,
	"no-summary": false, "no-thresholds": false, "throw": false, "w": false, "insecure-skip-tls-verify": false,
	"discard-response-bodies": false, "no-connection-reuse": false, "no-vu-connection-reuse": false,
	"no-setup": false, "no-teardown": false, "quiet": false, "q": false, "no-color": false, "verbose": false, "v": false,
}

// CheckK6Args returns an error naming the first "k6 run" argument an agent
// refuses (see the k6 section of the package documentation).
func CheckK6Args(args []string) error {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" || a == "--" {
			return fmt.Errorf("k6 argument %q: agents take flags only (the script is the archive)", a)
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		takes, ok := k6Flags[name]
		if !ok {
			return fmt.Errorf("k6 argument %q: agents refuse this flag (they accept only flags that shape the load, not ones that write files, send data elsewhere or expose the agent)", a)
		}
		if takes && !hasValue {
			if i+1 >= len(args) {
				return fmt.Errorf("k6 argument %q: missing its value", a)
			}
			i++
		}
	}
	return nil
}

// prepareK6 prepares a k6 archive's run on this agent.
func (a *agent) prepareK6(ctx context.Context, req *clusterpb.PrepareRequest, p *plannedRun) (*clusterpb.PrepareResponse, error) {
	if len(req.Scenario) > 0 || len(req.Files) > 0 {
		return nil, status.Error(codes.InvalidArgument, "prepare: a k6 archive comes alone, without a scenario file")
	}
	if err := CheckK6Args(req.K6Args); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "prepare: %v", err)
	}
	seg, err := loadgen.NewSegment(req.Segment, req.Sequence)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "prepare: %v", err)
	}
	blocked, err := a.k6Blocked(ctx)
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "prepare: %v", err)
	}
	tar := filepath.Join(p.dir, "test.tar")
	if err := os.WriteFile(tar, req.K6Archive, 0o600); err != nil {
		return nil, status.Errorf(codes.Internal, "prepare: %v", err)
	}
	run := &k6Run{frames: make(chan []byte, 4096)}
	args := append(append([]string{}, req.K6Args...), "--blacklist-ip", strings.Join(blocked, ","))
	opts := []k6.Option{
		k6.WithArgs(args...),
		k6.WithDrillID(req.DrillId),
		k6.WithSegment(seg.String(), seg.Sequence()),
		k6.WithoutSystemEnv(), // the script sees the plan's --env, not the agent's environment
		// k6's browser drives a Chromium that does not connect through
		// k6's dialer: --blacklist-ip would not hold it. k6 resolves the
		// browser modules' names to one that throws, however the script
		// computes them.
		k6.WithoutBrowser(),
		k6.WithoutRemoteModules(),             // k6 would fetch them outside --blacklist-ip
		k6.WithOutput(io.Discard, io.Discard), // k6's error travels in the Final
		k6.WithFrames(func(line []byte) { run.frames <- append([]byte(nil), line...) }),
		k6.WithIntervalHook(a.metrics.Observe),
		// The coordinator merges the frames; of its own result the agent
		// sends only the totals (the Final), so its seconds need not stay.
		k6.WithIntervalRetention(agentK6Keep),
	}
	if len(a.cfg.K6Command) > 0 {
		opts = append(opts, k6.WithCommand(a.cfg.K6Command...), k6.WithEnv(a.cfg.K6Env...))
	}
	if run.runner, err = k6.New(tar, opts...); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "prepare: %v", err)
	}
	p.k6 = run
	a.log.Info("k6 plan prepared", "run", req.RunId, "from", peerName(ctx), "script", req.ScenarioName,
		"segment", seg.String(), "sequence", seg.Sequence(), "args", req.K6Args, "drill", req.DrillId, "blocked", len(blocked))
	return &clusterpb.PrepareResponse{K6Blocked: blocked}, nil
}

// k6Blocked is the allow list's complement as address ranges, for k6's
// --blacklist-ip: k6 checks every address it connects to (after its own
// name resolution) against them. Names on the list are resolved now;
// wildcard names cannot be, and allow nothing to k6.
func (a *agent) k6Blocked(ctx context.Context) ([]string, error) {
	allowed := append([]netip.Prefix{}, a.allow.prefixes...)
	for _, n := range a.allow.names {
		if strings.HasPrefix(n, "*.") {
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, warmTimeout)
		addrs, err := a.allow.lookup(lctx, n)
		cancel()
		if err != nil {
			continue // a name that does not resolve allows nothing
		}
		for _, ip := range addrs {
			ip = ip.WithZone("").Unmap()
			allowed = append(allowed, netip.PrefixFrom(ip, ip.BitLen()))
		}
	}
	var out []string
	for _, p := range Complement(allowed) {
		out = append(out, p.String())
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("the allow list admits every address: k6 needs at least one blocked range")
	}
	return out, nil
}

// Complement returns the smallest set of prefixes that covers every IPv4
// and IPv6 address outside allowed, sorted (IPv4 first).
func Complement(allowed []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, root := range []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")} {
		out = appendOutside(out, root, allowed)
	}
	return out
}

// appendOutside appends the parts of p outside allowed.
func appendOutside(out []netip.Prefix, p netip.Prefix, allowed []netip.Prefix) []netip.Prefix {
	overlaps := false
	for _, a := range allowed {
		if a.Addr().Is4() != p.Addr().Is4() {
			continue
		}
		if a.Bits() <= p.Bits() && a.Contains(p.Addr()) {
			return out // p is wholly allowed
		}
		if p.Bits() < a.Bits() && p.Contains(a.Addr()) {
			overlaps = true
		}
	}
	if !overlaps {
		return append(out, p)
	}
	lo, hi := halves(p)
	return appendOutside(appendOutside(out, lo, allowed), hi, allowed)
}

// halves splits p into its two halves (p.Bits() < its address length).
func halves(p netip.Prefix) (netip.Prefix, netip.Prefix) {
	bits := p.Bits() + 1
	lo := netip.PrefixFrom(p.Addr(), bits)
	b := p.Addr().AsSlice()
	b[p.Bits()/8] |= 0x80 >> (p.Bits() % 8)
	hiAddr, _ := netip.AddrFromSlice(b)
	return lo, netip.PrefixFrom(hiAddr, bits)
}

// runK6 runs a prepared k6 archive, forwarding its child's frames, and
// ends the stream with a Final carrying k6's exit code.
func (a *agent) runK6(p *plannedRun, stream clusterpb.Agent_StartServer) error {
	ctx := stream.Context()
	r := p.k6.runner
	a.metrics.Running(true)
	type result struct {
		out *k6.Outcome
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := r.Run(context.Background())
		close(p.k6.frames) // Run has handed over its last frame
		done <- result{out, err}
	}()
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		select {
		case <-ctx.Done():
			a.log.Warn("coordinator lost: stopping k6", "run", p.id, "err", context.Cause(ctx))
			r.Kill(CauseCoordinatorLost, "coordinator lost")
		case <-finished:
		}
	}()
	var sendErr error
	for f := range p.k6.frames {
		if sendErr != nil {
			continue // keep draining: the child must never block on us
		}
		if sendErr = stream.Send(&clusterpb.Snapshot{Kind: &clusterpb.Snapshot_K6Frame{K6Frame: f}}); sendErr != nil {
			r.Kill(CauseCoordinatorLost, "cannot send to the coordinator: "+sendErr.Error())
		}
	}
	res := <-done
	if res.err != nil {
		return status.Errorf(codes.Internal, "k6 run: %v", res.err)
	}
	fin := &clusterpb.Final{K6ExitCode: int32(res.out.ExitCode), K6Error: res.out.Err, Status: loadgen.StatusPassed}
	if res.out.Result != nil {
		fin = encodeFinal(loadgen.FinalOf(res.out.Result))
		fin.K6ExitCode, fin.K6Error = int32(res.out.ExitCode), res.out.Err
	}
	a.log.Info("k6 run ended", "run", p.id, "exit", res.out.ExitCode, "err", res.out.Err)
	if sendErr != nil {
		return sendErr
	}
	return stream.Send(&clusterpb.Snapshot{Kind: &clusterpb.Snapshot_Final{Final: fin}})
}

// k6StartGrace is how long after the agreed start an agent's k6 child may
// take to begin its test (it loads the archive and initializes VUs first).
const k6StartGrace = 5 * time.Second

// agentK6Keep is how many seconds an agent's k6 runner keeps of its own
// result, which only its totals leave.
const agentK6Keep = 60
