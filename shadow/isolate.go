package shadow

import (
	"context"
	"database/sql"
	"errors"
	"math"
	"strings"
)

// Table returns the table that ctx's work must use: name when ctx is
// untagged, its shadow twin when ctx is tagged and name is declared in the
// context's policy. Tagged work on an undeclared table, or in a context
// without a policy, gets an *IsolationError, never name.
func Table(ctx context.Context, name string) (string, error) {
	s := stateOf(ctx)
	if s == nil {
		return name, nil
	}
	if s.policy == nil {
		return "", s.policy.reject(s.drill, Resource{KindTable, name}, reasonNoPolicy)
	}
	if !s.policy.tables.match(name) {
		return "", s.policy.reject(s.drill, Resource{KindTable, name}, reasonUndeclared)
	}
	return s.policy.tableNaming.Shadow(name), nil
}

// Key returns the key-value key that ctx's work must use: key when ctx is
// untagged, its shadow twin when tagged and declared (Keys). Refusals as
// for Table.
func Key(ctx context.Context, key string) (string, error) {
	s := stateOf(ctx)
	if s == nil {
		return key, nil
	}
	if s.policy == nil {
		return "", s.policy.reject(s.drill, Resource{KindKey, keySpace(key)}, reasonNoPolicy)
	}
	if !s.policy.keys.match(key) {
		return "", s.policy.reject(s.drill, Resource{KindKey, keySpace(key)}, reasonUndeclared)
	}
	return s.policy.keyNaming.Shadow(key), nil
}

// keySpace names a key in counters and logs: the key up to its first ':'
// followed by '*', or the key itself (at most 64 bytes) when it has none.
func keySpace(key string) string {
	if i := strings.IndexByte(key, ':'); i >= 0 {
		return key[:i+1] + "*"
	}
	if len(key) > 64 {
		return key[:64] + "*"
	}
	return key
}

// Topic returns the queue or topic that ctx's work must publish to: topic
// when ctx is untagged, its shadow twin when tagged and declared (Topics).
// Refusals as for Table. Publishers also call Inject so that consumers see
// the tag.
func Topic(ctx context.Context, topic string) (string, error) {
	s := stateOf(ctx)
	if s == nil {
		return topic, nil
	}
	if s.policy == nil {
		return "", s.policy.reject(s.drill, Resource{KindTopic, topic}, reasonNoPolicy)
	}
	if !s.policy.topics.match(topic) {
		return "", s.policy.reject(s.drill, Resource{KindTopic, topic}, reasonUndeclared)
	}
	return s.policy.topicNaming.Shadow(topic), nil
}

// ID returns the ID that ctx's work must store: id when ctx is untagged,
// id + the policy's ID offset when tagged. Tagged work is refused when the
// policy has no offset, when id is negative or when the sum overflows.
func ID(ctx context.Context, id int64) (int64, error) {
	s := stateOf(ctx)
	if s == nil {
		return id, nil
	}
	switch {
	case s.policy == nil:
		return 0, s.policy.reject(s.drill, Resource{Kind: KindID}, reasonNoPolicy)
	case s.policy.idOffset == 0:
		return 0, s.policy.reject(s.drill, Resource{Kind: KindID}, reasonNoOffset)
	case id < 0 || id > math.MaxInt64-s.policy.idOffset:
		return 0, s.policy.reject(s.drill, Resource{Kind: KindID}, reasonIDRange)
	}
	return id + s.policy.idOffset, nil
}

// Effect runs the side effect name: real when ctx is untagged, mock when
// ctx is tagged and name is declared (Effects). Tagged work never runs
// real: an undeclared effect, a nil mock or a context without a policy get
// an *IsolationError and neither function runs.
func Effect(ctx context.Context, name string, real, mock func(context.Context) error) error {
	s := stateOf(ctx)
	if s == nil {
		if real == nil {
			return errors.New("shadow: effect " + name + ": no real function")
		}
		return real(ctx)
	}
	switch {
	case s.policy == nil:
		return s.policy.reject(s.drill, Resource{KindEffect, name}, reasonNoPolicy)
	case !s.policy.effects.match(name):
		return s.policy.reject(s.drill, Resource{KindEffect, name}, reasonUndeclared)
	case mock == nil:
		return s.policy.reject(s.drill, Resource{KindEffect, name}, reasonNoMock)
	}
	return mock(ctx)
}

// SQLTag returns the value for the TagColumn of a row ctx's work writes:
// the drill id when ctx is tagged, NULL when not.
//
//	db.ExecContext(ctx, "INSERT INTO "+table+" (id, total, shadow_tag) VALUES (?, ?, ?)", id, total, shadow.SQLTag(ctx))
func SQLTag(ctx context.Context) sql.NullString {
	drill, ok := FromContext(ctx)
	return sql.NullString{String: drill, Valid: ok}
}
