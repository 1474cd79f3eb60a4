package shop

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/loadcap/loadcap/internal/demo/shop/shoppb"
	"github.com/loadcap/loadcap/shadow"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// gatewayTimeout bounds each API request, its gRPC calls included.
const gatewayTimeout = 10 * time.Second

// gateway is the shop's HTTP/JSON API in front of the gRPC services.
type gateway struct {
	products shoppb.ProductsClient
	carts    shoppb.CartsClient
	orders   shoppb.OrdersClient
	users    shoppb.UsersClient
}

// Wire types of the JSON API.
type (
	apiProduct struct {
		ID         int64  `json:"id"`
		Name       string `json:"name"`
		PriceCents int64  `json:"price_cents"`
	}
	apiItem struct {
		Product  int64 `json:"product"`
		Quantity int64 `json:"quantity"`
	}
	apiCart struct {
		User  int64     `json:"user"`
		Items []apiItem `json:"items"`
	}
	apiOrder struct {
		ID          int64  `json:"id"`
		User        int64  `json:"user"`
		TotalCents  int64  `json:"total_cents"`
		Status      string `json:"status"`
		Payment     int64  `json:"payment"`
		ProviderRef string `json:"provider_ref"`
	}
)

// handler returns the API behind p's middleware; every route is counted in
// m and held to l.
func (g *gateway) handler(p *shadow.Policy, m *metrics, l *limiter) http.Handler {
	mux := http.NewServeMux()
	for _, r := range []struct {
		pattern string
		h       http.HandlerFunc
	}{
		{"GET /api/products", g.listProducts},
		{"GET /api/products/{id}", g.getProduct},
		{"POST /api/login", g.login},
		{"GET /api/profile", g.profile},
		{"POST /api/cart/items", g.addToCart},
		{"GET /api/cart/{user}", g.getCart},
		{"POST /api/checkout", g.checkout},
		{"POST /api/track", g.track},
	} {
		_, path, _ := strings.Cut(r.pattern, " ")
		mux.Handle(r.pattern, route(m, l, path, r.h))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	return p.Middleware(mux)
}

// fail answers err of a gRPC call: a refusal of tagged work as 503 with
// the reason header (shadow.Reject), other errors by their code.
func fail(w http.ResponseWriter, err error) {
	if shadow.Reject(w, err) {
		return
	}
	st, _ := status.FromError(err)
	code := http.StatusInternalServerError
	switch st.Code() {
	case codes.InvalidArgument, codes.OutOfRange:
		code = http.StatusBadRequest
	case codes.NotFound:
		code = http.StatusNotFound
	case codes.FailedPrecondition, codes.AlreadyExists:
		code = http.StatusConflict
	case codes.Unauthenticated:
		code = http.StatusUnauthorized
	case codes.PermissionDenied:
		code = http.StatusForbidden
	case codes.ResourceExhausted, codes.Unavailable:
		code = http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		code = http.StatusGatewayTimeout
	case codes.Canceled:
		code = 499 // the client went away; nobody reads this
	}
	writeError(w, code, st.Message())
}

// decode reads a JSON body of at most 64 KiB into v; false when it
// answered 400.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "body: "+err.Error())
		return false
	}
	return true
}

func callCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), gatewayTimeout)
}

func pathID(w http.ResponseWriter, r *http.Request, name string) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue(name), 10, 64)
	if err != nil || id <= 0 {
		writeError(w, http.StatusBadRequest, name+": want an integer ≥ 1")
		return 0, false
	}
	return id, true
}

func product(p *shoppb.Product) apiProduct {
	return apiProduct{ID: p.Id, Name: p.Name, PriceCents: p.PriceCents}
}

func cart(c *shoppb.Cart) apiCart {
	out := apiCart{User: c.UserId, Items: []apiItem{}}
	for _, it := range c.Items {
		out.Items = append(out.Items, apiItem{Product: it.ProductId, Quantity: it.Quantity})
	}
	return out
}

