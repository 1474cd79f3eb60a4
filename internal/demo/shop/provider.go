package shop

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// ProviderCall is one request the payment provider's stub received.
type ProviderCall struct {
	Method, Path string
	Header       http.Header
	Body         []byte
}

// ProviderStub is the external payment provider on loopback: it records
// every call and answers every charge with a reference. Tagged traffic must
// never reach it. POST /charges charges; GET /calls lists the calls so far
// as JSON (for a stub in another process). Safe for concurrent use.
type ProviderStub struct {
	mu    sync.Mutex
	calls []ProviderCall
}

// Calls returns a copy of the calls so far, charges and others, in order.
func (p *ProviderStub) Calls() []ProviderCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]ProviderCall(nil), p.calls...)
}

// Charges counts the POST /charges calls so far.
func (p *ProviderStub) Charges() int {
	n := 0
	for _, c := range p.Calls() {
		if c.Method == http.MethodPost && c.Path == "/charges" {
			n++
		}
	}
	return n
}

// ServeHTTP records the call and answers it.
func (p *ProviderStub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if r.URL.Path == "/calls" && r.Method == http.MethodGet {
		writeJSON(w, http.StatusOK, p.Calls())
		return
	}
	p.mu.Lock()
	p.calls = append(p.calls, ProviderCall{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
	n := len(p.calls)
	p.mu.Unlock()
	if r.URL.Path != "/charges" || r.Method != http.MethodPost {
		writeError(w, http.StatusNotFound, "no such endpoint: POST /charges")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"ref": fmt.Sprintf("ch_%d", n)})
}

// chargeRequest is the body of POST /charges.
type chargeRequest struct {
	OrderID     int64 `json:"order_id"`
	PaymentID   int64 `json:"payment_id"`
	AmountCents int64 `json:"amount_cents"`
}

// charge calls the provider through client.
func charge(ctx context.Context, client *http.Client, baseURL string, c chargeRequest) (ref string, err error) {
	b, _ := json.Marshal(c)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/charges", bytes.NewReader(b))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("provider: HTTP %d", resp.StatusCode)
	}
	var out struct{ Ref string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Ref == "" {
		return "", fmt.Errorf("provider: bad answer: %v", err)
	}
	return out.Ref, nil
}

// writeJSON writes v as the JSON body with code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError writes {"error": msg} with code.
func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
