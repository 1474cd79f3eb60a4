package shadow

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel/propagation"
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
// work. Header names compare without case: a header x-loadcap-shadow in
// another case is the tag too. An untagged message costs no allocation
// with MapCarrier and OpenTelemetry's MapCarrier and HeaderCarrier; other
// carriers pay for their Keys.
func (p *Policy) Extract(ctx context.Context, c Carrier) (context.Context, error) {
	var tagVals, bagVals []string
	var bag, near string
	switch m := c.(type) {
	case MapCarrier:
		if quietMap(m) {
			p.untagged.Add(1)
			return ctx, nil
		}
		tagVals, bag, near = mapTag(m)
	case propagation.MapCarrier:
		if quietMap(m) {
			p.untagged.Add(1)
			return ctx, nil
		}
		tagVals, bag, near = mapTag(m)
	case propagation.HeaderCarrier:
		// Read as a map: its Get canonicalizes the name (an allocation
		// for ours) and returns the first value only.
		if quietNames(m) {
			p.untagged.Add(1)
			return ctx, nil
		}
		tagVals, bagVals, near = scanNames(m)
	default:
		tagVals, bag, near = carrierTag(c)
	}
	var bagArr [1]string
	if bag != "" {
		bagArr[0] = bag
		bagVals = bagArr[:]
	}
	drill, found, err := tagFrom(tagVals, bagVals)
	if near != "" && err == nil {
		found, err = true, nearMissError("message header", near, MetadataKey)
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

// mapTag reads a message's headers held in a map of one value each, in
// one pass and without a copy: the values of the tag (MetadataKey in any
// case, its own spelling first), of the baggage header ("baggage" in any
// case; the values of several spellings joined as one list) and a header
// name that is a near-miss of the tag's names, if any.
func mapTag(m map[string]string) (tagVals []string, bag, near string) {
	for k, v := range m {
		switch {
		case len(k) == len(baggageKey):
			switch {
			case !isBaggage(k):
			case bag == "":
				bag = v
			default:
				bag += "," + v // a second spelling: rare, and worth the allocation
			}
		case len(k) < len(normBaggage) || !nearMiss(k):
		case !strings.EqualFold(k, MetadataKey):
			if near == "" {
				near = k
			}
		case v != "":
			tagVals = append(tagVals, v)
			if k == MetadataKey { // the carrier's own spelling first
				last := len(tagVals) - 1
				tagVals[0], tagVals[last] = tagVals[last], tagVals[0]
			}
		}
	}
	return tagVals, bag, near
}

// carrierTag is mapTag for any other Carrier, through its methods; the
// near-miss check needs the carrier to list its keys (Keys() []string).
func carrierTag(c Carrier) (tagVals []string, bag, near string) {
	if v := c.Get(MetadataKey); v != "" {
		tagVals = []string{v}
	}
	bag = c.Get(baggageKey)
	k, ok := c.(interface{ Keys() []string })
	if !ok {
		return tagVals, bag, near
	}
	for _, name := range k.Keys() {
		switch {
		case !nearMiss(name) || name == MetadataKey:
		case !strings.EqualFold(name, MetadataKey):
			if near == "" {
				near = name
			}
		default:
			if s := c.Get(name); s != "" {
				tagVals = append(tagVals, s)
			}
		}
	}
	return tagVals, bag, near
}
