package scenarios

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// jsonProblem is a message that does not fit its schema: path is the JSON
// path below message ("" for the whole message, ".items[2].sku" for a field).
type jsonProblem struct{ path, msg string }

// decodeJSON decodes one JSON value, numbers kept as text.
func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one JSON value")
	}
	return v, nil
}

// checkJSON checks v against md the way protojson reads it (field names in
// JSON or proto form, numbers as numbers or strings, enums by name or
// number), reporting every field at fault with its path. Well-known types
// (google.protobuf.*) are left to protojson.
func checkJSON(md protoreflect.MessageDescriptor, v any, path string) []jsonProblem {
	if v == nil {
		return nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return []jsonProblem{{path, fmt.Sprintf("must be a JSON object (message %s), got %s", md.FullName(), jsonKind(v))}}
	}
	var out []jsonProblem
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	oneofs := map[protoreflect.FullName]string{}
	for _, k := range keys {
		fp := path + "." + k
		if strings.HasPrefix(k, "[") {
			continue // an extension: protojson checks it
		}
		fd := md.Fields().ByJSONName(k)
		if fd == nil {
			fd = md.Fields().ByTextName(k)
		}
		if fd == nil {
			var names []string
			for i := 0; i < md.Fields().Len(); i++ {
				names = append(names, md.Fields().Get(i).JSONName())
			}
			msg := fmt.Sprintf("unknown field%s; %s has: %s", suggest(k, names), md.FullName(), strings.Join(names, ", "))
			if len(names) == 0 {
				msg = fmt.Sprintf("unknown field: %s has no fields", md.FullName())
			}
			out = append(out, jsonProblem{fp, msg})
			continue
		}
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() && obj[k] != nil {
			if prev, dup := oneofs[od.FullName()]; dup {
				out = append(out, jsonProblem{fp, fmt.Sprintf("%s and %s are both set, but they are alternatives (oneof %s)", prev, k, od.Name())})
				continue
			}
			oneofs[od.FullName()] = k
		}
		out = append(out, checkField(fd, obj[k], fp)...)
	}
	return out
}

func checkField(fd protoreflect.FieldDescriptor, v any, path string) []jsonProblem {
	if v == nil {
		return nil // null: the field's default
	}
	switch {
	case fd.IsMap():
		obj, ok := v.(map[string]any)
		if !ok {
			return []jsonProblem{{path, fmt.Sprintf("must be a JSON object (a map), got %s", jsonKind(v))}}
		}
		var out []jsonProblem
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			kp := path + "[" + strconv.Quote(k) + "]"
			if msg := checkMapKey(fd.MapKey(), k); msg != "" {
				out = append(out, jsonProblem{kp, msg})
				continue
			}
			out = append(out, checkSingular(fd.MapValue(), obj[k], kp)...)
		}
		return out
	case fd.IsList():
		arr, ok := v.([]any)
		if !ok {
			return []jsonProblem{{path, fmt.Sprintf("must be a JSON array (repeated %s), got %s", kindName(fd), jsonKind(v))}}
		}
		var out []jsonProblem
		for i, e := range arr {
			ip := path + "[" + strconv.Itoa(i) + "]"
			if e == nil {
				out = append(out, jsonProblem{ip, "null is not allowed in a repeated field"})
				continue
			}
			out = append(out, checkSingular(fd, e, ip)...)
		}
		return out
	}
	return checkSingular(fd, v, path)
}

