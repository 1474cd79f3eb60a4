package shadow_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/loadcap/loadcap/shadow"
)

// A service declares what it isolates once, puts the middleware in front
// of its handlers, and asks the request's context for every name, ID and
// side effect. Tagged requests get shadow names and the mock; untagged
// ones production names and the real call; a tagged request that would
// touch something undeclared is refused with 503.
func Example() {
	policy, err := shadow.NewPolicy(
		shadow.Tables("orders"),
		shadow.Keys("cart:*"),
		shadow.Effects("payment"),
		shadow.IDOffset(1_000_000_000),
		shadow.Logger(slog.New(slog.DiscardHandler)),
	)
	if err != nil {
		panic(err)
	}

	checkout := func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		table, err := shadow.Table(ctx, r.URL.Query().Get("table"))
		if shadow.Reject(w, err) {
			return
		}
		id, _ := shadow.ID(ctx, 42)
		cart, _ := shadow.Key(ctx, "cart:42")
		charge := func(context.Context) error { fmt.Fprint(w, "charged; "); return nil }
		pretend := func(context.Context) error { fmt.Fprint(w, "mock charge; "); return nil }
		if err := shadow.Effect(ctx, "payment", charge, pretend); shadow.Reject(w, err) {
			return
		}
		fmt.Fprintf(w, "INSERT INTO %s id %d, DEL %s", table, id, cart)
	}
	srv := httptest.NewServer(policy.Middleware(http.HandlerFunc(checkout)))
	defer srv.Close()

	get := func(drill, table string) {
		req, _ := http.NewRequest("GET", srv.URL+"/?table="+table, nil)
		if drill != "" {
			req.Header.Set(shadow.Header, drill) // what loadcap's generator sends
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		fmt.Printf("%d %s\n", resp.StatusCode, strings.TrimSpace(string(body)))
		if reason := resp.Header.Get(shadow.RejectHeader); reason != "" {
			fmt.Println("   ", shadow.RejectHeader+":", reason)
		}
	}
	get("", "orders")
	get("drill-1", "orders")
	get("drill-1", "payments")
	get("", "payments")

	st := policy.Stats()
	fmt.Println("tagged", st.Tagged, "untagged", st.Untagged, "refused", st.Rejected)
	// Output:
	// 200 charged; INSERT INTO orders id 42, DEL cart:42
	// 200 mock charge; INSERT INTO shadow_orders id 1000000042, DEL shadow:cart:42
	// 503 shadow: drill drill-1: table payments: not declared
	//     X-Loadcap-Shadow-Reject: table payments: not declared
	// 200 charged; INSERT INTO payments id 42, DEL cart:42
	// tagged 2 untagged 2 refused map[table payments:1]
}
