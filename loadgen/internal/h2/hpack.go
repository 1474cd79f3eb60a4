package h2

// Request header block encoding without the hpack package's encoder: every
// field is a literal that is never indexed, so a block leaves the dynamic
// table alone and can be built in a reused buffer, sent on any connection,
// with no allocation.

// HPACK static-table entries a request block uses.
const (
	StaticAuthority     = 1
	StaticMethodGET     = 2
	StaticMethodPOST    = 3
	StaticPath          = 4
	StaticSchemeHTTP    = 6
	StaticSchemeHTTPS   = 7
	StaticContentLength = 28
	StaticUserAgent     = 58
)

// AppendIndexed appends a field that is static-table entry i, name and
// value.
func AppendIndexed(b []byte, i uint64) []byte { return appendInt(b, 0x80, 7, i) }

// AppendIndexedName appends a never-indexed literal field whose name is
// static-table entry i.
func AppendIndexedName[V ~string | ~[]byte](b []byte, i uint64, value V) []byte {
	b = appendInt(b, 0x10, 4, i)
	return appendString(b, value)
}

// AppendField appends a never-indexed literal field with a literal name;
// name must already be lower case, as HTTP/2 requires.
func AppendField[N, V ~string | ~[]byte](b []byte, name N, value V) []byte {
	b = append(b, 0x10)
	b = appendString(b, name)
	return appendString(b, value)
}

// appendString appends s as a string literal without Huffman coding.
func appendString[S ~string | ~[]byte](b []byte, s S) []byte {
	b = appendInt(b, 0, 7, uint64(len(s)))
	return append(b, s...)
}

// appendInt appends v as an HPACK integer with an n-bit prefix in a first
// byte holding the flags first.
func appendInt(b []byte, first byte, n uint, v uint64) []byte {
	limit := uint64(1)<<n - 1
	if v < limit {
		return append(b, first|byte(v))
	}
	b = append(b, first|byte(limit))
	for v -= limit; v >= 128; v >>= 7 {
		b = append(b, byte(v&0x7f)|0x80)
	}
	return append(b, byte(v))
}
