package capture

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loadcap/loadcap/test/testkit"
)

func TestRoute(t *testing.T) {
	tests := []struct {
		name, method, path, want string
	}{
		{"numbers", "GET", "/orders/1234/items/7?x=1", "GET /orders/{id}/items/{id}"},
		{"uuid", "PUT", "/users/3f2b8c1e-9a4d-4c2b-8f7e-1d2c3b4a5e6f/avatar", "PUT /users/{id}/avatar"},
		{"object id and hash", "GET", "/o/507f1f77bcf86cd799439011/f/d41d8cd98f00b204e9800998ecf8427e", "GET /o/{id}/f/{id}"},
		{"words and versions stay", "GET", "/api/v2/products/red-shoes/", "GET /api/v2/products/red-shoes/"},
		{"hex word without digits stays", "GET", "/tags/deadbeefcafebabe", "GET /tags/deadbeefcafebabe"},
		{"dashed hex that is not a UUID stays", "GET", "/x/3f2b8c1e-9a4d-4c2b-8f7e-1d2c3b4a5e6", "GET /x/3f2b8c1e-9a4d-4c2b-8f7e-1d2c3b4a5e6"},
		{"root", "GET", "/?q=1", "GET /"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Route(tt.method, tt.path); got != tt.want {
				t.Errorf("Route = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestInspect(t *testing.T) {
	// 10 s of traffic: 5 req/s, with a burst of 40 in second 3.
	var b strings.Builder
	start := time.Date(2026, 11, 11, 10, 0, 0, 0, time.UTC)
	for s := 0; s < 10; s++ {
		n := 5
		if s == 3 {
			n = 40
		}
		for i := 0; i < n; i++ {
			ts := start.Add(time.Duration(s)*time.Second + time.Duration(i)*time.Second/time.Duration(n))
			path, status := fmt.Sprintf("/products/%d", i), 200
			if i%5 == 4 {
				path, status = fmt.Sprintf("/orders/%d/pay?x=%d", s, i), 502
			}
			method := "GET"
			if i%5 == 4 {
				method = "POST"
			}
			fmt.Fprintf(&b, `{"time":%q,"method":%q,"path":%q,"status":%d}`+"\n", ts.Format(time.RFC3339Nano), method, path, status)
		}
		b.WriteString("broken\n")
	}
	st, err := Inspect(NewJSONLReader(strings.NewReader(b.String()), "t.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Requests != 85 || st.Malformed.Count != 10 {
		t.Fatalf("requests %d, malformed %d; want 85, 10", st.Requests, st.Malformed.Count)
	}
	if pk := st.Peak(); pk.N != 40 || !pk.Time.Equal(start.Add(3*time.Second)) {
		t.Errorf("peak %+v, want 40 at 10:00:03", pk)
	}
	if got := fmt.Sprint(st.Routes()); got != "[{GET /products/{id} 68} {POST /orders/{id}/pay 17}]" {
		t.Errorf("routes %s", got)
	}
	if got := fmt.Sprint(st.Statuses()); got != "[{200 68} {502 17}]" {
		t.Errorf("statuses %s", got)
	}
	if st.Span() != 10*time.Second || st.MeanRatePerSec() != 8.5 {
		t.Errorf("span %s, mean %.2f/s", st.Span(), st.MeanRatePerSec())
	}
	var out bytes.Buffer
	if err := st.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	testkit.Golden(t, filepath.Join("testdata", "inspect.golden.txt"), out.Bytes())
}

// TestInspectBoundedRoutes: a recording with endless distinct paths does
// not grow the route table past MaxRoutes.
func TestInspectBoundedRoutes(t *testing.T) {
	st := NewStats()
	for i := 0; i < MaxRoutes+500; i++ {
		rec := Record{Time: time.Unix(int64(i), 0), Method: "GET", Path: fmt.Sprintf("/slug-%d-x", i)}
		st.Add(&rec)
	}
	routes := st.Routes()
	if len(routes) != MaxRoutes+1 || routes[0] != (Count{OtherRoutes, 500}) {
		t.Errorf("%d routes, first %v; want %d with (other routes) 500", len(routes), routes[0], MaxRoutes+1)
	}
}
