package shop

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"sync"

	"github.com/loadcap/loadcap/internal/demo/shop/shoppb"
	"github.com/loadcap/loadcap/shadow"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Key spaces and topics. Sequences hand out row IDs: the tagged twin of a
// sequence is a shadow key, and shadow.ID moves its values into the shadow
// range.
const (
	keyCart     = "cart:"    // + user id: hash product id → quantity
	keySession  = "session:" // + token: user id
	seqOrders   = "seq:orders"
	seqPayments = "seq:payments"
	seqEvents   = "seq:events"
	topicEvents = "events"
)

// env is what the services of one process share.
type env struct {
	cfg Config
	db  *database
	kv  kv
	q   queue
}

// nextID returns the next ID of the sequence seq for ctx's work: the
// shadow sequence and the shadow ID range when ctx is tagged.
func (e *env) nextID(ctx context.Context, seq string) (int64, error) {
	key, err := shadow.Key(ctx, seq)
	if err != nil {
		return 0, err
	}
	n, err := e.kv.Incr(ctx, key)
	if err != nil {
		return 0, status.Errorf(codes.Unavailable, "sequence %s: %v", key, err)
	}
	return shadow.ID(ctx, n)
}

// syncSeq raises the sequence seq, and its shadow twin, above the IDs
// already in table and its twin, so that a restart with an empty key-value
// store does not hand out IDs again.
func (e *env) syncSeq(ctx context.Context, seq, table string) error {
	n, err := e.db.maxID(ctx, table)
	if err != nil {
		return fmt.Errorf("shop: sequence of %s: %w", table, err)
	}
	if err := e.kv.Raise(ctx, seq, n); err != nil {
		return fmt.Errorf("shop: sequence of %s: %w", table, err)
	}
	if n, err = e.db.maxID(ctx, shadow.DefaultTableNaming.Shadow(table)); err != nil {
		return fmt.Errorf("shop: sequence of %s: %w", table, err)
	}
	if n >= e.cfg.IDOffset {
		n -= e.cfg.IDOffset
	}
	if err := e.kv.Raise(ctx, shadow.DefaultKeyNaming.Shadow(seq), n); err != nil {
		return fmt.Errorf("shop: sequence of %s: %w", table, err)
	}
	return nil
}

// internal wraps a storage failure as a gRPC Internal error.
func internal(what string, err error) error {
	var ie *shadow.IsolationError
	if errors.As(err, &ie) {
		return err
	}
	if s, ok := status.FromError(err); ok && s.Code() != codes.Unknown {
		return err
	}
	return status.Errorf(codes.Internal, "%s: %v", what, err)
}

// productService serves the catalogue from memory, loaded at start: it is
// read-only reference data, the same for tagged and untagged requests.
type productService struct {
	shoppb.UnimplementedProductsServer
	byID map[int64]*shoppb.Product
	list []*shoppb.Product // by id
}

