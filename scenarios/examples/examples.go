// Package examples holds the example files of scenarios/examples that
// loadcap itself needs at run time: the recording `loadcap demo` replays.
package examples

import _ "embed"

// ShopTraffic is shop-traffic.jsonl: 60 s of the reference shop's traffic
// (1458 requests, a flash-sale burst of 62/s), in loadcap's JSON lines.
//
//go:embed shop-traffic.jsonl
var ShopTraffic []byte