func checkSingular(fd protoreflect.FieldDescriptor, v any, path string) []jsonProblem {
	if v == nil {
		return nil
	}
	fail := func(want string) []jsonProblem {
		return []jsonProblem{{path, fmt.Sprintf("must be %s, got %s", want, jsonKind(v))}}
	}
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		md := fd.Message()
		if strings.HasPrefix(string(md.FullName()), "google.protobuf.") {
			return nil // well-known types have JSON forms of their own
		}
		return checkJSON(md, v, path)
	case protoreflect.EnumKind:
		ed := fd.Enum()
		if ed.FullName() == "google.protobuf.NullValue" {
			return nil
		}
		switch x := v.(type) {
		case string:
			if ed.Values().ByName(protoreflect.Name(x)) == nil {
				var names []string
				for i := 0; i < ed.Values().Len(); i++ {
					names = append(names, string(ed.Values().Get(i).Name()))
				}
				return []jsonProblem{{path, fmt.Sprintf("%q is not a value of enum %s%s; values: %s", x, ed.FullName(), suggest(x, names), strings.Join(names, ", "))}}
			}
			return nil
		case json.Number:
			if _, err := strconv.ParseInt(string(x), 10, 32); err != nil {
				return []jsonProblem{{path, fmt.Sprintf("enum number %s is not a 32-bit integer", x)}}
			}
			return nil
		}
		return fail("an enum value name (string) or number")
	case protoreflect.BoolKind:
		if _, ok := v.(bool); !ok {
			return fail("true or false")
		}
	case protoreflect.StringKind:
		if _, ok := v.(string); !ok {
			return fail("a string")
		}
	case protoreflect.BytesKind:
		s, ok := v.(string)
		if !ok {
			return fail("a base64 string (bytes)")
		}
		if _, err := base64.StdEncoding.DecodeString(s); err != nil {
			if _, err2 := base64.URLEncoding.DecodeString(s); err2 != nil {
				if _, err3 := base64.RawStdEncoding.DecodeString(s); err3 != nil {
					if _, err4 := base64.RawURLEncoding.DecodeString(s); err4 != nil {
						return []jsonProblem{{path, "must be base64 (bytes field)"}}
					}
				}
			}
		}
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		switch x := v.(type) {
		case json.Number:
			return nil
		case string:
			if x == "NaN" || x == "Infinity" || x == "-Infinity" {
				return nil
			}
			if _, err := strconv.ParseFloat(x, 64); err != nil {
				return []jsonProblem{{path, fmt.Sprintf("%q is not a number", x)}}
			}
			return nil
		}
		return fail("a number")
	default: // the integer kinds
		var s string
		switch x := v.(type) {
		case json.Number:
			s = string(x)
		case string:
			s = x
		default:
			return fail("an integer (" + kindName(fd) + ")")
		}
		if msg := checkInt(fd.Kind(), s); msg != "" {
			return []jsonProblem{{path, msg}}
		}
	}
	return nil
}

// checkInt checks s as a JSON integer of kind k: protojson takes an integral
// number in exponent form too (1e3), but never a fraction.
func checkInt(k protoreflect.Kind, s string) string {
	bits, signed := 64, true
	switch k {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		bits = 32
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		bits, signed = 32, false
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		signed = false
	}
	name := strings.ToLower(k.String())
	if signed {
		if _, err := strconv.ParseInt(s, 10, bits); err == nil {
			return ""
		}
	} else if _, err := strconv.ParseUint(s, 10, bits); err == nil {
		return ""
	}
	f, err := strconv.ParseFloat(s, 64)
	switch {
	case err != nil && !errors.Is(err, strconv.ErrRange):
		return fmt.Sprintf("%q is not an integer (%s)", s, name)
	case f != math.Trunc(f):
		return fmt.Sprintf("%s is not an integer (%s)", s, name)
	}
	lo, hi := -math.Pow(2, float64(bits-1)), math.Pow(2, float64(bits-1))-1
	if !signed {
		lo, hi = 0, math.Pow(2, float64(bits))-1
	}
	if errors.Is(err, strconv.ErrRange) || f < lo || f > hi {
		return fmt.Sprintf("%s is out of range for %s", s, name)
	}
	return ""
}

func checkMapKey(fd protoreflect.FieldDescriptor, k string) string {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return ""
	case protoreflect.BoolKind:
		if k != "true" && k != "false" {
			return fmt.Sprintf("map key %q must be true or false", k)
		}
		return ""
	}
	return checkInt(fd.Kind(), k)
}

func kindName(fd protoreflect.FieldDescriptor) string {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return string(fd.Message().FullName())
	case protoreflect.EnumKind:
		return string(fd.Enum().FullName())
	}
	return strings.ToLower(fd.Kind().String())
}

func jsonKind(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(x)
	case json.Number:
		return "the number " + string(x)
	case string:
		return "the string " + strconv.Quote(clip(x))
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
