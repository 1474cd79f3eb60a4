package guard

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
)

// maxReason bounds the reason an operator gives with POST /stop.
const maxReason = 200

// handler serves the hot switch endpoint: GET / shows Status as JSON,
// POST /stop stops the drill and answers once stop has returned.
func (g *Guard) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, g.Status())
	})
	mux.HandleFunc("POST /stop", g.serveStop)
	return mux
}

// serveStop flips the switch (Stop). The reason comes from the "reason"
// query or form parameter.
func (g *Guard) serveStop(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	err := g.Stop(r.Context(), "POST /stop from "+r.RemoteAddr, r.FormValue("reason"))
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, g.Status())
	case errors.Is(err, ErrStopped):
		writeJSON(w, http.StatusConflict, g.Status())
	}
}

// ErrStopped is Stop's answer when the guard is already stopping the
// drill, or has returned.
var ErrStopped = errors.New("guard: the drill is already stopping")

// Stop flips the hot switch: Run stops the drill with a Breach of kind
// KindSwitch whose reason says via ("POST /stop from 127.0.0.1:50412")
// and reason (what the operator typed; cut to 200 bytes). It is the one
// stop path of every front end (POST /stop, the dashboard's button) and
// returns once the drill's stop function has returned; ErrStopped when
// the drill is already stopping; ctx's error when ctx ends first (a Run
// not yet begun waits for it). Safe for concurrent use.
func (g *Guard) Stop(ctx context.Context, via, reason string) error {
	if len(reason) > maxReason {
		reason = reason[:maxReason]
	}
	req := switchReq{from: via, reason: reason, done: make(chan struct{})}
	select {
	case g.switchCh <- req:
		select {
		case <-req.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	case <-g.quit: // already stopping, or stopped
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
