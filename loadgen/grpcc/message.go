package grpcc

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// Marshaler turns the JSON form of one message type (protojson) into its
// wire form. It reuses one dynamic message, so it is not safe for
// concurrent use: give each VU its own.
type Marshaler struct {
	msg *dynamicpb.Message
}

// NewMarshaler returns a Marshaler for messages of type md.
func NewMarshaler(md protoreflect.MessageDescriptor) *Marshaler {
	return &Marshaler{msg: dynamicpb.NewMessage(md)}
}

var (
	unmarshalJSON = protojson.UnmarshalOptions{}
	marshalWire   = proto.MarshalOptions{}
)

// Marshal appends the wire form of the message whose JSON is js to dst.
func (m *Marshaler) Marshal(dst, js []byte) ([]byte, error) {
	if err := unmarshalJSON.Unmarshal(js, m.msg); err != nil { // resets m.msg first
		return dst, fmt.Errorf("message JSON does not fit %s: %w", m.msg.Descriptor().FullName(), err)
	}
	out, err := marshalWire.MarshalAppend(dst, m.msg)
	if err != nil {
		return dst, fmt.Errorf("marshal %s: %w", m.msg.Descriptor().FullName(), err)
	}
	return out, nil
}

// Marshal is a one-off Marshaler.Marshal: JSON to wire bytes.
func Marshal(md protoreflect.MessageDescriptor, js []byte) ([]byte, error) {
	return NewMarshaler(md).Marshal(nil, js)
}
