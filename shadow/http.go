package shadow

import (
	"errors"
	"net/http"
	"net/url"
)

// baggageHeader is the canonical name of the W3C Baggage header.
const baggageHeader = "Baggage"

// Middleware returns next behind the policy: a request tagged by Header or
// by the Baggage member gets a context carrying the tag and p; an untagged
// request passes through as it is (no allocation); a request whose tag
// cannot be read (invalid drill id, conflicting values, a near-miss of the
// tag's names: see the package doc) is refused with 503 and RejectHeader,
// counted and logged, because it may be drill traffic that must not reach
// production.
func (p *Policy) Middleware(next http.Handler) http.Handler {
	return &middleware{p: p, next: next}
}

// middleware is Policy.Middleware's handler, a type of its own rather than
// a closure so that the untagged path makes one indirect call, not two.
type middleware struct {
	p    *Policy
	next http.Handler
}

func (m *middleware) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if quietNames(r.Header) {
		m.p.untagged.Add(1)
		m.next.ServeHTTP(w, r)
		return
	}
	tagVals, bagVals, near := scanNames(r.Header)
	drill, found, err := tagFrom(tagVals, bagVals)
	if near != "" && err == nil {
		found, err = true, nearMissError("header", near, Header)
	}
	if !found {
		m.p.untagged.Add(1)
		m.next.ServeHTTP(w, r)
		return
	}
	if err != nil {
		Reject(w, m.p.reject("", Resource{Kind: KindTag}, err.Error()))
		return
	}
	m.p.tagged.Add(1)
	m.next.ServeHTTP(w, r.WithContext(m.p.attach(r.Context(), drill)))
}

// Reject answers 503 Service Unavailable with the reason in RejectHeader
// when err is (or wraps) an *IsolationError, and reports whether it did.
//
//	if shadow.Reject(w, err) {
//		return
//	}
func Reject(w http.ResponseWriter, err error) bool {
	var e *IsolationError
	if !errors.As(err, &e) {
		return false
	}
	w.Header().Set(RejectHeader, e.reason())
	http.Error(w, e.Error(), http.StatusServiceUnavailable)
	return true
}

// ResponseError returns an *IsolationError (Resource kind KindRemote, the
// URL host) when resp is a downstream service's refusal of a tagged
// request, 503 with RejectHeader, and nil otherwise. A handler passes it to
// Reject to send the refusal back to its own caller.
func ResponseError(resp *http.Response) error {
	reason := resp.Header.Get(RejectHeader)
	if resp.StatusCode != http.StatusServiceUnavailable || reason == "" {
		return nil
	}
	e := &IsolationError{Resource: Resource{Kind: KindRemote}, Reason: reason}
	if resp.Request != nil {
		e.Drill, _ = FromContext(resp.Request.Context())
		if resp.Request.URL != nil {
			e.Resource.Name = resp.Request.URL.Host
		}
	}
	return e
}

// Transport returns an http.RoundTripper that sends through base
// (http.DefaultTransport when nil) and propagates the tag: a request whose
// context is tagged gets Header and the Baggage member (other members
// kept), on a copy of the request. Tagged requests, and requests that
// already carry Header, go only to the policy's allowed hosts; others fail
// with an *IsolationError before anything is sent. Untagged requests pass
// through unchanged, at no allocation.
func (p *Policy) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{p: p, base: base}
}

type transport struct {
	p    *Policy
	base http.RoundTripper
}

func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	drill, ok := FromContext(r.Context())
	if !ok {
		if _, found, _ := tagFrom(r.Header[Header], nil); !found {
			return t.base.RoundTrip(r)
		}
		// Tagged by hand (a proxy forwarding headers): still drill traffic.
	}
	if host, port := urlHostPort(r.URL); !t.p.allows(host, port) {
		if r.Body != nil {
			r.Body.Close() // RoundTripper contract: the body is closed even on error
		}
		return nil, t.p.reject(drill, Resource{KindHost, r.URL.Host}, reasonHost)
	}
	if !ok {
		return t.base.RoundTrip(r)
	}
	r2 := r.Clone(r.Context())
	if r2.Header == nil {
		r2.Header = make(http.Header)
	}
	r2.Header.Set(Header, drill)
	r2.Header[baggageHeader] = mergeBaggage(r2.Header[baggageHeader], drill)
	return t.base.RoundTrip(r2)
}

// urlHostPort returns the host and port a request to u connects to, the
// port defaulted from the scheme.
func urlHostPort(u *url.URL) (host, port string) {
	host, port = u.Hostname(), u.Port()
	if port == "" {
		switch u.Scheme {
		case "http", "ws":
			port = "80"
		case "https", "wss":
			port = "443"
		}
	}
	return host, port
}
