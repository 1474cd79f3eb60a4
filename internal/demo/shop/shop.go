package shop

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/loadcap/loadcap/internal/demo/shop/shoppb"
	"github.com/loadcap/loadcap/shadow"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// popWait is how long the consumer blocks on the queue at a time: also how
// long it may take to notice that it must stop.
const popWait = 250 * time.Millisecond

// Spec says where one service listens. The zero addresses pick free ports
// on 127.0.0.1.
type Spec struct {
	Name          string
	Listen        string // the API: HTTP for the gateway and the provider stub, gRPC for the others
	MetricsListen string // /metrics; ignored for the provider stub, which has none
}

// Endpoint is a running service.
type Endpoint struct {
	Name       string
	Addr       string   // host:port of its API
	URL        string   // base URL of an HTTP API (gateway, provider); "" for gRPC services
	MetricsURL string   // its Prometheus endpoint, "" for the provider stub
	Capacity   Capacity // as configured
}

// Shop is a running shop: all its services (Start without specs) or some of
// them (one service per process). Its methods are safe for concurrent use.
type Shop struct {
	cfg       Config
	env       *env
	redis     *redisStore
	endpoints []Endpoint
	provider  *ProviderStub

	cancel    context.CancelFunc
	closeOnce sync.Once
	closeErr  error
	done      chan struct{}
	stops     []func() // in start order; run backwards
	conns     []*grpc.ClientConn
	bg        sync.WaitGroup // consumers and context watchers
}

// Start starts the services specs name, or all of them (Names) on free
// loopback ports when specs is empty, and returns once every one accepts
// connections. Services called but not started here are reached at
// cfg.Upstreams. Everything stops when ctx ends or at Close. Start opens
// the database (creating the tables that are missing, with their twins, and
// seeding the reference data) and the Redis client when cfg.RedisAddr is
// set; the in-process key-value store and queue are shared only by the
// services of one Start, so one service per process needs Redis for carts,
// sessions, sequences and the queue.
func Start(ctx context.Context, cfg Config, specs ...Spec) (*Shop, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if len(specs) == 0 {
		for _, n := range Names {
			if n == Provider && cfg.ProviderURL != "" {
				continue
			}
			specs = append(specs, Spec{Name: n})
		}
	}
	specs, err = ordered(specs)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Shop{cfg: cfg, cancel: cancel, done: make(chan struct{})}
	if err := s.start(ctx, specs); err != nil {
		s.Close()
		return nil, err
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		<-ctx.Done()
		go s.Close()
	}()
	return s, nil
}

// ordered checks specs and sorts them in start order.
func ordered(specs []Spec) ([]Spec, error) {
	rank := map[string]int{}
	for i, n := range Names {
		rank[n] = i
	}
	seen := map[string]bool{}
	for _, sp := range specs {
		if _, ok := rank[sp.Name]; !ok {
			return nil, fmt.Errorf("shop: service %q: want one of %v", sp.Name, Names)
		}
		if seen[sp.Name] {
			return nil, fmt.Errorf("shop: service %s given twice", sp.Name)
		}
		seen[sp.Name] = true
	}
	out := append([]Spec(nil), specs...)
	sort.SliceStable(out, func(i, j int) bool { return rank[out[i].Name] < rank[out[j].Name] })
	return out, nil
}

func (s *Shop) start(ctx context.Context, specs []Spec) error {
	cfg := s.cfg
	onlyProvider := len(specs) == 1 && specs[0].Name == Provider
	e := &env{cfg: cfg}
	s.env = e
	if !onlyProvider {
		db, err := openDatabase(ctx, cfg)
		if err != nil {
			return err
		}
		e.db = db
		if err := db.migrate(ctx, cfg.Products, cfg.Users); err != nil {
			return err
		}
		if cfg.RedisAddr != "" {
			r, err := openRedis(ctx, cfg.RedisAddr, cfg.KeyPrefix)
			if err != nil {
				return err
			}
			s.redis, e.kv, e.q = r, r, r
		} else {
			e.kv, e.q = newMemKV(), newMemQueue()
		}
	}
	addrs := map[string]string{}
	for k, v := range cfg.Upstreams {
		addrs[k] = v
	}
	if cfg.ProviderURL != "" {
		addrs[Provider] = cfg.ProviderURL
	}
	for _, sp := range specs {
		ep, err := s.startService(ctx, sp, addrs)
		if err != nil {
			return fmt.Errorf("shop: %s: %w", sp.Name, err)
		}
		s.endpoints = append(s.endpoints, ep)
		if ep.URL != "" && sp.Name == Provider {
			addrs[Provider] = ep.URL
		} else {
			addrs[sp.Name] = ep.Addr
		}
	}
	return nil
}