func (g *gateway) listProducts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page, _ := strconv.Atoi(q.Get("page"))
	size, _ := strconv.Atoi(q.Get("size"))
	ctx, cancel := callCtx(r)
	defer cancel()
	resp, err := g.products.List(ctx, &shoppb.ListProductsRequest{Page: int32(page), PageSize: int32(size)})
	if err != nil {
		fail(w, err)
		return
	}
	out := make([]apiProduct, 0, len(resp.Products))
	for _, p := range resp.Products {
		out = append(out, product(p))
	}
	writeJSON(w, http.StatusOK, map[string]any{"products": out})
}

func (g *gateway) getProduct(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	ctx, cancel := callCtx(r)
	defer cancel()
	p, err := g.products.Get(ctx, &shoppb.GetProductRequest{Id: id})
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, product(p))
}

func (g *gateway) login(w http.ResponseWriter, r *http.Request) {
	var in struct {
		User int64 `json:"user"`
	}
	if !decode(w, r, &in) {
		return
	}
	ctx, cancel := callCtx(r)
	defer cancel()
	s, err := g.users.Login(ctx, &shoppb.LoginRequest{UserId: in.User})
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"token": s.Token, "user": s.UserId})
}

func (g *gateway) profile(w http.ResponseWriter, r *http.Request) {
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	ctx, cancel := callCtx(r)
	defer cancel()
	u, err := g.users.Profile(ctx, &shoppb.ProfileRequest{Token: strings.TrimSpace(token)})
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": u.Id, "name": u.Name, "email": u.Email})
}

func (g *gateway) addToCart(w http.ResponseWriter, r *http.Request) {
	var in struct {
		User     int64 `json:"user"`
		Product  int64 `json:"product"`
		Quantity int64 `json:"quantity"`
	}
	if !decode(w, r, &in) {
		return
	}
	if in.Quantity == 0 {
		in.Quantity = 1
	}
	ctx, cancel := callCtx(r)
	defer cancel()
	c, err := g.carts.Add(ctx, &shoppb.AddItemRequest{UserId: in.User, Item: &shoppb.Item{ProductId: in.Product, Quantity: in.Quantity}})
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, cart(c))
}

func (g *gateway) getCart(w http.ResponseWriter, r *http.Request) {
	user, ok := pathID(w, r, "user")
	if !ok {
		return
	}
	ctx, cancel := callCtx(r)
	defer cancel()
	c, err := g.carts.Get(ctx, &shoppb.GetCartRequest{UserId: user})
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, cart(c))
}

func (g *gateway) checkout(w http.ResponseWriter, r *http.Request) {
	var in struct {
		User  int64     `json:"user"`
		Items []apiItem `json:"items"`
	}
	if !decode(w, r, &in) {
		return
	}
	req := &shoppb.CheckoutRequest{UserId: in.User}
	for _, it := range in.Items {
		req.Items = append(req.Items, &shoppb.Item{ProductId: it.Product, Quantity: it.Quantity})
	}
	ctx, cancel := callCtx(r)
	defer cancel()
	o, err := g.orders.Checkout(ctx, req)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, apiOrder{ID: o.Id, User: o.UserId, TotalCents: o.TotalCents,
		Status: o.Status, Payment: o.PaymentId, ProviderRef: o.ProviderRef})
}

func (g *gateway) track(w http.ResponseWriter, r *http.Request) {
	var in struct {
		User    int64  `json:"user"`
		Kind    string `json:"kind"`
		Product int64  `json:"product"`
	}
	if !decode(w, r, &in) {
		return
	}
	ctx, cancel := callCtx(r)
	defer cancel()
	if _, err := g.users.Track(ctx, &shoppb.TrackRequest{UserId: in.User, Kind: in.Kind, ProductId: in.Product}); err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]bool{"queued": true})
}

// errNoUpstream is the error of a gateway or order service started without
// the address of a service it calls.
var errNoUpstream = errors.New("no address")
