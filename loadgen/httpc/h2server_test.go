package httpc

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// rawH2Options shapes a rawH2 server.
type rawH2Options struct {
	maxStreams  uint32 // SETTINGS_MAX_CONCURRENT_STREAMS; 0 = not sent
	goAwayAfter int    // > 0: GOAWAY after answering this many streams of a connection
	dieAfter    int    // > 0: close the connection when this stream arrives, unanswered
	holdAfter   int    // > 0: when this stream arrives, GOAWAY naming it; it and later ones go unanswered
}

// rawH2 is a canned h2c server (prior knowledge): every request (a stream
// whose END_STREAM arrived) gets 200 with "content-length: 2" and the body
// "ok". It allocates nothing per request, so that benchmarks measure the
// client. answered counts the responses it sent.
type rawH2 struct {
	*rawServer
	answered atomic.Int64
	ended    atomic.Int64 // connections the client closed
}

// HTTP/2 frame types and flags the canned server uses.
const (
	fData, fHeaders, fSettings, fPing, fGoAway, fWindowUpdate = 0, 1, 4, 6, 7, 8
	flEndStream, flAck, flEndHeaders                          = 1, 1, 4
)

func appendFrame(b []byte, typ, flags byte, id uint32, p []byte) []byte {
	b = append(b, byte(len(p)>>16), byte(len(p)>>8), byte(len(p)), typ, flags)
	b = binary.BigEndian.AppendUint32(b, id)
	return append(b, p...)
}

func newRawH2(tb testing.TB, o rawH2Options) *rawH2 {
	s := &rawH2{}
	// :status 200 (static index 8), content-length (static name 28,
	// literal without indexing) "2".
	resp := appendFrame(nil, fHeaders, flEndHeaders, 0, []byte{0x88, 0x0f, 0x0d, 0x01, '2'})
	dataAt := len(resp)
	resp = appendFrame(resp, fData, flEndStream, 0, []byte("ok"))
	s.rawServer = newRawServer(tb, func(c net.Conn, br *bufio.Reader) {
		defer s.ended.Add(1)
		var pre [24]byte
		if _, err := io.ReadFull(br, pre[:]); err != nil {
			return
		}
		bw := bufio.NewWriterSize(c, 64<<10)
		var settings []byte
		if o.maxStreams > 0 {
			settings = binary.BigEndian.AppendUint16(settings, 3)
			settings = binary.BigEndian.AppendUint32(settings, o.maxStreams)
		}
		bw.Write(appendFrame(nil, fSettings, 0, 0, settings))
		bw.Write(appendFrame(nil, fWindowUpdate, 0, 0, []byte{0, 0xf0, 0, 0}))
		bw.Flush()
		out := make([]byte, len(resp))
		buf := make([]byte, 1<<20)
		var hdr [9]byte
		wu := appendFrame(nil, fWindowUpdate, 0, 0, make([]byte, 4))
		n, gone := 0, false
		for {
			if _, err := io.ReadFull(br, hdr[:]); err != nil {
				return
			}
			size := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
			if size > len(buf) {
				return
			}
			p := buf[:size]
			if _, err := io.ReadFull(br, p); err != nil {
				return
			}
			typ, flags, id := hdr[3], hdr[4], binary.BigEndian.Uint32(hdr[5:])&(1<<31-1)
			if typ == fData && size > 0 {
				// Return the connection window the request body used.
				binary.BigEndian.PutUint32(wu[9:], uint32(size))
				bw.Write(wu)
			}
			switch {
			case typ == fSettings && flags&flAck == 0:
				bw.Write(appendFrame(out[:0], fSettings, flAck, 0, nil))
			case typ == fPing && flags&flAck == 0:
				bw.Write(appendFrame(out[:0], fPing, flAck, 0, p))
			case (typ == fHeaders || typ == fData) && flags&flEndStream != 0 && !gone:
				n++
				if n == o.dieAfter {
					return
				}
				if n == o.holdAfter {
					var ga [8]byte
					binary.BigEndian.PutUint32(ga[:], id)
					bw.Write(appendFrame(nil, fGoAway, 0, 0, ga[:]))
					gone = true
					break
				}
				copy(out, resp)
				binary.BigEndian.PutUint32(out[5:], id)
				binary.BigEndian.PutUint32(out[dataAt+5:], id)
				bw.Write(out)
				s.answered.Add(1)
				if n == o.goAwayAfter {
					var ga [8]byte
					binary.BigEndian.PutUint32(ga[:], id)
					bw.Write(appendFrame(nil, fGoAway, 0, 0, ga[:]))
					gone = true
					time.AfterFunc(100*time.Millisecond, func() { c.Close() })
				}
			}
			if br.Buffered() == 0 {
				if bw.Flush() != nil {
					return
				}
			}
		}
	})
	return s
}
