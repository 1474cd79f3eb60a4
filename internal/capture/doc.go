// Package capture reads recorded production traffic, scrubs it, rewrites it
// for a shadow drill, and summarizes it: the import and inspect side of
// loadcap's replay (`loadcap shadow import|inspect`, and the engine's replay
// source).
//
// # Readers
//
// Every reader streams a Reader: Next returns one Record at a time, and
// memory stays flat on multi-gigabyte input (one log line, HAR entry or
// GoReplay payload at a time, each bounded by WithMaxRecord). Records that
// cannot be read are skipped and counted in a Malformed report with the
// first MaxProblems file:line positions and reasons; Malformed.Err turns it
// into scenarios.Errors for --strict.
//
//	nginx     NewLogReader: nginx/Apache combined logs, or any nginx log_format (CompileLogFormat)
//	har       NewHARReader: HAR 1.2, entry by entry through encoding/json's token stream
//	goreplay  NewGoReplayReader: .gor files (type 1 requests; type 2 responses fill the status)
//	jsonl     NewJSONLReader: this package's JSON lines, what import writes
//
// NewReader and Open pick the reader by Format (or Detect), and decompress
// gzip input. A gzip stream that is cut short or broken ends the recording
// there: the records before the cut are returned, a record the cut splits
// is dropped, and Malformed lists the cut (Malformed.Cut: file, line, byte
// of the decompressed data, records kept), so --strict refuses it.
//
// All readers normalize the same way: times are UTC; header order and
// repeats are kept, but Host goes to Record.Host, and pseudo-headers
// (":authority"), framing headers (Content-Length, Transfer-Encoding),
// hop-by-hop headers (Connection, Keep-Alive, Proxy-Connection, TE, Trailer,
// Upgrade) and Expect are left out, since the replaying client frames and
// connects by itself; request-targets in absolute form are split into
// scheme, host and path; bytes a request-target may not hold (space,
// controls, non-ASCII) are percent-encoded; header values that are not
// UTF-8 get U+FFFD. A record that still fails Record.Validate is malformed.
//
// # JSON lines
//
// The normalized form is one JSON object per line (UTF-8, "\n"-terminated),
// in file order, fields always in this order:
//
//	{"time":"2026-11-11T09:59:58.250000000Z","method":"POST","scheme":"https","host":"shop.example.com",
//	 "path":"/api/orders?src=app","headers":[["Content-Type","application/json"],["Accept","*/*"]],
//	 "body":"{\"sku\":42}","status":201,"source":"access.log:17"}
//
//	time         required. RFC 3339, UTC, always nine fraction digits (so text order is time order);
//	             any RFC 3339 time is read
//	method       required. an HTTP token
//	scheme       "http" or "https"; absent when the recording does not say
//	host         the authority as recorded, host[:port]; absent when unknown
//	path         required. the request-target: path and query, starting with "/"
//	headers      [name, value] pairs in recorded order, names may repeat; absent when none
//	body         the body as a string when it is valid UTF-8 ...
//	body_base64  ... else standard base64 with padding (RFC 4648 §4); at most one of the two, absent when empty
//	status       the recorded response status; absent when unknown
//	source       where the record was first read, "file:line"; kept through re-imports
//
// Readers ignore unknown fields. The Writer produces exactly this form and
// is deterministic: the same records give the same bytes.
//
// # Scrubbing
//
// A Writer scrubs every record before writing it (WithoutScrubbing turns
// that off): Authorization, Proxy-Authorization, Cookie and Set-Cookie, plus
// the headers, JSON body fields ("password", "card.number") and query
// parameters a ScrubConfig names, are removed, or replaced by
// ScrubConfig.Replace.
//
// # Rewrite rules
//
// A Rewriter applies a YAML rule file to records before replay (LoadRules,
// ParseRules). Every key is optional; errors are reported all at once with
// file:line:col and the key path:
//
//	host: 127.0.0.1:8080            # every request goes here (host[:port]) ...
//	hosts:                          # ... except recorded hosts mapped one by one
//	  api.shop.example: 127.0.0.1:8081
//	scheme: http
//	paths:                          # in order, over the path without the query (Go regexp; $1, ${name})
//	  - {match: '^/api/v1/', replace: /api/v2/}
//	headers:
//	  drop: [X-Forwarded-For]       # removed
//	  set: {Authorization: Bearer shadow-token}   # replaces every recorded value
//	  add: {X-Replay: loadcap}      # appended
//	drop:                           # routes never replayed: method, path regexp, or both
//	  - {method: POST, path: '^/payments/callback'}
//	ids:                            # remap IDs into the shadow ID space
//	  - path: '^/orders/(\d+)'      # the group named id, else group 1, else the whole match
//	    offset: 1000000000          # id → offset + copy×stride + id
//	    stride: 1000000000          # default: offset
//	  - {query: user_id, offset: 1000000000}
//	  - {header: X-Cart-Id, prefix: shadow-}        # id → shadow-id (copy k ≥ 1: shadow<k>-id)
//	  - {field: order.items.sku, match: '^SKU-(\d+)$', offset: 5000000}
//
// Apply(rec, copy) runs, in order: drop rules (on the recorded method and
// path), ID remapping, path rewrites, host and scheme, headers. ID rules
// look in the path, a query parameter, a header, or a JSON body field
// (dotted path; arrays on the way and arrays of IDs are walked through); a
// match: pattern picks the ID out of a value, else the whole value is the
// ID. In offset mode an ID must be a decimal integer in [0, stride), so
// amplify copy k maps into [offset+k×stride, offset+(k+1)×stride), disjoint
// from every other copy and, when real IDs stay below offset, from real
// IDs. In prefix mode copy k ≥ 1 puts k before the prefix's last character
// (which must not be a digit), so copies' prefixes are never prefixes of one
// another. A record whose ID cannot be mapped is dropped, never sent with a
// real ID (Rewriter.Stats counts it).
//
// # Inspect
//
// Stats summarizes a recording as it streams: requests by Route (method and
// path template, numeric and UUID segments collapsed to {id}), by method and
// by status, the rate per second over time, the peak second and the
// malformed records; WriteText prints them as a table.
package capture
