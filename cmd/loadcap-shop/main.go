// Command shop runs loadcap's reference shop (package shop) on loopback.
//
// All in one process, on free ports:
//
//	go run ./cmd/loadcap-shop
//
// prints the gateway's URL and every service's /metrics URL, and runs
// until interrupted. One service per process, so that several replicas can
// sit behind a load balancer (they share state through PostgreSQL, MySQL
// or a SQLite directory, and Redis):
//
//	go run ./cmd/loadcap-shop --service provider --listen 127.0.0.1:9100
//	go run ./cmd/loadcap-shop --service product --listen 127.0.0.1:9101 --dir /tmp/shop --redis 127.0.0.1:6379
//	go run ./cmd/loadcap-shop --service order --listen 127.0.0.1:9105 --dir /tmp/shop --redis 127.0.0.1:6379 \
//	    --upstream product=127.0.0.1:9101,cart=127.0.0.1:9102,payment=127.0.0.1:9103
//	go run ./cmd/loadcap-shop --service payment ... --provider http://127.0.0.1:9100
//
// Capacity: --workers and --service-time for every service, --capacity
// NAME=WORKERSxTIME[,exp][,queue=N] for one (repeatable).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/loadcap/loadcap/internal/demo/shop"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// pairs is a repeatable NAME=VALUE flag (also comma-separated).
type pairs map[string]string

func (p pairs) String() string {
	var s []string
	for k, v := range p {
		s = append(s, k+"="+v)
	}
	sort.Strings(s)
	return strings.Join(s, ",")
}

func (p pairs) Set(v string) error {
	for _, kv := range splitPairs(v) {
		k, val, ok := strings.Cut(kv, "=")
		if !ok || k == "" || val == "" {
			return fmt.Errorf("%q: want NAME=VALUE", kv)
		}
		p[k] = val
	}
	return nil
}

// splitPairs splits "a=1,b=2" at the commas that start a new NAME=, so that
// a capacity value such as "order=4x10ms,exp" stays whole.
func splitPairs(v string) []string {
	var out []string
	for _, part := range strings.Split(v, ",") {
		if len(out) > 0 && !strings.Contains(part, "=") || len(out) > 0 && strings.HasPrefix(part, "queue=") {
			out[len(out)-1] += "," + part
			continue
		}
		out = append(out, part)
	}
	return out
}

// run is the command: it returns the exit code (0 after an interrupt, 1 on
// a failure to start, 2 on bad flags).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("shop", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg         shop.Config
		workers     = fs.Int("workers", shop.DefaultWorkers, "workers per service")
		serviceTime = fs.Duration("service-time", shop.DefaultServiceTime, "service time per request and service (0: no limit)")
		exponential = fs.Bool("exponential", false, "exponentially distributed service times (mean --service-time)")
		capacities  = pairs{}
		upstreams   = pairs{}
		service     = fs.String("service", "", "run only this service: "+strings.Join(shop.Names, ", ")+" (default: all)")
		listenAddr  = fs.String("listen", "", "with --service: its API address (default a free port on 127.0.0.1)")
		metricsAddr = fs.String("metrics-listen", "", "with --service: its /metrics address (default a free port on 127.0.0.1)")
		verbose     = fs.Bool("v", false, "log refusals of tagged work and other events to stderr")
		nginx       = fs.String("nginx", "", "front the gateway's replicas with nginx: auto (Debian's or on PATH) or the binary's path (default: in-process replicas)")
	)
	fs.StringVar(&cfg.DSN, "dsn", "", "PostgreSQL (postgres://…) or MySQL/MariaDB (mysql://USER:PASS@HOST:PORT/DB) DSN; default SQLite")
	fs.StringVar(&cfg.Schema, "schema", "", "PostgreSQL schema, or MySQL database, for the shop's tables (created when missing)")
	fs.StringVar(&cfg.Dir, "dir", "", "SQLite directory (default a temporary one, removed at exit)")
	fs.StringVar(&cfg.RedisAddr, "redis", "", "Redis host:port for carts, sessions and the queue (default in-process)")
	fs.StringVar(&cfg.KeyPrefix, "key-prefix", "", "prefix of every Redis key")
	fs.Int64Var(&cfg.IDOffset, "id-offset", shop.DefaultIDOffset, "offset of the IDs of rows written by tagged requests")
	fs.IntVar(&cfg.Products, "products", shop.DefaultProducts, "products seeded")
	fs.IntVar(&cfg.Users, "users", shop.DefaultUsers, "users seeded")
	fs.BoolVar(&cfg.Misconfigured, "misconfigured", false, "the order service forgets to declare table orders: tagged checkouts are refused")
	fs.StringVar(&cfg.ProviderURL, "provider", "", "payment provider base URL (default: start the stub)")
	fs.Var(capacities, "capacity", "NAME=WORKERSxTIME[,exp][,queue=N] for one service (repeatable)")
	fs.Var(upstreams, "upstream", "NAME=HOST:PORT of a service this one calls (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "shop: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *workers < 1 || *serviceTime < 0 {
		fmt.Fprintln(stderr, "shop: --workers must be ≥ 1 and --service-time ≥ 0")
		return 2
	}
	cfg.Capacity = map[string]shop.Capacity{}
	for _, n := range shop.Names {
		if n != shop.Provider {
			cfg.Capacity[n] = shop.Capacity{Workers: *workers, ServiceTime: *serviceTime, Exponential: *exponential}
		}
	}
	for name, v := range capacities {
		c, err := shop.ParseCapacity(v)
		if err != nil {
			fmt.Fprintln(stderr, "shop: --capacity", name+":", err)
			return 2
		}
		cfg.Capacity[name] = c
	}
	cfg.Upstreams = upstreams
	if *verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	}
	switch *nginx {
	case "":
	case "auto":
		if cfg.Nginx = shop.LookNginx(); cfg.Nginx == "" {
			fmt.Fprintln(stderr, "shop: --nginx auto: no nginx binary (/usr/sbin/nginx or on PATH)")
			return 2
		}
	default:
		cfg.Nginx = *nginx
	}
	var specs []shop.Spec
	if *service != "" {
		specs = []shop.Spec{{Name: *service, Listen: *listenAddr, MetricsListen: *metricsAddr}}
	} else if *listenAddr != "" || *metricsAddr != "" {
		fmt.Fprintln(stderr, "shop: --listen and --metrics-listen go with --service")
		return 2
	}

	s, err := shop.Start(ctx, cfg, specs...)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if u := s.URL(); u != "" {
		fmt.Fprintf(stdout, "gateway   %s\n", u)
	}
	for _, ep := range s.Endpoints() {
		where := ep.Addr
		if ep.URL != "" {
			where = ep.URL
		}
		line := fmt.Sprintf("%-9s %s", ep.Name, where)
		if ep.MetricsURL != "" {
			line += fmt.Sprintf("  metrics %s  capacity %s (%.0f/s)", ep.MetricsURL, ep.Capacity, ep.Capacity.PerSec())
		}
		fmt.Fprintln(stdout, line)
	}
	if dsn := s.DSN(); dsn != "" {
		fmt.Fprintf(stdout, "database  %s\n", dsn)
	}
	<-ctx.Done()
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			fmt.Fprintln(stderr, "shop: stop:", err)
			return 1
		}
	case <-time.After(10 * time.Second):
		fmt.Fprintln(stderr, "shop: did not stop within 10s")
		return 1
	}
	return 0
}
