package guard

import (
	"encoding/json"
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

// serveStop hands the stop to Run. The reason comes from the "reason"
// query or form parameter.
func (g *Guard) serveStop(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	reason := r.FormValue("reason")
	if len(reason) > maxReason {
		reason = reason[:maxReason]
	}
	req := switchReq{from: r.RemoteAddr, reason: reason, done: make(chan struct{})}
	select {
	case g.switchCh <- req:
		select {
		case <-req.done:
			writeJSON(w, http.StatusOK, g.Status())
		case <-r.Context().Done():
		}
	case <-g.quit: // already stopping, or stopped
		writeJSON(w, http.StatusConflict, g.Status())
	case <-r.Context().Done():
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