// listen opens a loopback listener at addr ("" picks a free port).
func listen(addr string) (net.Listener, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	if err := loopback(addr); err != nil {
		return nil, err
	}
	return net.Listen("tcp", addr)
}

// serveHTTP serves h on ln until Close.
func (s *Shop) serveHTTP(ln net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go srv.Serve(ln)
	s.stops = append(s.stops, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			srv.Close()
		}
	})
}

// serveGRPC serves srv on ln until Close.
func (s *Shop) serveGRPC(ln net.Listener, srv *grpc.Server) {
	go srv.Serve(ln)
	s.stops = append(s.stops, func() {
		done := make(chan struct{})
		go func() { srv.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			srv.Stop()
		}
	})
}

// dial opens a client connection to a service through p's interceptors.
func (s *Shop) dial(p *shadow.Policy, addrs map[string]string, name string) (*grpc.ClientConn, error) {
	addr, ok := addrs[name]
	if !ok {
		return nil, fmt.Errorf("%s: %w (Config.Upstreams)", name, errNoUpstream)
	}
	cc, err := grpc.NewClient(addr, append(p.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		return nil, fmt.Errorf("dial %s at %s: %w", name, addr, err)
	}
	s.conns = append(s.conns, cc)
	return cc, nil
}

// allowHosts are the hosts tagged calls may go to: loopback, and the hosts
// of the upstreams (loopback too, checked in Config).
func allowHosts(addrs map[string]string, names ...string) []string {
	hosts := []string{"127.0.0.1", "::1", "localhost"}
	for _, n := range names {
		if h, _, err := net.SplitHostPort(addrs[n]); err == nil {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// policy builds a service's shadow policy.
func (s *Shop) policy(name string, opts ...shadow.Option) (*shadow.Policy, error) {
	opts = append(opts, shadow.IDOffset(s.cfg.IDOffset), shadow.Logger(s.cfg.Logger.With("service", name)))
	return shadow.NewPolicy(opts...)
}

func seed(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64()
}

func (s *Shop) startService(ctx context.Context, sp Spec, addrs map[string]string) (Endpoint, error) {
	ep := Endpoint{Name: sp.Name, Capacity: s.cfg.capacity(sp.Name)}
	if sp.Name == Provider {
		ln, err := listen(sp.Listen)
		if err != nil {
			return ep, err
		}
		s.provider = &ProviderStub{}
		s.serveHTTP(ln, s.provider)
		ep.Addr, ep.URL, ep.Capacity = ln.Addr().String(), "http://"+ln.Addr().String(), Capacity{}
		return ep, nil
	}
	e := s.env
	var opts []shadow.Option
	switch sp.Name {
	case Gateway:
		opts = []shadow.Option{shadow.AllowHosts(allowHosts(addrs, needs[Gateway]...)...)}
	case Cart:
		opts = []shadow.Option{shadow.Keys(keyCart + "*")}
	case Order:
		opts = []shadow.Option{shadow.Keys(seqOrders), shadow.AllowHosts(allowHosts(addrs, needs[Order]...)...)}
		if !s.cfg.Misconfigured {
			opts = append(opts, shadow.Tables(tableOrders))
		}
	case Payment:
		// No allowed hosts: a tagged request can call nothing, the
		// provider least of all, whatever Effect decides.
		opts = []shadow.Option{shadow.Tables(tablePayments), shadow.Keys(seqPayments), shadow.Effects("payment")}
	case User:
		opts = []shadow.Option{shadow.Keys(keySession+"*", seqEvents), shadow.Topics(topicEvents), shadow.Tables(eventsPrefix + "*")}
	}
	p, err := s.policy(sp.Name, opts...)
	if err != nil {
		return ep, err
	}
	n := s.cfg.Replicas[sp.Name]
	if n == 0 {
		n = 1
	}
	if n < 1 || n > MaxReplicas {
		return ep, fmt.Errorf("%s: %d replicas: want 1 to %d", sp.Name, n, MaxReplicas)
	}
	var (
		lim *limiter
		pl  pool
		fl  *fleet // the gateway's replicas behind nginx
	)
	if sp.Name == Gateway && s.cfg.Nginx != "" {
		fl = newFleet(ep.Capacity, seed(sp.Name), s.cfg.Logger.With("service", sp.Name))
		pl = fl
	} else {
		lim = newReplicas(ep.Capacity, seed(sp.Name), n)
		pl = lim
	}
	m := newMetrics(sp.Name, p, pl)

	mln, err := listen(sp.MetricsListen)
	if err != nil {
		return ep, fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.handler())
	mux.Handle("/admin/replicas", replicasHandler(pl, s.cfg.ReplicaStartup))
	s.serveHTTP(mln, mux)
	ep.MetricsURL = "http://" + mln.Addr().String() + "/metrics"

	if fl != nil {
		g, err := s.gatewayClients(p, addrs)
		if err != nil {
			return ep, err
		}
		fl.handler = func(l *limiter) http.Handler { return g.handler(p, m, l) }
		if ep.Addr, err = fl.start(ctx, s.cfg.Nginx, sp.Listen, n); err != nil {
			return ep, err
		}
		s.stops = append(s.stops, fl.close)
		ep.URL = "http://" + ep.Addr
		return ep, nil
	}
	ln, err := listen(sp.Listen)
	if err != nil {
		return ep, err
	}
	ep.Addr = ln.Addr().String()
	if sp.Name == Gateway {
		g, err := s.gatewayClients(p, addrs)
		if err != nil {
			ln.Close()
			return ep, err
		}
		s.serveHTTP(ln, g.handler(p, m, lim))
		ep.URL = "http://" + ep.Addr
		return ep, nil
	}

	srv := grpc.NewServer(append(p.ServerOptions(), grpc.ChainUnaryInterceptor(unary(m, lim)))...)
	switch sp.Name {
	case Product:
		ps, err := newProductService(ctx, e)
		if err != nil {
			ln.Close()
			return ep, err
		}
		shoppb.RegisterProductsServer(srv, ps)
	case Cart:
		shoppb.RegisterCartsServer(srv, &cartService{e: e})
	case Order:
		o := &orderService{e: e}
		if err := e.syncSeq(ctx, seqOrders, tableOrders); err != nil {
			ln.Close()
			return ep, err
		}
		for _, c := range []struct {
			name string
			set  func(*grpc.ClientConn)
		}{
			{Product, func(cc *grpc.ClientConn) { o.products = shoppb.NewProductsClient(cc) }},
			{Cart, func(cc *grpc.ClientConn) { o.carts = shoppb.NewCartsClient(cc) }},
			{Payment, func(cc *grpc.ClientConn) { o.payments = shoppb.NewPaymentsClient(cc) }},
		} {
			cc, err := s.dial(p, addrs, c.name)
			if err != nil {
				ln.Close()
				return ep, err
			}
			c.set(cc)
		}
		shoppb.RegisterOrdersServer(srv, o)
	case Payment:
		url, ok := addrs[Provider]
		if !ok {
			ln.Close()
			return ep, fmt.Errorf("provider: %w (Config.ProviderURL)", errNoUpstream)
		}
		if err := e.syncSeq(ctx, seqPayments, tablePayments); err != nil {
			ln.Close()
			return ep, err
		}
		charges := prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shop_payment_charges_total",
			Help: "Charges made, by mode: real (through the provider) or mock (tagged requests).",
		}, []string{"mode"})
		m.extra.MustRegister(charges)
		shoppb.RegisterPaymentsServer(srv, &paymentService{e: e, providerURL: url, charges: charges,
			client: &http.Client{Transport: p.Transport(nil), Timeout: 10 * time.Second}})
	case User:
		shoppb.RegisterUsersServer(srv, &userService{e: e})
		consumed := prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shop_events_consumed_total",
			Help: "Tracking events taken off the queue, by shadow and result: stored, rejected (unreadable tag), misrouted (tag and topic disagree), invalid, error.",
		}, []string{"shadow", "result"})
		m.extra.MustRegister(consumed)
		c := &consumer{e: e, p: p, consumed: consumed, seqDone: map[string]bool{}}
		cctx, cancel := context.WithCancel(ctx)
		s.bg.Add(1)
		go func() { defer s.bg.Done(); c.run(cctx) }()
		s.stops = append(s.stops, cancel)
	}
	s.serveGRPC(ln, srv)
	return ep, nil
}

