// Package scenarios reads loadcap scenario files: YAML in k6's vocabulary
// that says what to send (a weighted mix of HTTP requests), how hard (k6
// scenarios and executors) and what must hold (k6 thresholds).
//
// # A complete file
//
//	target: http://127.0.0.1:8080          # base URL of every path: request
//	http:                                   # optional
//	  timeout: 60s                          # per request (default 60s, as k6)
//	  http2: false                          # h2 via ALPN over TLS, prior-knowledge h2c over http
//	  insecureSkipTLSVerify: false
//	  headers: {User-Agent: loadcap}        # sent with every request; generators allowed
//	data:                                   # CSV files, first line names the columns
//	  users: {file: data/users.csv, order: sequential}
//	seed: 42                                # seeds the random generators (default 1)
//	scenarios:
//	  browse:
//	    executor: constant-arrival-rate
//	    rate: 200
//	    timeUnit: 1s
//	    duration: 30s
//	    preAllocatedVUs: 50
//	    maxVUs: 200
//	    requests: [home, product]           # loadcap: this scenario's part of the mix (default: all)
//	requests:
//	  - name: home
//	    path: /
//	  - name: product
//	    path: /product/{{randInt 1 1000}}
//	    headers: {X-User: "{{users.user_id}}"}
//	    weight: 5
//	thresholds:
//	  http_req_duration: ["p(99)<200", "p(95)<100"]
//	  http_req_failed:
//	    - threshold: rate<0.01
//	      abortOnFail: true
//	      delayAbortEval: 10s
//	  "http_req_duration{name:product}": ["p(99)<300"]
//
// scenarios and requests are required. Every problem in a file is reported at
// once, each as "file:line:col: key.path: message"; `loadcap validate FILE`
// prints them and exits with code 104. YAML anchors, aliases and merge keys
// (<<: *defaults) may be used anywhere; top-level keys starting with x- are
// ignored, a place to define them:
//
//	x-open: &open {executor: constant-arrival-rate, timeUnit: 1s, preAllocatedVUs: 20, maxVUs: 200}
//	scenarios:
//	  browse: {<<: *open, rate: 100, duration: 1m}
//
// # target and http
//
// target is an absolute http or https URL: scheme, host, optional port
// (default 80 or 443) and optional base path, which is put in front of every
// request's path (target http://h:8080/api with path /users sends /api/users).
// It may not hold a query, a fragment, credentials or generators. target may
// be left out when every request gives an absolute url:.
//
// http.timeout bounds each request (a duration, see below). http.headers are
// sent with every request; a request's own header of the same name (compared
// without case) wins. loadcap adds no Content-Type of its own: set it in
// headers when you send a body.
//
// Durations are written as Go and k6 write them: 500ms, 30s, 1m30s, 2h, 1d12h.
// A bare number is milliseconds, as in k6.
//
// # scenarios
//
// scenarios is k6's scenarios option, with the same field names, defaults and
// validation (the fields are parsed and checked by k6's own code, so a file
// k6 accepts means what it means in k6). Scenarios run in parallel, each
// starting at its startTime. Supported executors:
//
//	constant-arrival-rate  rate, timeUnit (1s), duration, preAllocatedVUs, maxVUs
//	ramping-arrival-rate   startRate (0), timeUnit (1s), stages, preAllocatedVUs, maxVUs
//	constant-vus           vus (1), duration
//	ramping-vus            startVUs (1), stages, gracefulRampDown (30s)
//
// and every executor takes startTime (0s) and gracefulStop (30s). stages is a
// list of {duration, target}; the value moves linearly from the previous
// target to target over duration. The arrival-rate executors are the open
// model: rate requests start every timeUnit whatever the server's speed, at
// most maxVUs at a time (maxVUs defaults to preAllocatedVUs); a request that
// would exceed it is counted in dropped_iterations, never silently lost, and
// latency is measured from the moment the request was due. rate is an
// integer, as in k6: write 0.5/s as rate: 1 with timeUnit: 2s. The VU
// executors are the closed model: each VU sends its next request as soon as
// the previous one finished.
//
// One k6 iteration is one request, chosen from the mix by weight. So k6's
// exec, env, tags and options fields are refused, and the iteration-count
// executors (shared-iterations, per-vu-iterations) and externally-controlled
// are not supported yet. The loadcap-only key requests lists the request
// names this scenario sends (default: all of them), their weights still
// applying. Scenario names may hold letters, digits, _ and - (k6's rule).
//
// # requests
//
// requests is the weighted mix, a list of:
//
//	name     required, unique, letters, digits, _ . and -
//	method   default GET (GET, POST, ... in any case; other tokens are sent as written; not CONNECT)
//	path     joined to target, starting with /, ? or a generator, with its query: /search?q=x
//	url      instead of path: an absolute http(s) URL; only its path and query may hold generators
//	headers  a mapping of header name to value
//	body     a string; write JSON as a quoted or block string (body: |)
//	weight   a number > 0, default 1: the request's share of the mix is weight / sum of weights
//
// Exactly one of path and url is given.
//
// # gRPC requests
//
// A request with protocol: grpc is a gRPC call instead (unary, or server
// streaming: the stream is one request, its latency runs to the last
// message):
//
//	requests:
//	- name: place-order
//	  protocol: grpc
//	  target: 127.0.0.1:9090              # HOST:PORT; default: the host and port of the top-level target
//	  method: shop.Order/Place            # or shop.Order.Place
//	  message: '{"sku": "{{randInt 1 1000}}", "qty": 1}'   # the input message as JSON (protojson); default {}
//	  proto: protos/order.proto           # the schema, compiled at load time; or reflection: true
//	  import_paths: [protos, vendor]      # where its imports are found (default: the .proto's directory)
//	  metadata: {x-region: east}          # keys are lower-cased; values may hold generators
//	  timeout: 2s                         # the call's deadline (default: http.timeout)
//	  tls: true                           # default false, or true when target is https://; insecureSkipTLSVerify applies
//	  authority: shop.internal            # :authority (and TLS server name); default: target
//	  connections: 8                      # HTTP/2 connections to target (default min(VUs, 32))
//	  weight: 1
//
// proto, import_paths and the scenario file's other paths are relative to
// its directory. With proto:, the method and the message are checked when
// the file is loaded: an unknown service or method, a client-streaming
// method, and every field of message that does not fit the input type
// (unknown field, wrong JSON type, out-of-range number, unknown enum value,
// two members of a oneof) is reported with its path, e.g.
// requests[0].message.items[2].qty. With reflection: true the server is
// asked (reflection v1, else v1alpha) once before the run starts, and the
// same checks run then. Generated text in a message (CSV values, pick
// choices) is escaped as the inside of a JSON string. A message with
// generators is checked with sample values; one that does not fit with the
// values of a request fails that request (class other). gRPC status codes
// other than OK are error classes named grpc_ and the code in snake case
// (grpc_unavailable, grpc_deadline_exceeded, ...). path, url, headers and
// body are HTTP's and refused on a gRPC request; the shadow tag of drill_id
// travels as the metadata x-loadcap-shadow and baggage.
//
// # k6 scripts
//
// A file may take its requests from a k6 script instead: k6: {script:
// checkout.js} (relative to the file) with scenarios: and without
// requests:.
//
// # Generators
//
// path, url (after the host), header values and body may hold generators,
// written {{ ... }} (spaces allowed inside):
//
//	{{seq}}            1, 2, 3, ... one run-wide counter per occurrence, shared by all VUs
//	{{seq 1000}}       1000, 1001, ... (START may be negative)
//	{{randInt 1 100}}  a uniform integer in [MIN, MAX], both included
//	{{pick "a" "b"}}   one of the choices, uniformly; choices are "Go-quoted" or bare words
//	{{uuid}}           a random version 4 UUID
//	{{users.email}}    column email of a row of data source users
//	{{"{{"}}           a literal {{ (any "quoted string" is inserted as is)
//
// All references to one data source within one request use the same row, so
// {{users.user_id}} and {{users.token}} belong together across the path,
// headers and body. A sequential source hands rows out in file order through
// one cursor shared by all VUs and starts over after the last row; a random
// source picks any row. Random values come from each VU's own generator,
// seeded from seed and the VU number, so a run is reproducible.
//
// In a path or url, characters a URL may not hold (space, non-ASCII,
// control characters, " < > \ ^ ` { | }) are percent-encoded, in generated
// values and written text alike; reserved characters such as / ? & = % are
// kept, so a CSV column may hold a whole path. A # is refused (a fragment is
// never sent; write %23). In header values, control characters from CSV data
// are turned into spaces. Bodies are sent exactly as generated.
//
// # data
//
// data names CSV files: users: {file: data/users.csv, order: random}, or just
// users: data/users.csv. A relative file is found from the scenario file's
// directory. The first line names the columns (unique, no blanks or braces);
// every other line is a row, with the same number of fields (RFC 4180
// quoting). The file is held in memory (at most 1 GiB).
//
// # thresholds
//
// thresholds are k6's: a metric, optionally filtered by tags, and a list of
// expressions AGGREGATION OPERATOR VALUE, each a string or a mapping with
// threshold, abortOnFail and delayAbortEval (see k6's documentation). A
// failed threshold fails the run (exit code 99); abortOnFail stops it as soon
// as the threshold fails, but not before delayAbortEval of run time. Metrics:
//
//	http_req_duration   trend    p(N) avg min max med   milliseconds, measured from the request's due time (every request, gRPC calls too)
//	grpc_req_duration   trend    p(N) avg min max med   the same, of the gRPC calls alone
//	http_req_failed     rate     rate                   fraction of requests that failed (0.01 = 1%)
//	http_reqs           counter  count rate             requests made (rate: per second of the run)
//	dropped_iterations  counter  count rate             requests not sent because maxVUs were busy
//	data_sent           counter  count rate             bytes
//	data_received       counter  count rate             bytes
//
// The http_req_* metrics and the data counters count gRPC calls as
// requests too (a failed call has a status other than OK). Operators are
// < <= > >= == !=. Filters: {name:REQUEST} (any metric but
// dropped_iterations) and {scenario:NAME}, both naming something in the file,
// e.g. "http_req_duration{name:checkout,scenario:browse}".
package scenarios
