package shop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// kv is the key-value store of carts, sessions and ID sequences: Redis or a
// map in the process. Keys arrive already isolated (shadow.Key). Safe for
// concurrent use.
type kv interface {
	// Get returns the value of key and whether it exists.
	Get(ctx context.Context, key string) (string, bool, error)
	// Set sets key to value for ttl (0: for ever).
	Set(ctx context.Context, key, value string, ttl time.Duration) error
	Del(ctx context.Context, key string) error
	// Incr adds one to the integer at key (0 when missing) and returns it.
	Incr(ctx context.Context, key string) (int64, error)
	// Raise sets the integer at key to n when it is below n.
	Raise(ctx context.Context, key string, n int64) error
	// HIncr adds by to field of the hash at key.
	HIncr(ctx context.Context, key, field string, by int64) error
	// HGetAll returns the hash at key (empty when missing).
	HGetAll(ctx context.Context, key string) (map[string]string, error)
}

// queue is the tracking queue: Redis lists or channels in the process.
// Topics arrive already isolated (shadow.Topic).
type queue interface {
	Publish(ctx context.Context, topic string, m message) error
	// Pop waits at most wait for a message on one of topics; ok is false
	// when none came.
	Pop(ctx context.Context, topics []string, wait time.Duration) (topic string, m message, ok bool, err error)
}

// message is one queued event: headers (the shadow tag among them,
// shadow.Inject) and a JSON body.
type message struct {
	Headers map[string]string `json:"headers,omitempty"`
	Body    json.RawMessage   `json:"body"`
}

// errQueueFull is returned by the in-process queue past maxQueued.
var errQueueFull = errors.New("queue full")

// maxQueued bounds each in-process topic, so a stalled consumer cannot eat
// the memory.
const maxQueued = 100_000

// memKV is kv in a map.
type memKV struct {
	mu     sync.Mutex
	str    map[string]memValue
	hashes map[string]map[string]string
	now    func() time.Time
}

type memValue struct {
	v   string
	exp time.Time // zero: none
}

func newMemKV() *memKV {
	return &memKV{str: map[string]memValue{}, hashes: map[string]map[string]string{}, now: time.Now}
}

func (m *memKV) Get(_ context.Context, key string) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.str[key]
	if ok && !v.exp.IsZero() && !m.now().Before(v.exp) {
		delete(m.str, key)
		return "", false, nil
	}
	return v.v, ok, nil
}

func (m *memKV) Set(_ context.Context, key, value string, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := memValue{v: value}
	if ttl > 0 {
		v.exp = m.now().Add(ttl)
	}
	m.str[key] = v
	return nil
}

func (m *memKV) Del(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.str, key)
	delete(m.hashes, key)
	return nil
}

func (m *memKV) Incr(_ context.Context, key string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.intLocked(key)
	if err != nil {
		return 0, err
	}
	n++
	m.str[key] = memValue{v: strconv.FormatInt(n, 10)}
	return n, nil
}

func (m *memKV) Raise(_ context.Context, key string, to int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.intLocked(key)
	if err != nil {
		return err
	}
	if n < to {
		m.str[key] = memValue{v: strconv.FormatInt(to, 10)}
	}
	return nil
}

func (m *memKV) intLocked(key string) (int64, error) {
	v, ok := m.str[key]
	if !ok {
		return 0, nil
	}
	n, err := strconv.ParseInt(v.v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("key %s: not an integer", key)
	}
	return n, nil
}

func (m *memKV) HIncr(_ context.Context, key, field string, by int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.hashes[key]
	if h == nil {
		h = map[string]string{}
		m.hashes[key] = h
	}
	n, _ := strconv.ParseInt(h[field], 10, 64)
	h[field] = strconv.FormatInt(n+by, 10)
	return nil
}

func (m *memKV) HGetAll(_ context.Context, key string) (map[string]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]string, len(m.hashes[key]))
	for f, v := range m.hashes[key] {
		out[f] = v
	}
	return out, nil
}

