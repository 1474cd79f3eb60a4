// Package shadow is the library a Go service embeds to take part in a
// loadcap drill: it carries the shadow tag across every hop and routes the
// work of tagged requests to shadow resources, so that drill traffic can run
// through the production path without writing production data or causing
// real side effects.
//
// # The tag
//
// A drill tags every request with its drill id (token characters, at most
// MaxTagLen bytes). On the wire:
//
//   - HTTP: header X-Loadcap-Shadow: <drill-id>, and the W3C Baggage member
//     loadcap.shadow=<drill-id>, so services instrumented with OpenTelemetry
//     carry it along untouched. Either one tags a request; when both
//     are present they must agree (see Refused tags).
//   - gRPC: metadata x-loadcap-shadow (baggage is accepted as for HTTP).
//   - Message queues: a message header x-loadcap-shadow (Inject, Extract).
//   - In the process: the context.Context (WithTag, FromContext).
//
// # Refused tags
//
// A request that claims a tag but whose tag cannot be read for certain is
// refused (see Fail closed), never served as production work:
//
//   - an invalid drill id (ValidateTag);
//   - conflicts: tag headers with different values, two baggage members
//     loadcap.shadow with different values, or the header and the baggage
//     member disagreeing (equal values are fine, in any number);
//   - a baggage member loadcap.shadow without a value, or baggage that
//     mentions loadcap.shadow and does not parse;
//   - a near-miss of the tag's names. A name is a near-miss when, its
//     ASCII letters lowered and every '-', '_' and '.' removed, it reads
//     "xloadcapshadow" or "loadcapshadow" (the normalized forms of
//     X-Loadcap-Shadow and loadcap.shadow), and it is not the exact name
//     for its place. Header names, gRPC metadata keys and message headers
//     are compared without case, so x-loadcap-shadow is the tag itself
//     there, while X_Loadcap_Shadow, x.loadcap.shadow, XLoadcapShadow and
//     Loadcap-Shadow are near-misses; baggage keys are case-sensitive, so
//     there only loadcap.shadow is the tag and LOADCAP.SHADOW,
//     loadcap_shadow or X-Loadcap-Shadow are near-misses. Names that merely
//     contain the tag's name (X-Loadcap-Shadow-Reject, loadcap.shadowy)
//     are not near-misses. Message headers are checked for near-misses
//     when the Carrier can list its keys (Keys() []string).
//
// Such a request may be drill traffic misspelt by a proxy, an SDK or a
// hand-written client; served untagged it would write production rows and
// cause real side effects.
//
// # Isolation
//
// A service builds one Policy with NewPolicy, declaring the resources it
// isolates: tables, key spaces, topics and side effects, the ID offset, and
// the hosts tagged requests may call. Its Middleware, gRPC interceptors and
// Extract put the tag and the policy into the request's context, and code
// asks the context for names:
//
//	table, err := shadow.Table(ctx, "orders") // "orders", or "shadow_orders" when tagged
//	key, err := shadow.Key(ctx, "cart:42")    // "cart:42", or "shadow:cart:42"
//	topic, err := shadow.Topic(ctx, "events") // "events", or "events_shadow"
//	id, err := shadow.ID(ctx, 42)             // 42, or 42 + the ID offset
//	err := shadow.Effect(ctx, "payment", charge, fakeCharge)
//
// Untagged work always gets the production name and the real effect, with
// no error, whatever the policy says.
//
// # Fail closed
//
// Tagged work that reaches a resource the policy does not declare, or a
// context with a tag but no policy (the middleware was forgotten), gets an
// *IsolationError (errors.Is(err, ErrNotIsolated)) instead of a production
// name; it is counted in Policy.Stats and logged. Handlers hand such errors
// to Reject (HTTP 503 with the reason in X-Loadcap-Shadow-Reject); the gRPC
// server interceptors turn them into codes.Unavailable with the reason in
// the trailer x-loadcap-shadow-reject, and the client interceptors turn that
// back into an *IsolationError, so a rejection travels back to the caller.
// Tagged outbound calls through Transport and the client interceptors go
// only to the policy's allowed hosts; others fail before anything is sent.
//
// # Markers in stored data
//
// So that `loadcap shadow audit` can prove afterwards that nothing leaked,
// rows written for tagged requests carry two markers, and the audit
// looks for exactly these:
//
//   - Column TagColumn ("shadow_tag", nullable text) holds the drill id in
//     shadow tables (SQLTag gives the value to insert) and is NULL in
//     production tables. Production and shadow tables have the same columns
//     (`loadcap shadow check` verifies it), so both have it.
//   - Column "id" (an integer) of a shadow row is the real ID plus the
//     policy's ID offset (ID gives it): shadow rows have id ≥ offset,
//     production rows id < offset.
package shadow
