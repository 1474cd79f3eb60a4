//go:build unix

// Command h1bench measures the generator efficiency of package httpc:
// requests completed per CPU-second of this process, with N clients in a
// closed loop against a loopback target for a fixed time.
//
//	cd /work/shared/bench/target && go build -o /tmp/benchtarget .
//	taskset -c 1 /tmp/benchtarget &
//	GOMAXPROCS=1 taskset -c 0 go run ./loadgen/httpc/internal/h1bench -c 50 -d 5s
//
// Only loopback targets are accepted.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/loadcap/loadcap/loadgen/httpc"
)

func main() {
	target := flag.String("url", "http://127.0.0.1:18080/fast", "target URL (loopback only)")
	clients := flag.Int("c", 50, "clients (VUs), one request at a time each")
	dur := flag.Duration("d", 5*time.Second, "duration")
	h2 := flag.Bool("http2", false, "HTTP/2 (h2c for http://)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile here")
	threads := flag.Bool("threads", false, "print per-thread CPU time and context switches")
	flag.Parse()

	u, err := url.Parse(*target)
	if err != nil {
		fail(err)
	}
	if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
		fail(fmt.Errorf("refusing non-loopback target %q", u.Host))
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
	}
	req := httpc.Request{Method: "GET", Scheme: u.Scheme, Host: host, Target: []byte(u.RequestURI())}

	tr := httpc.NewTransport(httpc.Options{HTTP2: *h2})
	defer tr.Close()

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fail(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fail(err)
		}
		defer pprof.StopCPUProfile()
	}

	var (
		stop            atomic.Bool
		ok, failed, rcv atomic.Int64
		wg              sync.WaitGroup
	)
	cpu0, wall0 := cpuTime(), time.Now()
	for range *clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := tr.NewClient()
			defer c.Close()
			var res httpc.Result
			var n, bad, bytes int64
			for !stop.Load() {
				c.Do(&req, &res)
				if res.Class == httpc.ClassNone && res.Status == 200 {
					n++
				} else {
					bad++
				}
				bytes += res.BytesReceived
			}
			ok.Add(n)
			failed.Add(bad)
			rcv.Add(bytes)
		}()
	}
	time.Sleep(*dur)
	stop.Store(true)
	wg.Wait()
	cpu, wall := cpuTime()-cpu0, time.Since(wall0)

	total := ok.Load() + failed.Load()
	fmt.Printf("GOMAXPROCS=%d clients=%d wall=%.2fs\n", runtime.GOMAXPROCS(0), *clients, wall.Seconds())
	fmt.Printf("requests=%d ok=%d failed=%d bytes_received=%d\n", total, ok.Load(), failed.Load(), rcv.Load())
	fmt.Printf("rps=%.0f cpu=%.2fs req_per_cpu_s=%.0f\n",
		float64(total)/wall.Seconds(), cpu.Seconds(), float64(total)/cpu.Seconds())
	if *threads {
		printThreads()
	}
}

// printThreads prints, per OS thread of this process, its CPU time
// (utime+stime, clock ticks) and voluntary/involuntary context switches.
func printThreads() {
	dirs, _ := os.ReadDir("/proc/self/task")
	for _, d := range dirs {
		stat, _ := os.ReadFile("/proc/self/task/" + d.Name() + "/stat")
		status, _ := os.ReadFile("/proc/self/task/" + d.Name() + "/status")
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
		var vol, invol string
		for _, l := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(l, "voluntary_ctxt_switches:"); ok {
				vol = strings.TrimSpace(v)
			}
			if v, ok := strings.CutPrefix(l, "nonvoluntary_ctxt_switches:"); ok {
				invol = strings.TrimSpace(v)
			}
		}
		fmt.Printf("thread %s: utime=%s stime=%s ticks, ctxsw vol=%s invol=%s\n", d.Name(), f[11], f[12], vol, invol)
	}
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
	fmt.Fprintln(os.Stderr, "h1bench:", err)
	os.Exit(1)
}