// gatewayClients dials the services the gateway calls.
func (s *Shop) gatewayClients(p *shadow.Policy, addrs map[string]string) (*gateway, error) {
	g := &gateway{}
	for _, c := range []struct {
		name string
		set  func(*grpc.ClientConn)
	}{
		{Product, func(cc *grpc.ClientConn) { g.products = shoppb.NewProductsClient(cc) }},
		{Cart, func(cc *grpc.ClientConn) { g.carts = shoppb.NewCartsClient(cc) }},
		{Order, func(cc *grpc.ClientConn) { g.orders = shoppb.NewOrdersClient(cc) }},
		{User, func(cc *grpc.ClientConn) { g.users = shoppb.NewUsersClient(cc) }},
	} {
		cc, err := s.dial(p, addrs, c.name)
		if err != nil {
			return nil, err
		}
		c.set(cc)
	}
	return g, nil
}

// URL returns the gateway's base URL, "http://127.0.0.1:PORT", or "" when
// this Start did not run the gateway.
func (s *Shop) URL() string {
	ep, _ := s.Endpoint(Gateway)
	return ep.URL
}

// Endpoints returns the services started, in start order.
func (s *Shop) Endpoints() []Endpoint { return append([]Endpoint(nil), s.endpoints...) }

// Endpoint returns the running service name.
func (s *Shop) Endpoint(name string) (Endpoint, bool) {
	for _, ep := range s.endpoints {
		if ep.Name == name {
			return ep, true
		}
	}
	return Endpoint{}, false
}

