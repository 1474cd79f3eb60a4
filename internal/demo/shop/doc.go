// Package shop is loadcap's reference system under test: an online shop
// whose services embed the shadow library, so that drills, end-to-end tests
// and `loadcap demo` have a real full-link path to push tagged traffic
// through.
//
//	s, err := shop.Start(ctx, shop.Config{})   // all-in-one on free loopback ports
//	defer s.Close()
//	fmt.Println(s.URL())                        // the gateway: http://127.0.0.1:PORT
//
// # Services
//
// A gateway (HTTP/JSON) in front of five gRPC services (shoppb):
//
//	GET  /api/products?page=N&size=M   product.List
//	GET  /api/products/{id}            product.Get
//	POST /api/login     {"user": 7}                          user.Login → {"token": …}
//	GET  /api/profile   Authorization: Bearer TOKEN          user.Profile
//	POST /api/cart/items {"user": 7, "product": 3, "quantity": 2}   cart.Add
//	GET  /api/cart/{user}                                    cart.Get
//	POST /api/checkout  {"user": 7, "items": [{"product": 3, "quantity": 1}]}
//	                    order.Checkout (no items: the cart's) → product.Get, payment.Pay → provider
//	POST /api/track     {"user": 7, "kind": "view", "product": 3}   user.Track → queue → consumer
//	GET  /healthz
//
// Errors are {"error": "…"} with 400, 401, 404, 409 (empty cart), 503
// (overloaded, or tagged work refused: then X-Loadcap-Shadow-Reject says
// why) or 504. The payment service charges through an external provider
// over HTTP (ProviderStub on loopback unless Config.ProviderURL is set);
// the user service also runs the consumer of the tracking queue.
//
// # Isolation
//
// Every hop propagates the shadow tag with the library: the gateway's
// middleware reads X-Loadcap-Shadow (or Baggage), the gRPC interceptors
// carry it between services, shadow.Inject and Policy.Extract carry it
// through the queue. Each service declares what it isolates:
//
//	cart     keys cart:*                       → shadow:cart:*
//	user     keys session:*, seq:events; topic events → events_shadow; tables events_*
//	order    table orders, key seq:orders      (not the table when Config.Misconfigured)
//	payment  table payments, key seq:payments; effect payment (mock for tagged requests);
//	         no allowed hosts, so a tagged request can call nothing outside
//	gateway, order: allowed hosts loopback (their upstreams)
//
// Rows written for tagged requests go to the shadow twins, carry the drill
// id in shadow_tag and have IDs at or above the ID offset (IDs come from
// sequences in the key-value store, whose tagged twins are shadow keys;
// shadow.ID adds the offset). Products and users are read-only reference
// data that both kinds of traffic read.
//
// # Tables
//
//	products (id, name, price_cents)                         reference, no twin
//	users    (id, name, email)                               reference, no twin
//	orders   (id, user_id, items, total_cents, status, created_ms, shadow_tag)   + shadow_orders
//	payments (id, order_id, user_id, amount_cents, provider_ref, created_ms, shadow_tag) + shadow_payments
//	events_YYYYMMDD (id, user_id, kind, product_id, at_ms, shadow_tag)          + shadow_events_YYYYMMDD
//
// The daily event tables (UTC day of the event) are created with their twin
// on first use. SQLite (modernc.org/sqlite, WAL, one writer connection) in
// Config.Dir or a temporary directory; PostgreSQL (pgx) or MySQL and
// MariaDB (go-sql-driver/mysql) with Config.DSN, in Config.Schema (a
// PostgreSQL schema, a MySQL database) when set. The shop writes no
// RETURNING, no ON CONFLICT on MySQL (INSERT IGNORE for the seed) and no DDL
// inside a transaction, so MySQL's implicit commit of DDL changes nothing. Carts, sessions, sequences and the queue live in
// the process, or in Redis with Config.RedisAddr (keys behind
// Config.KeyPrefix).
//
// # Capacity
//
// Each service has Workers and a ServiceTime (Config.Capacity, default
// DefaultCapacity, 8 × 2 ms): a request holds a worker for one service time
// and waits in line for one before; the real work runs after. So a
// service's capacity is exactly Workers / ServiceTime requests per second
// (Capacity.PerSec), and a request through the gateway to one service sees
// both services' limits.
//
// # Metrics
//
// Each service serves its own Prometheus registry on its metrics address
// (Endpoint.MetricsURL), every series labelled service="NAME":
//
//	shop_requests_total{method,route,shadow,code}      counter; method is the HTTP method or "grpc",
//	                                                   route the HTTP pattern or the gRPC method
//	shop_request_duration_seconds{method,route,shadow} histogram, waiting for a worker included
//	shop_request_errors_total{method,route,shadow}     HTTP 5xx, gRPC server-side codes
//	shop_requests_in_flight{shadow}                    gauge
//	shop_shadow_requests_total{shadow}                 the policy's Stats: requests by tag
//	shop_shadow_rejected_total{kind,resource}          the policy's Stats: refusals of tagged work
//	shop_capacity_workers, shop_capacity_service_time_seconds, shop_capacity_requests_per_second
//	shop_queue_waiting, shop_overload_rejected_total   the wait queue
//	shop_payment_charges_total{mode}                   payment: real or mock
//	shop_events_consumed_total{shadow,result}          user: the consumer
//	process_*, go_*                                    process CPU, memory, goroutines
//
// Everything listens on loopback only and stops with Start's context or
// Close.
package shop
