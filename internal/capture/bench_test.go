package capture

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
)

// combinedLines is a realistic mix of combined-log lines: routes with IDs,
// queries, long user agents, a referer now and then.
func combinedLines(n int) []byte {
	agents := []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
		"ShopApp/3.1 (iPhone; iOS 18.1; Scale/3.00)",
		"Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
		"curl/8.5.0",
	}
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		ref := "-"
		if i%3 == 0 {
			ref = "https://shop.example.com/products?page=" + fmt.Sprint(i%7)
		}
		var req string
		switch i % 4 {
		case 0:
			req = fmt.Sprintf("GET /products/%d?ref=home&utm_source=newsletter HTTP/1.1", i%5000)
		case 1:
			req = "POST /api/cart/items HTTP/1.1"
		case 2:
			req = fmt.Sprintf("GET /api/orders/%d/items HTTP/2.0", 100000+i)
		default:
			req = "GET /static/app.3f2b8c1e.js HTTP/1.1"
		}
		fmt.Fprintf(&b, `203.0.113.%d - - [11/Nov/2026:10:%02d:%02d +0100] "%s" %d %d "%s" "%s"`+"\n",
			i%250, (i/60)%60, i%60, req, []int{200, 201, 304, 404}[i%4], 1000+i%9000, ref, agents[i%len(agents)])
	}
	return b.Bytes()
}

// BenchmarkCombined reads combined-log lines into records on one goroutine
// and reports lines per second. Run:
//
//	go test -run '^$' -bench BenchmarkCombined -benchmem -cpu 1 ./internal/capture/
func BenchmarkCombined(b *testing.B) {
	const lines = 10_000
	data := combinedLines(lines)
	b.SetBytes(int64(len(data)) / lines)
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for n < b.N {
		r := NewLogReader(bytes.NewReader(data), "bench.log", nil)
		for n < b.N {
			_, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if r.Malformed().Count != 0 {
			b.Fatal(r.Malformed().Err())
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkHAR reads HAR entries with 2 KB bodies.
func BenchmarkHAR(b *testing.B) {
	body := strings.Repeat("z", 2000)
	var doc bytes.Buffer
	const entries = 2000
	doc.WriteString(`{"log":{"version":"1.2","entries":[`)
	for i := 0; i < entries; i++ {
		if i > 0 {
			doc.WriteString(",\n")
		}
		fmt.Fprintf(&doc, `{"startedDateTime":"2026-11-11T10:00:00Z","request":{"method":"POST","url":"http://h/p/%d","headers":[{"name":"Accept","value":"*/*"},{"name":"User-Agent","value":"Mozilla/5.0"}],"postData":{"text":"%s"}},"response":{"status":200,"headers":[],"content":{"text":"%s"}}}`, i, body, body)
	}
	doc.WriteString("]}}")
	data := doc.Bytes()
	b.SetBytes(int64(len(data)) / entries)
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for n < b.N {
		r := NewHARReader(bytes.NewReader(data), "bench.har")
		for n < b.N {
			_, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkRewriteApply rewrites a record with the fixture rules: a path
// ID, a query ID, a header prefix, headers set and added, a retarget.
func BenchmarkRewriteApply(b *testing.B) {
	rw, err := LoadRules("testdata/rewrite.yaml")
	if err != nil {
		b.Fatal(err)
	}
	base := Record{Method: "GET", Host: "shop.example.com", Path: "/api/v1/orders/1234/items?user_id=77&x=1",
		Header: []Header{{"User-Agent", "Mozilla/5.0"}, {"X-Cart-Id", "c-9"}, {"Accept", "*/*"}}}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		rec := base
		if !rw.Apply(&rec, i%3) {
			b.Fatal("dropped")
		}
	}
}

// BenchmarkRewriteApplyNoMatch is the common case of a replay: rules that
// do not touch the record.
func BenchmarkRewriteApplyNoMatch(b *testing.B) {
	rw, err := ParseRules("r.yaml", []byte("ids: [{path: '^/orders/(\\d+)', offset: 1000000000}]\ndrop: [{method: POST, path: '^/payments/'}]\n"))
	if err != nil {
		b.Fatal(err)
	}
	base := Record{Method: "GET", Path: "/products/red-shoes?ref=home", Header: []Header{{"Accept", "*/*"}}}
	b.ReportAllocs()
	for b.Loop() {
		rec := base
		rw.Apply(&rec, 1)
	}
}

// BenchmarkWriter writes (scrubbing first) combined-log records as JSONL.
func BenchmarkWriter(b *testing.B) {
	recs := readBench(b, combinedLines(1000))
	w := NewWriter(io.Discard)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := w.Write(&recs[i%len(recs)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkJSONL reads JSONL records (what a replay reads).
func BenchmarkJSONL(b *testing.B) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, rec := range readBench(b, combinedLines(2000)) {
		w.Write(&rec)
	}
	w.Flush()
	data := buf.Bytes()
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for n < b.N {
		r := NewJSONLReader(bytes.NewReader(data), "bench.jsonl")
		for n < b.N {
			if _, err := r.Next(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
			n++
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func readBench(b *testing.B, log []byte) []Record {
	var recs []Record
	r := NewLogReader(bytes.NewReader(log), "bench.log", nil)
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return recs
		}
		if err != nil {
			b.Fatal(err)
		}
		recs = append(recs, rec)
	}
}
