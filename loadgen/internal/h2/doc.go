// Package h2 is the HTTP/2 client transport of the load engine's hot path,
// shared by gRPC unary calls (loadgen/grpcc) and HTTP requests with
// --http2 (loadgen/httpc).
//
// A Conn is one client connection carrying many concurrent streams (h2c
// with prior knowledge, or TLS with ALPN h2): x/net/http2's framer writes,
// our own frame reader and hpack's decoder read, and flow control,
// SETTINGS (MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE),
// PING and GOAWAY are handled here, once. A Slot is a pooled connection,
// redialled after it fails or goes away.
//
// The protocol layers on top own a Stream each (one request at a time) and
// reuse it: they pass an encoded request header block and a body
// (optionally after a prefix, as gRPC's message framing) to
// Conn.RoundTrip, and read the response as it is decoded through their
// Receiver (header fields, DATA). In steady state a round trip allocates
// nothing.
package h2
