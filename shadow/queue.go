package shadow

import (
	"context"
	"strings"
)

// Carrier is a message's headers, as a queue client exposes them.
// OpenTelemetry's propagation.MapCarrier and HeaderCarrier satisfy it.
type Carrier interface {
	Get(key string) string
	Set(key, value string)
}

// MapCarrier is a Carrier over a map.
type MapCarrier map[string]string

// Get returns the value of key.
func (c MapCarrier) Get(key string) string { return c[key] }

// Set sets key to value.
func (c MapCarrier) Set(key, value string) { c[key] = value }

// Keys returns the header names, so that Extract can refuse a near-miss
// of the tag's name.
func (c MapCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// Inject writes the tag of ctx into a message's headers (MetadataKey) when
// ctx is tagged, and does nothing otherwise. The message goes to the topic
// that Topic names.
func Inject(ctx context.Context, c Carrier) {
	if drill, ok := FromContext(ctx); ok {
		c.Set(MetadataKey, drill)
	}
}

// Extract is the consumer's Middleware: it reads the tag of a message's
// headers (MetadataKey and a "baggage" header) and returns a context
// carrying the tag and p, or ctx itself for an untagged message. A tag that
// cannot be read (invalid, conflicting, or, when the carrier can list its
// keys as OpenTelemetry's carriers and MapCarrier do, a header that is a
// near-miss of the tag's names) is refused with an *IsolationError (counted
// and logged): the consumer must not process the message as production
// work.
func (p *Policy) Extract(ctx context.Context, c Carrier) (context.Context, error) {
	var tagVals, bagVals []string
	if v := c.Get(MetadataKey); v != "" {
		tagVals = []string{v}
	}
	if v := c.Get(baggageKey); v != "" {
		bagVals = []string{v}
	}
	drill, found, err := tagFrom(tagVals, bagVals)
	if k, ok := c.(interface{ Keys() []string }); ok && err == nil {
		for _, name := range k.Keys() {
			if !strings.EqualFold(name, MetadataKey) && nearMiss(name) {
				found, err = true, nearMissError("message header", name, MetadataKey)
				break
			}
		}
	}
	switch {
	case !found:
		p.untagged.Add(1)
		return ctx, nil
	case err != nil:
		return ctx, p.reject("", Resource{Kind: KindTag}, err.Error())
	}
	p.tagged.Add(1)
	return p.attach(ctx, drill), nil
}