func newProductService(ctx context.Context, e *env) (*productService, error) {
	rows, err := e.db.read.QueryContext(ctx, `SELECT id, name, price_cents FROM `+tableProducts+` ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("shop: load products: %w", err)
	}
	defer rows.Close()
	s := &productService{byID: map[int64]*shoppb.Product{}}
	for rows.Next() {
		p := &shoppb.Product{}
		if err := rows.Scan(&p.Id, &p.Name, &p.PriceCents); err != nil {
			return nil, fmt.Errorf("shop: load products: %w", err)
		}
		s.byID[p.Id] = p
		s.list = append(s.list, p)
	}
	return s, rows.Err()
}

func (s *productService) List(_ context.Context, r *shoppb.ListProductsRequest) (*shoppb.ListProductsResponse, error) {
	size := int(r.PageSize)
	if size <= 0 || size > 100 {
		size = DefaultPageSize
	}
	page := max(int(r.Page), 1)
	lo := min((page-1)*size, len(s.list))
	hi := min(lo+size, len(s.list))
	return &shoppb.ListProductsResponse{Products: s.list[lo:hi]}, nil
}

func (s *productService) Get(_ context.Context, r *shoppb.GetProductRequest) (*shoppb.Product, error) {
	p, ok := s.byID[r.Id]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no product %d", r.Id)
	}
	return p, nil
}

// cartService keeps carts in the key-value store, under shadow keys for
// tagged requests.
type cartService struct {
	shoppb.UnimplementedCartsServer
	e *env
}

func (s *cartService) key(ctx context.Context, user int64) (string, error) {
	if user <= 0 {
		return "", status.Errorf(codes.InvalidArgument, "user %d: want an id ≥ 1", user)
	}
	return shadow.Key(ctx, keyCart+strconv.FormatInt(user, 10))
}

func (s *cartService) Add(ctx context.Context, r *shoppb.AddItemRequest) (*shoppb.Cart, error) {
	key, err := s.key(ctx, r.UserId)
	if err != nil {
		return nil, err
	}
	if r.Item == nil || r.Item.ProductId <= 0 || r.Item.Quantity <= 0 || r.Item.Quantity > 1000 {
		return nil, status.Error(codes.InvalidArgument, "item: want a product id ≥ 1 and a quantity of 1 to 1000")
	}
	if err := s.e.kv.HIncr(ctx, key, strconv.FormatInt(r.Item.ProductId, 10), r.Item.Quantity); err != nil {
		return nil, internal("cart", err)
	}
	return s.read(ctx, key, r.UserId)
}

func (s *cartService) Get(ctx context.Context, r *shoppb.GetCartRequest) (*shoppb.Cart, error) {
	key, err := s.key(ctx, r.UserId)
	if err != nil {
		return nil, err
	}
	return s.read(ctx, key, r.UserId)
}

func (s *cartService) Clear(ctx context.Context, r *shoppb.GetCartRequest) (*shoppb.Cart, error) {
	key, err := s.key(ctx, r.UserId)
	if err != nil {
		return nil, err
	}
	if err := s.e.kv.Del(ctx, key); err != nil {
		return nil, internal("cart", err)
	}
	return &shoppb.Cart{UserId: r.UserId}, nil
}

func (s *cartService) read(ctx context.Context, key string, user int64) (*shoppb.Cart, error) {
	h, err := s.e.kv.HGetAll(ctx, key)
	if err != nil {
		return nil, internal("cart", err)
	}
	c := &shoppb.Cart{UserId: user}
	for f, v := range h {
		p, err1 := strconv.ParseInt(f, 10, 64)
		q, err2 := strconv.ParseInt(v, 10, 64)
		if err1 != nil || err2 != nil || q <= 0 {
			continue
		}
		c.Items = append(c.Items, &shoppb.Item{ProductId: p, Quantity: q})
	}
	sort.Slice(c.Items, func(i, j int) bool { return c.Items[i].ProductId < c.Items[j].ProductId })
	return c, nil
}

// orderService checks out: it prices the items, writes the order, has the
// payment service charge it, and marks it paid.
type orderService struct {
	shoppb.UnimplementedOrdersServer
	e        *env
	products shoppb.ProductsClient
	carts    shoppb.CartsClient
	payments shoppb.PaymentsClient
}

func (s *orderService) Checkout(ctx context.Context, r *shoppb.CheckoutRequest) (*shoppb.Order, error) {
	if r.UserId <= 0 {
		return nil, status.Errorf(codes.InvalidArgument, "user %d: want an id ≥ 1", r.UserId)
	}
	// Isolation first: a tagged request that cannot be isolated is refused
	// before anything is read, written or charged.
	table, err := shadow.Table(ctx, tableOrders)
	if err != nil {
		return nil, err
	}
	items := r.Items
	fromCart := len(items) == 0
	if fromCart {
		c, err := s.carts.Get(ctx, &shoppb.GetCartRequest{UserId: r.UserId})
		if err != nil {
			return nil, err
		}
		if items = c.Items; len(items) == 0 {
			return nil, status.Errorf(codes.FailedPrecondition, "the cart of user %d is empty", r.UserId)
		}
	}
	var total, count int64
	for _, it := range items {
		if it.Quantity <= 0 || it.Quantity > 1000 {
			return nil, status.Errorf(codes.InvalidArgument, "product %d: quantity %d: want 1 to 1000", it.ProductId, it.Quantity)
		}
		p, err := s.products.Get(ctx, &shoppb.GetProductRequest{Id: it.ProductId})
		if err != nil {
			return nil, err
		}
		total += p.PriceCents * it.Quantity
		count += it.Quantity
	}
	id, err := s.e.nextID(ctx, seqOrders)
	if err != nil {
		return nil, err
	}
	now := s.e.cfg.Now().UnixMilli()
	if _, err := s.e.db.write.ExecContext(ctx, s.e.db.bind(`INSERT INTO `+table+
		` (id, user_id, items, total_cents, status, created_ms, shadow_tag) VALUES ($1, $2, $3, $4, 'pending', $5, $6)`),
		id, r.UserId, count, total, now, shadow.SQLTag(ctx)); err != nil {
		return nil, internal("insert order", err)
	}
	o := &shoppb.Order{Id: id, UserId: r.UserId, TotalCents: total, Status: "paid"}
	pay, perr := s.payments.Pay(ctx, &shoppb.PayRequest{OrderId: id, UserId: r.UserId, AmountCents: total})
	if perr != nil {
		o.Status = "payment_failed"
	} else {
		o.PaymentId, o.ProviderRef = pay.Id, pay.ProviderRef
	}
	// The order row is written whatever the payment did; WithoutCancel so
	// that a caller giving up does not leave it pending.
	if _, err := s.e.db.write.ExecContext(context.WithoutCancel(ctx), s.e.db.bind(`UPDATE `+table+` SET status = $1 WHERE id = $2`), o.Status, id); err != nil {
		return nil, internal("update order", err)
	}
	if perr != nil {
		return nil, perr
	}
	if fromCart {
		if _, err := s.carts.Clear(ctx, &shoppb.GetCartRequest{UserId: r.UserId}); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// paymentService charges through the provider, or through the mock for
// tagged requests (shadow.Effect), and records the payment.
type paymentService struct {
	shoppb.UnimplementedPaymentsServer
	e           *env
	client      *http.Client // through the policy's Transport
	providerURL string
	charges     *prometheus.CounterVec // mode
}

func (s *paymentService) Pay(ctx context.Context, r *shoppb.PayRequest) (*shoppb.Payment, error) {
	if r.OrderId <= 0 || r.AmountCents < 0 {
		return nil, status.Error(codes.InvalidArgument, "want an order id ≥ 1 and an amount ≥ 0")
	}
	table, err := shadow.Table(ctx, tablePayments)
	if err != nil {
		return nil, err
	}
	id, err := s.e.nextID(ctx, seqPayments)
	if err != nil {
		return nil, err
	}
	var ref string
	real := func(ctx context.Context) error {
		s.charges.WithLabelValues("real").Inc()
		var err error
		ref, err = charge(ctx, s.client, s.providerURL, chargeRequest{OrderID: r.OrderId, PaymentID: id, AmountCents: r.AmountCents})
		return err
	}
	mock := func(context.Context) error {
		s.charges.WithLabelValues("mock").Inc()
		ref = "mock_" + strconv.FormatInt(id, 10)
		return nil
	}
	if err := shadow.Effect(ctx, "payment", real, mock); err != nil {
		var ie *shadow.IsolationError
		if errors.As(err, &ie) {
			return nil, err
		}
		return nil, status.Errorf(codes.Unavailable, "payment provider: %v", err)
	}
	if _, err := s.e.db.write.ExecContext(ctx, s.e.db.bind(`INSERT INTO `+table+
		` (id, order_id, user_id, amount_cents, provider_ref, created_ms, shadow_tag) VALUES ($1, $2, $3, $4, $5, $6, $7)`),
		id, r.OrderId, r.UserId, r.AmountCents, ref, s.e.cfg.Now().UnixMilli(), shadow.SQLTag(ctx)); err != nil {
		return nil, internal("insert payment", err)
	}
	return &shoppb.Payment{Id: id, ProviderRef: ref}, nil
}

// userService logs users in, reads profiles and queues behaviour events;
// its consumer writes the events to the daily tables.
type userService struct {
	shoppb.UnimplementedUsersServer
	e *env
}

func (s *userService) user(ctx context.Context, id int64) (*shoppb.User, error) {
	u := &shoppb.User{}
	err := s.e.db.read.QueryRowContext(ctx, s.e.db.bind(`SELECT id, name, email FROM `+tableUsers+` WHERE id = $1`), id).Scan(&u.Id, &u.Name, &u.Email)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, status.Errorf(codes.NotFound, "no user %d", id)
	}
	if err != nil {
		return nil, internal("user", err)
	}
	return u, nil
}

func (s *userService) Login(ctx context.Context, r *shoppb.LoginRequest) (*shoppb.Session, error) {
	if _, err := s.user(ctx, r.UserId); err != nil {
		return nil, err
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	key, err := shadow.Key(ctx, keySession+token)
	if err != nil {
		return nil, err
	}
	if err := s.e.kv.Set(ctx, key, strconv.FormatInt(r.UserId, 10), SessionTTL); err != nil {
		return nil, internal("session", err)
	}
	return &shoppb.Session{Token: token, UserId: r.UserId}, nil
}

func (s *userService) Profile(ctx context.Context, r *shoppb.ProfileRequest) (*shoppb.User, error) {
	if r.Token == "" {
		return nil, status.Error(codes.Unauthenticated, "no session token")
	}
	key, err := shadow.Key(ctx, keySession+r.Token)
	if err != nil {
		return nil, err
	}
	v, ok, err := s.e.kv.Get(ctx, key)
	if err != nil {
		return nil, internal("session", err)
	}
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "no such session")
	}
	id, _ := strconv.ParseInt(v, 10, 64)
	return s.user(ctx, id)
}

// event is the body of a tracking message.
type event struct {
	UserID    int64  `json:"user_id"`
	Kind      string `json:"kind"`
	ProductID int64  `json:"product_id,omitempty"`
	AtMS      int64  `json:"at_ms"`
}

func (s *userService) Track(ctx context.Context, r *shoppb.TrackRequest) (*shoppb.TrackResponse, error) {
	if r.UserId <= 0 || r.Kind == "" || len(r.Kind) > 64 {
		return nil, status.Error(codes.InvalidArgument, "want a user id ≥ 1 and a kind of 1 to 64 bytes")
	}
	topic, err := shadow.Topic(ctx, topicEvents)
	if err != nil {
		return nil, err
	}
	body, _ := json.Marshal(event{UserID: r.UserId, Kind: r.Kind, ProductID: r.ProductId, AtMS: s.e.cfg.Now().UnixMilli()})
	m := message{Headers: map[string]string{}, Body: body}
	shadow.Inject(ctx, shadow.MapCarrier(m.Headers))
	if err := s.e.q.Publish(ctx, topic, m); err != nil {
		if errors.Is(err, errQueueFull) {
			return nil, status.Error(codes.ResourceExhausted, err.Error())
		}
		return nil, internal("publish", err)
	}
	return &shoppb.TrackResponse{Topic: topic}, nil
}

// consumer takes events off the queue and its shadow twin and writes each
// to the daily table of its day, the shadow twin for tagged ones.
type consumer struct {
	e        *env
	p        *shadow.Policy
	consumed *prometheus.CounterVec // shadow, result
	seqMu    sync.Mutex
	seqDone  map[string]bool // daily tables whose sequences are synced
}

// run consumes until ctx ends.
func (c *consumer) run(ctx context.Context) {
	topics := []string{topicEvents, shadow.DefaultTopicNaming.Shadow(topicEvents)}
	for ctx.Err() == nil {
		topic, m, ok, err := c.e.q.Pop(ctx, topics, popWait)
		if err != nil {
			if ctx.Err() == nil {
				c.e.cfg.Logger.Warn("shop: queue", "err", err)
				sleepCtx(ctx, popWait)
			}
			continue
		}
		if ok {
			c.handle(ctx, topic, m)
		}
	}
}

func (c *consumer) handle(ctx context.Context, topic string, m message) {
	mctx, err := c.p.Extract(ctx, shadow.MapCarrier(m.Headers))
	sh := shadowLabel(mctx)
	result := "stored"
	defer func() { c.consumed.WithLabelValues(sh, result).Inc() }()
	if err != nil {
		result = "rejected" // unreadable tag: never processed as production work
		return
	}
	// A message must sit on the topic its tag names; anything else is
	// dropped rather than written where it does not belong.
	if want, err := shadow.Topic(mctx, topicEvents); err != nil || want != topic {
		result = "misrouted"
		c.e.cfg.Logger.Warn("shop: event on the wrong topic, dropped", "topic", topic, "shadow", sh)
		return
	}
	var ev event
	if err := json.Unmarshal(m.Body, &ev); err != nil {
		result = "invalid"
		return
	}
	if err := c.store(mctx, ev); err != nil {
		result = "error"
		if !errors.Is(err, shadow.ErrNotIsolated) {
			c.e.cfg.Logger.Warn("shop: store event", "err", err)
		}
	}
}

func (c *consumer) store(ctx context.Context, ev event) error {
	day, err := c.e.db.eventsTable(ctx, eventDay(ev.AtMS))
	if err != nil {
		return err
	}
	if err := c.syncSeq(ctx, day); err != nil {
		return err
	}
	table, err := shadow.Table(ctx, day)
	if err != nil {
		return err
	}
	id, err := c.e.nextID(ctx, seqEvents)
	if err != nil {
		return err
	}
	var product sql.NullInt64
	if ev.ProductID > 0 {
		product = sql.NullInt64{Int64: ev.ProductID, Valid: true}
	}
	_, err = c.e.db.write.ExecContext(ctx, c.e.db.bind(`INSERT INTO `+table+
		` (id, user_id, kind, product_id, at_ms, shadow_tag) VALUES ($1, $2, $3, $4, $5, $6)`),
		id, ev.UserID, ev.Kind, product, ev.AtMS, shadow.SQLTag(ctx))
	return err
}

// syncSeq syncs the events sequence with a daily table the first time this
// process writes to it.
func (c *consumer) syncSeq(ctx context.Context, table string) error {
	c.seqMu.Lock()
	defer c.seqMu.Unlock()
	if c.seqDone[table] {
		return nil
	}
	if err := c.e.syncSeq(context.WithoutCancel(ctx), seqEvents, table); err != nil {
		return err
	}
	c.seqDone[table] = true
	return nil
}
