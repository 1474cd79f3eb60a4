package dashboard

import "sync"

// hub fans server-sent events out to the pages watching. Publishing never
// waits for a page: each has a buffer of a bounded number of events, and a
// page whose buffer is full (a slow browser, a stalled network) is
// dropped. Its EventSource reconnects by itself and starts again from a
// snapshot of the whole run, so a dropped page loses nothing it shows.
type hub struct {
	size int // events buffered per page

	mu      sync.Mutex
	clients map[*client]struct{}
	dropped int // pages dropped for being slow, over the hub's life
}

// client is one page's stream.
type client struct {
	events chan []byte   // buffered: size events
	gone   chan struct{} // closed when the hub drops or forgets it
	once   sync.Once
}

func newHub(size int) *hub {
	return &hub{size: size, clients: map[*client]struct{}{}}
}

// join adds a page; first, when not nil, is its first event (the
// snapshot), queued before any event published after join.
func (h *hub) join(first []byte) *client {
	c := &client{events: make(chan []byte, h.size+1), gone: make(chan struct{})}
	if first != nil {
		c.events <- first
	}
	h.mu.Lock()
	h.clients[c] = struct{}{}
	h.mu.Unlock()
	return c
}

// leave forgets a page that went away.
func (h *hub) leave(c *client) {
	h.mu.Lock()
	delete(h.clients, c)
	h.mu.Unlock()
	c.once.Do(func() { close(c.gone) })
}

// publish queues ev for every page without blocking, and drops the pages
// whose buffer is full. It returns how many it dropped.
func (h *hub) publish(ev []byte) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for c := range h.clients {
		select {
		case c.events <- ev:
		default:
			delete(h.clients, c)
			c.once.Do(func() { close(c.gone) })
			n++
		}
	}
	h.dropped += n
	return n
}

// len is the number of pages watching.
func (h *hub) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}