// memQueue is queue over slices in the process.
type memQueue struct {
	mu     sync.Mutex
	topics map[string][]message
	wake   chan struct{} // closed and replaced on every publish
}

func newMemQueue() *memQueue {
	return &memQueue{topics: map[string][]message{}, wake: make(chan struct{})}
}

func (q *memQueue) Publish(_ context.Context, topic string, m message) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.topics[topic]) >= maxQueued {
		return errQueueFull
	}
	q.topics[topic] = append(q.topics[topic], m)
	close(q.wake)
	q.wake = make(chan struct{})
	return nil
}

func (q *memQueue) Pop(ctx context.Context, topics []string, wait time.Duration) (string, message, bool, error) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		q.mu.Lock()
		for _, t := range topics {
			if l := q.topics[t]; len(l) > 0 {
				m := l[0]
				l[0] = message{}
				q.topics[t] = l[1:]
				q.mu.Unlock()
				return t, m, true, nil
			}
		}
		wake := q.wake
		q.mu.Unlock()
		select {
		case <-wake:
		case <-timer.C:
			return "", message{}, false, nil
		case <-ctx.Done():
			return "", message{}, false, ctx.Err()
		}
	}
}

// redisStore is kv and queue on Redis, every key and list behind prefix.
type redisStore struct {
	c      *redis.Client
	prefix string
}

func openRedis(ctx context.Context, addr, prefix string) (*redisStore, error) {
	c := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 64, MaxRetries: 1})
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("shop: redis %s: %w", addr, err)
	}
	return &redisStore{c: c, prefix: prefix}, nil
}

func (r *redisStore) Get(ctx context.Context, key string) (string, bool, error) {
	v, err := r.c.Get(ctx, r.prefix+key).Result()
	if errors.Is(err, redis.Nil) {
		return "", false, nil
	}
	return v, err == nil, err
}

func (r *redisStore) Set(ctx context.Context, key, value string, ttl time.Duration) error {
	return r.c.Set(ctx, r.prefix+key, value, ttl).Err()
}

func (r *redisStore) Del(ctx context.Context, key string) error {
	return r.c.Del(ctx, r.prefix+key).Err()
}

func (r *redisStore) Incr(ctx context.Context, key string) (int64, error) {
	return r.c.Incr(ctx, r.prefix+key).Result()
}

var raiseScript = redis.NewScript(`
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return 0`)

func (r *redisStore) Raise(ctx context.Context, key string, n int64) error {
	return raiseScript.Run(ctx, r.c, []string{r.prefix + key}, n).Err()
}

func (r *redisStore) HIncr(ctx context.Context, key, field string, by int64) error {
	return r.c.HIncrBy(ctx, r.prefix+key, field, by).Err()
}

func (r *redisStore) HGetAll(ctx context.Context, key string) (map[string]string, error) {
	return r.c.HGetAll(ctx, r.prefix+key).Result()
}

func (r *redisStore) Publish(ctx context.Context, topic string, m message) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return r.c.LPush(ctx, r.prefix+topic, b).Err()
}

func (r *redisStore) Pop(ctx context.Context, topics []string, wait time.Duration) (string, message, bool, error) {
	keys := make([]string, len(topics))
	for i, t := range topics {
		keys[i] = r.prefix + t
	}
	// Redis blocks for whole seconds (go-redis rounds up, noisily).
	kv, err := r.c.BRPop(ctx, max(wait, time.Second), keys...).Result()
	if errors.Is(err, redis.Nil) {
		return "", message{}, false, nil
	}
	if err != nil {
		return "", message{}, false, err
	}
	var m message
	if err := json.Unmarshal([]byte(kv[1]), &m); err != nil {
		return "", message{}, false, fmt.Errorf("queue %s: bad message: %w", kv[0], err)
	}
	return kv[0][len(r.prefix):], m, true, nil
}

func (r *redisStore) close() error { return r.c.Close() }
