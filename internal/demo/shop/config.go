package shop

import (
	"fmt"
	"log/slog"
	"math"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Service names, as Start, Spec, Config.Capacity and Config.Upstreams take
// them. Provider is the payment provider's stub, a stand-in for a third
// party rather than a shop service.
const (
	Gateway  = "gateway"
	Product  = "product"
	Cart     = "cart"
	Order    = "order"
	User     = "user"
	Payment  = "payment"
	Provider = "provider"
)

// Names lists the services in the order Start starts them (each after the
// ones it calls).
var Names = []string{Provider, Product, Cart, Payment, User, Order, Gateway}

// needs lists the services each service calls.
var needs = map[string][]string{
	Gateway: {Product, Cart, Order, User},
	Order:   {Product, Cart, Payment},
	Payment: {Provider},
}

// Defaults.
const (
	// DefaultWorkers and DefaultServiceTime give every service a capacity
	// of 8 / 2 ms = 4000 requests per second.
	DefaultWorkers     = 8
	DefaultServiceTime = 2 * time.Millisecond
	// DefaultIDOffset is added to the IDs of rows written by tagged
	// requests (shadow.ID): shadow IDs are ≥ it, production IDs below.
	DefaultIDOffset int64 = 1_000_000_000_000
	// DefaultProducts and DefaultUsers size the catalogue and the user
	// table seeded at the first start: IDs 1..N.
	DefaultProducts = 1000
	DefaultUsers    = 1000
	// DefaultPageSize is the number of products per page of the list.
	DefaultPageSize = 20
	// SessionTTL is how long a login session lives in the key-value store.
	SessionTTL = 30 * time.Minute
)

// Capacity is a service's configured capacity: at most Workers requests
// are in their service time at once, each holding a worker for ServiceTime
// (a constant, or exponentially distributed with that mean); the others
// wait in a queue of at most QueueLimit (0: no limit) and beyond that are
// refused (HTTP 503 / gRPC ResourceExhausted). Only the service time holds
// a worker: the real work of a request (decoding, SQL, calls to other
// services) runs after it, so the service's capacity is exactly
// Workers / ServiceTime requests per second whatever that work costs.
type Capacity struct {
	Workers     int
	ServiceTime time.Duration
	Exponential bool
	QueueLimit  int
}

// DefaultCapacity is the capacity of a service Config.Capacity does not
// name.
var DefaultCapacity = Capacity{Workers: DefaultWorkers, ServiceTime: DefaultServiceTime}

// PerSec is the capacity in requests per second: Workers / ServiceTime;
// +Inf when ServiceTime is 0 (the service does not limit).
func (c Capacity) PerSec() float64 {
	if c.ServiceTime <= 0 {
		return math.Inf(1)
	}
	return float64(c.Workers) / c.ServiceTime.Seconds()
}

// String writes c as ParseCapacity reads it: "8x2ms", "4x10ms,exp,queue=100".
func (c Capacity) String() string {
	s := strconv.Itoa(c.Workers) + "x" + c.ServiceTime.String()
	if c.Exponential {
		s += ",exp"
	}
	if c.QueueLimit > 0 {
		s += ",queue=" + strconv.Itoa(c.QueueLimit)
	}
	return s
}

// ParseCapacity reads "WORKERSxSERVICE_TIME[,exp][,queue=N]", e.g.
// "8x2ms" or "4x10ms,exp": WORKERS ≥ 1, SERVICE_TIME a Go duration ≥ 0,
// exp for exponentially distributed service times, queue= the QueueLimit.
func ParseCapacity(s string) (Capacity, error) {
	parts := strings.Split(strings.TrimSpace(s), ",")
	w, d, ok := strings.Cut(parts[0], "x")
	if !ok {
		return Capacity{}, fmt.Errorf("capacity %q: want WORKERSxSERVICE_TIME, e.g. 8x2ms", s)
	}
	var c Capacity
	var err error
	if c.Workers, err = strconv.Atoi(w); err != nil || c.Workers < 1 {
		return Capacity{}, fmt.Errorf("capacity %q: workers %q: want an integer ≥ 1", s, w)
	}
	if c.ServiceTime, err = time.ParseDuration(d); err != nil || c.ServiceTime < 0 {
		return Capacity{}, fmt.Errorf("capacity %q: service time %q: want a duration ≥ 0 such as 2ms", s, d)
	}
	for _, p := range parts[1:] {
		switch {
		case p == "exp":
			c.Exponential = true
		case strings.HasPrefix(p, "queue="):
			n, err := strconv.Atoi(strings.TrimPrefix(p, "queue="))
			if err != nil || n < 0 {
				return Capacity{}, fmt.Errorf("capacity %q: %q: want queue=N, N ≥ 0", s, p)
			}
			c.QueueLimit = n
		default:
			return Capacity{}, fmt.Errorf("capacity %q: unknown option %q (want exp or queue=N)", s, p)
		}
	}
	return c, nil
}

// Config configures the shop. The zero Config is an all-in-one shop on
// SQLite in a temporary directory with in-process stores and the defaults
// above.
type Config struct {
	// DSN selects PostgreSQL ("postgres://…", through pgx) or MySQL and
	// MariaDB ("mysql://USER:PASS@HOST:PORT/DB", through
	// go-sql-driver/mysql); "" is SQLite.
	DSN string
	// Schema is the PostgreSQL schema, or the MySQL database on the DSN's
	// server, the shop's tables live in, created when missing (lower-case
	// letters, digits and _); "" is the DSN's default. DropSchema drops
	// it, with everything in it, at Close: for tests.
	Schema     string
	DropSchema bool
	// Dir holds the SQLite database (shop.db); "" is a temporary directory
	// removed at Close.
	Dir string
	// RedisAddr selects Redis (host:port) for carts, sessions, ID
	// sequences and the tracking queue; "" keeps them in the process.
	// KeyPrefix goes in front of every Redis key and list, so that several
	// shops (tests) share one Redis.
	RedisAddr, KeyPrefix string
	// IDOffset is added to the IDs of rows written for tagged requests
	// (0: DefaultIDOffset).
	IDOffset int64
	// Capacity is each service's capacity by name; services not named get
	// DefaultCapacity.
	Capacity map[string]Capacity
	// Replicas is each service's replicas at the start by name (1 when
	// not named): each brings its Capacity. POST /admin/replicas?n=N on
	// a service's metrics address scales it; a new replica serves
	// ReplicaStartup after it is asked for.
	Replicas       map[string]int
	ReplicaStartup time.Duration
	// Nginx, when set, is the nginx binary (LookNginx finds Debian's) that
	// fronts the gateway: each gateway replica is then a listener of its
	// own on a loopback port, nginx (its own prefix, configuration and pid
	// file in a temporary directory) balances over them on the gateway's
	// address, and scaling rewrites nginx's upstreams and reloads it; a
	// replica is ready once nginx answers the configuration that has it.
	// "" keeps the gateway's replicas in the process behind one queue,
	// as every other service's are.
	Nginx string
	// Products and Users size the seeded catalogue and user table (0: the
	// defaults). Seeding happens when the tables are empty.
	Products, Users int
	// Misconfigured starts the order service with a shadow policy that
	// forgets to declare table orders: tagged checkouts are refused (503 at
	// the gateway, reason in X-Loadcap-Shadow-Reject) before anything is
	// written, and counted.
	Misconfigured bool
	// ProviderURL is the payment provider the payment service charges
	// through; "" starts the stub (service Provider).
	ProviderURL string
	// Upstreams gives the address (host:port) of every service called but
	// not started by this Start, for one service per process.
	Upstreams map[string]string
	// Logger receives the services' logs, refusals of tagged work among
	// them; nil discards them.
	Logger *slog.Logger
	// Now is the clock of order times and of the day that picks an event's
	// daily table (UTC); nil is time.Now.
	Now func() time.Time
}

func (c Config) capacity(name string) Capacity {
	if cp, ok := c.Capacity[name]; ok {
		return cp
	}
	return DefaultCapacity
}

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// withDefaults validates c and fills in the defaults.
func (c Config) withDefaults() (Config, error) {
	if c.IDOffset == 0 {
		c.IDOffset = DefaultIDOffset
	}
	if c.IDOffset < 0 {
		return c, fmt.Errorf("shop: ID offset %d: must be positive", c.IDOffset)
	}
	if c.Products == 0 {
		c.Products = DefaultProducts
	}
	if c.Users == 0 {
		c.Users = DefaultUsers
	}
	if c.Products < 0 || c.Users < 0 || int64(c.Products) >= c.IDOffset || int64(c.Users) >= c.IDOffset {
		return c, fmt.Errorf("shop: %d products, %d users: want 0 < n < the ID offset", c.Products, c.Users)
	}
	if c.Schema != "" && !schemaName.MatchString(c.Schema) {
		return c, fmt.Errorf("shop: schema %q: want lower-case letters, digits and _", c.Schema)
	}
	if c.Schema != "" && c.DSN == "" {
		return c, fmt.Errorf("shop: schema %q needs a PostgreSQL or MySQL DSN", c.Schema)
	}
	for name, cp := range c.Capacity {
		if !known(name) {
			return c, fmt.Errorf("shop: capacity of %q: no such service (want one of %s)", name, strings.Join(Names, ", "))
		}
		if cp.Workers < 1 || cp.ServiceTime < 0 || cp.QueueLimit < 0 {
			return c, fmt.Errorf("shop: capacity of %s %v: want ≥ 1 worker, service time ≥ 0, queue limit ≥ 0", name, cp)
		}
	}
	for name, addr := range c.Upstreams {
		if !known(name) {
			return c, fmt.Errorf("shop: upstream %q: no such service", name)
		}
		if err := loopback(addr); err != nil {
			return c, fmt.Errorf("shop: upstream %s: %w", name, err)
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

func known(name string) bool {
	for _, n := range Names {
		if n == name {
			return true
		}
	}
	return false
}

// loopback checks that addr (host:port) is on the loopback interface: the
// shop listens and calls nowhere else.
func loopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("address %q: not a loopback address (127.0.0.0/8, ::1, localhost)", addr)
}