// Provider returns the payment provider's stub, nil when this Start did not
// run it (Config.ProviderURL).
func (s *Shop) Provider() *ProviderStub { return s.provider }

// DB returns a pool on the shop's database, its schema current: for
// queries, audit.Scan and audit.Check. Nil when only the provider runs. Do
// not close it.
func (s *Shop) DB() *sql.DB {
	if s.env.db == nil {
		return nil
	}
	return s.env.db.read
}

// DSN returns the database as `loadcap shadow check|audit --dsn` takes it:
// "sqlite:PATH", the PostgreSQL DSN with search_path set to the schema, or
// the MySQL DSN naming the schema's database.
func (s *Shop) DSN() string {
	if s.env.db == nil {
		return ""
	}
	return s.env.db.dsn
}

// IDOffset returns the offset of shadow IDs in force.
func (s *Shop) IDOffset() int64 { return s.cfg.IDOffset }

// Tables returns the production tables that have a shadow twin, sorted:
// orders, payments and the daily event tables created so far. These are
// the tables to give `loadcap shadow check --tables`.
func (s *Shop) Tables(ctx context.Context) ([]string, error) {
	if s.env.db == nil {
		return nil, errors.New("shop: no database in this process")
	}
	names, err := s.env.db.tables(ctx)
	if err != nil {
		return nil, fmt.Errorf("shop: list tables: %w", err)
	}
	return twinned(names), nil
}

// Done is closed when the shop has stopped.
func (s *Shop) Done() <-chan struct{} { return s.done }

// Close stops every service (in-flight requests get up to 2 s), the
// consumer, and closes the stores; with Config.DropSchema it drops the
// schema. Safe to call more than once.
func (s *Shop) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		for i := len(s.stops) - 1; i >= 0; i-- {
			s.stops[i]()
		}
		var errs []error
		for _, cc := range s.conns {
			errs = append(errs, cc.Close())
		}
		s.bg.Wait()
		if s.redis != nil {
			errs = append(errs, s.redis.close())
		}
		if s.env != nil && s.env.db != nil {
			errs = append(errs, s.env.db.close())
		}
		s.closeErr = errors.Join(errs...)
		close(s.done)
	})
	<-s.done
	return s.closeErr
}

// eventDay is the UTC day (YYYYMMDD) of a time in Unix milliseconds.
func eventDay(ms int64) string { return time.UnixMilli(ms).UTC().Format("20060102") }

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
