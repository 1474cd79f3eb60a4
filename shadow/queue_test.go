package shadow_test

import (
	"context"
	"errors"
	"testing"

	"go.opentelemetry.io/otel/propagation"

	"github.com/loadcap/loadcap/shadow"
)

// message is a queued message: its headers and body.
type message struct {
	headers shadow.MapCarrier
	body    string
}

// TestQueueRoundTrip: a producer publishes to the topic Topic names with
// the tag injected; the consumer extracts it and writes where Table says.
func TestQueueRoundTrip(t *testing.T) {
	producer := shopPolicy(t)
	consumer := shopPolicy(t)
	queues := map[string]chan message{"events": make(chan message, 4), "events_shadow": make(chan message, 4)}

	publish := func(ctx context.Context, body string) {
		topic, err := shadow.Topic(ctx, "events")
		if err != nil {
			t.Fatal(err)
		}
		m := message{headers: shadow.MapCarrier{}, body: body}
		shadow.Inject(ctx, m.headers)
		queues[topic] <- m
	}
	consume := func(topic string) (drill, table string) {
		m := <-queues[topic]
		ctx, err := consumer.Extract(context.Background(), m.headers)
		if err != nil {
			t.Fatal(err)
		}
		drill, _ = shadow.FromContext(ctx)
		table, err = shadow.Table(ctx, "events_20240101")
		if err != nil {
			t.Fatal(err)
		}
		return drill, table
	}

	publish(tagged(t, producer, "d1"), "tagged click")
	publish(context.Background(), "real click")
	if len(queues["events_shadow"]) != 1 || len(queues["events"]) != 1 {
		t.Fatalf("shadow topic has %d, production %d messages; want 1 each", len(queues["events_shadow"]), len(queues["events"]))
	}
	if drill, table := consume("events_shadow"); drill != "d1" || table != "shadow_events_20240101" {
		t.Fatalf("shadow message: drill %q, table %q", drill, table)
	}
	if drill, table := consume("events"); drill != "" || table != "events_20240101" {
		t.Fatalf("production message: drill %q, table %q", drill, table)
	}
	if st := consumer.Stats(); st.Tagged != 1 || st.Untagged != 1 {
		t.Fatalf("consumer stats %+v, want 1 tagged, 1 untagged", st)
	}
}

// keysCarrier is a queue client's own Carrier that lists its keys, as
// the OpenTelemetry carriers do.
type keysCarrier map[string]string

func (c keysCarrier) Get(key string) string { return c[key] }
func (c keysCarrier) Set(key, value string) { c[key] = value }
func (c keysCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

func TestExtract(t *testing.T) {
	tests := []struct {
		name    string
		headers shadow.Carrier
		want    string
		refused bool
	}{
		{name: "untagged", headers: shadow.MapCarrier{"content-type": "json"}},
		{name: "header", headers: shadow.MapCarrier{shadow.MetadataKey: "d1"}, want: "d1"},
		{name: "baggage header", headers: shadow.MapCarrier{"baggage": "loadcap.shadow=d2"}, want: "d2"},
		{name: "OTel header carrier", headers: propagation.HeaderCarrier{"X-Loadcap-Shadow": {"d3"}}, want: "d3"},
		{name: "invalid tag", headers: shadow.MapCarrier{shadow.MetadataKey: "a,b"}, refused: true},
		{name: "header and baggage disagree", headers: shadow.MapCarrier{shadow.MetadataKey: "d1", "baggage": "loadcap.shadow=d2"}, refused: true},
		{name: "header and baggage agree", headers: shadow.MapCarrier{shadow.MetadataKey: "d1", "baggage": "loadcap.shadow=d1"}, want: "d1"},
		{name: "near-miss header", headers: shadow.MapCarrier{"x_loadcap_shadow": "d1"}, refused: true},
		{name: "near-miss header in an OTel carrier", headers: propagation.HeaderCarrier{"Loadcap.Shadow": {"d1"}}, refused: true},
		{name: "near-miss baggage key", headers: shadow.MapCarrier{"baggage": "LOADCAP_SHADOW=d1"}, refused: true},
		// Header names compare without case: these are the tag, not
		// production messages.
		{name: "header in another case", headers: shadow.MapCarrier{"X-Loadcap-Shadow": "d1"}, want: "d1"},
		{name: "header in another case, OTel map carrier", headers: propagation.MapCarrier{"X-LOADCAP-SHADOW": "d1", "baggage": "loadcap.shadow=d1"}, want: "d1"},
		{name: "header in two cases agree", headers: shadow.MapCarrier{shadow.MetadataKey: "d1", "X-Loadcap-Shadow": "d1"}, want: "d1"},
		{name: "header in two cases disagree", headers: shadow.MapCarrier{shadow.MetadataKey: "d1", "X-Loadcap-Shadow": "d2"}, refused: true},
		{name: "header canonical and not, OTel header carrier", headers: propagation.HeaderCarrier{"X-Loadcap-Shadow": {"d1"}, "x-loadcap-shadow": {"d2"}}, refused: true},
		// So does the baggage header's, and every value counts: a message
		// built by hand or by another SDK is read as the tag, never as
		// production work.
		{name: "baggage header in another case", headers: shadow.MapCarrier{"Baggage": "loadcap.shadow=d2"}, want: "d2"},
		{name: "baggage in two cases disagree", headers: shadow.MapCarrier{"baggage": "loadcap.shadow=d1", "Baggage": "loadcap.shadow=d2"}, refused: true},
		{name: "OTel header carrier, baggage in lower case", headers: propagation.HeaderCarrier{"baggage": {"loadcap.shadow=d3"}}, want: "d3"},
		{name: "OTel header carrier, the member in a second value", headers: propagation.HeaderCarrier{"Baggage": {"tenant=acme", "loadcap.shadow=d3"}}, want: "d3"},
		{name: "other carrier", headers: keysCarrier{"x-loadcap-shadow": "d5"}, want: "d5"},
		{name: "other carrier, header in another case", headers: keysCarrier{"X-Loadcap-Shadow": "d5"}, want: "d5"},
		{name: "other carrier, near-miss", headers: keysCarrier{"X-Loadcap_Shadow": "d5"}, refused: true},
		{name: "other carrier, untagged", headers: keysCarrier{"traceparent": "00-1-2-01"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := shopPolicy(t)
			ctx, err := p.Extract(context.Background(), tt.headers)
			if tt.refused {
				if !errors.Is(err, shadow.ErrNotIsolated) {
					t.Fatalf("Extract = %v, want a refusal", err)
				}
				if _, ok := shadow.FromContext(ctx); ok {
					t.Fatal("refused message got a tagged context")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := shadow.FromContext(ctx); got != tt.want {
				t.Fatalf("drill %q, want %q", got, tt.want)
			}
		})
	}
}
