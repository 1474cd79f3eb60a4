package capture_test

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/loadcap/loadcap/internal/capture"
)

// The import pipeline: read a log, scrub, write JSON lines.
func Example() {
	log := `203.0.113.7 - - [11/Nov/2026:09:59:58 +0100] "GET /orders/42?token=s3cr3t HTTP/1.1" 200 512 "-" "ShopApp/3.1"
not a log line
`
	r := capture.NewLogReader(strings.NewReader(log), "access.log", nil)
	scrub, err := capture.NewScrubber(capture.ScrubConfig{Query: []string{"token"}})
	if err != nil {
		panic(err)
	}
	w := capture.NewWriter(os.Stdout, capture.WithScrubber(scrub))
	n, err := capture.Copy(w, r)
	if err != nil {
		panic(err)
	}
	fmt.Println(n, "written;", r.Malformed().Err())
	// Output:
	// {"time":"2026-11-11T08:59:58.000000000Z","method":"GET","path":"/orders/42","headers":[["User-Agent","ShopApp/3.1"]],"status":200,"source":"access.log:1"}
	// 1 written; access.log:2: malformed record: no " - " after $remote_addr, as the log format has
}

// Each amplify copy of a request gets IDs of its own.
func ExampleRewriter_Apply() {
	rules := `
host: 127.0.0.1:8080
scheme: http
headers:
  set: {Authorization: Bearer shadow-token}
drop:
  - {method: POST, path: '^/payments/callback'}
ids:
  - {path: '^/orders/(\d+)', offset: 1000000000}
  - {header: X-Cart-Id, prefix: shadow-}
`
	rw, err := capture.ParseRules("rewrite.yaml", []byte(rules))
	if err != nil {
		panic(err)
	}
	recorded := capture.Record{
		Time:   time.Date(2026, 11, 11, 9, 0, 0, 0, time.UTC),
		Method: "GET", Scheme: "https", Host: "shop.example.com", Path: "/orders/42",
		Header: []capture.Header{{Name: "X-Cart-Id", Value: "c-7"}, {Name: "Authorization", Value: "Bearer real"}},
	}
	for k := 0; k < 3; k++ {
		rec := recorded // a shallow copy: Apply leaves recorded alone
		rw.Apply(&rec, k)
		fmt.Println(rec.Scheme+"://"+rec.Host+rec.Path, rec.Header)
	}
	callback := capture.Record{Time: recorded.Time, Method: "POST", Path: "/payments/callback/psp"}
	fmt.Println("callback kept:", rw.Apply(&callback, 0))
	// Output:
	// http://127.0.0.1:8080/orders/1000000042 [{X-Cart-Id shadow-c-7} {Authorization Bearer shadow-token}]
	// http://127.0.0.1:8080/orders/2000000042 [{X-Cart-Id shadow1-c-7} {Authorization Bearer shadow-token}]
	// http://127.0.0.1:8080/orders/3000000042 [{X-Cart-Id shadow2-c-7} {Authorization Bearer shadow-token}]
	// callback kept: false
}
