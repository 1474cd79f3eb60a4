//go:build unix

// Command engprof runs the load engine as `loadcap run --url U --vus C`
// (or a scenario file) would, without the CLI around it, and prints the
// requests per CPU-second of this process; with -cpuprofile it writes a
// CPU profile of the run: the generator's own cost under the efficiency
// benchmarks (test/bench). Pin it as the harness does:
//
//	taskset -c 1 /tmp/peers/target -addr 127.0.0.1:18280 -grpc-addr 127.0.0.1:18281 &
//	go build -o /tmp/engprof ./loadgen/internal/engprof
//	taskset -c 0 /tmp/engprof -url http://127.0.0.1:18280/fast -vus 50 -cpuprofile h1.prof
//
// Only loopback targets are accepted.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"runtime/metrics"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/scenarios"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:18280/fast", "target URL")
	vus := flag.Int("vus", 50, "closed model: VUs")
	rate := flag.Float64("rate", 0, "open model: arrivals per second (instead of -vus)")
	maxVUs := flag.Int("max-vus", 0, "open model: in-flight cap")
	dur := flag.Duration("d", 5*time.Second, "duration")
	h2 := flag.Bool("http2", false, "HTTP/2 (h2c for http://)")
	file := flag.String("f", "", "scenario file (instead of -url and the workload flags)")
	prof := flag.String("cpuprofile", "", "write a CPU profile here")
	memPeak := flag.Bool("mem", false, "sample the Go runtime's memory every 100 ms and print its peak by class (heap objects, goroutine stacks)")
	goroutines := flag.Bool("goroutines", false, "a goroutine per VU even where event loops would run them (loadgen.WithoutEventLoops)")
	flag.Parse()
	var f *scenarios.File
	var err error
	if *file != "" {
		f, err = scenarios.Load(*file)
	} else {
		q := scenarios.QuickOptions{URL: *url, Method: "GET", Duration: *dur, HTTP2: *h2, Headers: map[string]string{}, MaxVUs: *maxVUs}
		if *rate > 0 {
			q.RatePerSec = *rate
		} else {
			q.VUs = *vus
		}
		f, err = scenarios.Quick(q)
	}
	if err != nil {
		fail(err)
	}
	for _, r := range f.Requests {
		host := r.Host
		if r.GRPC != nil {
			host = r.GRPC.Target
		}
		if h, _, err := net.SplitHostPort(host); err != nil || !loopback(h) {
			fail(fmt.Errorf("request %s: refusing non-loopback target %q", r.Name, host))
		}
	}
	var opts []loadgen.Option
	if *goroutines {
		opts = append(opts, loadgen.WithoutEventLoops())
	}
	e, err := loadgen.New(f, opts...)
	if err != nil {
		fail(err)
	}
	if *prof != "" {
		pf, err := os.Create(*prof)
		if err != nil {
			fail(err)
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			fail(err)
		}
		defer pprof.StopCPUProfile()
	}
	var stopMem func()
	if *memPeak {
		stopMem = sampleMemory()
	}
	c0 := cpuTime()
	res, err := e.Run(context.Background())
	cpu := cpuTime() - c0
	if stopMem != nil {
		stopMem()
	}
	if err != nil {
		fail(err)
	}
	n := res.Totals.Completed + res.Totals.Failed
	fmt.Printf("requests=%d failed=%d cpu=%.2fs req_per_cpu_s=%.0f rps=%.0f\n",
		n, res.Totals.Failed, cpu.Seconds(), float64(n)/cpu.Seconds(), float64(n)/res.Duration.Seconds())
}

// sampleMemory samples runtime/metrics every 100 ms until the returned
// function is called, which prints each class's peak.
func sampleMemory() func() {
	names := []string{
		"/memory/classes/heap/objects:bytes",
		"/memory/classes/heap/stacks:bytes",
		"/memory/classes/total:bytes",
		"/sched/goroutines:goroutines",
	}
	samples := make([]metrics.Sample, len(names))
	for i, n := range names {
		samples[i].Name = n
	}
	peak := make([]uint64, len(names))
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(samples)
			for i, s := range samples {
				peak[i] = max(peak[i], s.Value.Uint64())
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
		fmt.Printf("peak heap objects %.1f MB, stacks %.1f MB, all Go memory %.1f MB, goroutines %d\n",
			float64(peak[0])/1e6, float64(peak[1])/1e6, float64(peak[2])/1e6, peak[3])
	}
}

func loopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// cpuTime is the user+system CPU time of this process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		fail(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "engprof:", err)
	os.Exit(1)
}
