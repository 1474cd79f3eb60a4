package h2

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// serverPhases is what a server sends a driven connection, in three
// phases, each an answer to what the client sent after the last: SETTINGS
// allowing 2 streams, an ack of ours and a PING; the answers to streams
// 1 (200, a body in two DATA frames) and 3 (404, headers only); then a
// reset of stream 5 (REFUSED_STREAM), which opened when 1 ended.
func serverPhases(t testing.TB) [][]byte {
	var b bytes.Buffer
	fr := http2.NewFramer(&b, nil)
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	block := func(status string, more ...string) []byte {
		hb.Reset()
		_ = enc.WriteField(hpack.HeaderField{Name: ":status", Value: status})
		for i := 0; i+1 < len(more); i += 2 {
			_ = enc.WriteField(hpack.HeaderField{Name: more[i], Value: more[i+1]})
		}
		return bytes.Clone(hb.Bytes())
	}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	var phases [][]byte
	cut := func() {
		phases = append(phases, bytes.Clone(b.Bytes()))
		b.Reset()
	}
	must(fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 2}))
	must(fr.WriteSettingsAck())
	must(fr.WritePing(false, [8]byte{1, 2, 3, 4, 5, 6, 7, 8}))
	cut()
	must(fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block("200", "content-type", "text/plain"), EndHeaders: true}))
	must(fr.WriteData(1, false, []byte("hello, ")))
	must(fr.WriteData(1, true, []byte("world")))
	must(fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: block("404"), EndHeaders: true, EndStream: true}))
	cut()
	must(fr.WriteRSTStream(5, http2.ErrCodeRefusedStream))
	cut()
	return phases
}

// drive starts three streams on a driven connection, feeds it in pieces of
// the given size, and describes what it saw: each stream's outcome in the
// order they ended, and, unless it failed, the frames it queued (sorted).
func drive(t testing.TB, phases [][]byte, piece int) string {
	var ended []*Stream
	c := NewDriven(func(s *Stream) { ended = append(ended, s) })
	streams := make([]Stream, 3)
	hdr := []byte{0x82, 0x86, 0x84} // GET, http, /
	for i := range streams {
		if !c.Start(&streams[i], hdr, nil, nil) {
			t.Fatalf("stream %d refused", i)
		}
	}
	if !bytes.HasPrefix(c.Out(), []byte(http2.ClientPreface)) || bytes.Contains(c.Out(), []byte{0x01, 0x05, 0, 0, 0, 1}) {
		t.Fatal("a stream went out before the server's SETTINGS")
	}
	var out bytes.Buffer
	out.Write(c.Out())
	c.Wrote(len(c.Out()))
	var ferr error
	for _, in := range phases {
		for len(in) > 0 && ferr == nil {
			n := min(piece, len(in))
			ferr = c.Feed(in[:n])
			in = in[n:]
			out.Write(c.Out())
			c.Wrote(len(c.Out()))
		}
	}
	if ferr != nil && c.Usable() {
		t.Errorf("Feed failed (%v) and the connection is still usable", ferr)
	}
	for i, s := range ended {
		if slices.Index(ended, s) != i {
			t.Errorf("stream %d ended twice", s.id)
		}
	}
	var desc bytes.Buffer
	fmt.Fprintf(&desc, "feed error %v\n", ferr)
	for _, s := range ended {
		fmt.Fprintf(&desc, "stream %d: status %d data %d rst %v %v\n", s.id, s.Status, s.DataBytes, s.RST, s.RSTCode)
	}
	if ferr != nil {
		// What a failed connection queued is never written: it depends
		// on how far the bytes before the failure went.
		return desc.String()
	}
	// Sorted: when an ack goes out beside a stream's HEADERS depends on
	// whether both were called for by one Feed.
	var sent []string
	fr := http2.NewFramer(nil, bytes.NewReader(out.Bytes()[len(http2.ClientPreface):]))
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			break
		}
		sent = append(sent, fmt.Sprintf("sent %v stream %d flags %v\n", f.Header().Type, f.Header().StreamID, f.Header().Flags))
	}
	slices.Sort(sent)
	return desc.String() + strings.Join(sent, "")
}

// A driven connection sees the same whether the server's bytes come at
// once or a byte at a time: the handshake holds the streams back, the
// stream limit opens the third only when one ends, and every answer and
// acknowledgement is the same.
func TestDrivenFeedInPieces(t *testing.T) {
	in := serverPhases(t)
	whole := drive(t, in, 1<<20)
	for _, want := range []string{
		"stream 1: status 200 data 12 rst false",
		"stream 3: status 404 data 0 rst false",
		"stream 5: status 0 data 0 rst true REFUSED_STREAM",
		"sent SETTINGS stream 0 flags 1\n", // the ack
		"sent PING stream 0 flags 1\n",     // the ack
		"sent HEADERS stream 5 flags 5\n",  // END_STREAM|END_HEADERS
	} {
		if !bytes.Contains([]byte(whole), []byte(want)) {
			t.Errorf("missing %q in\n%s", want, whole)
		}
	}
	for _, piece := range []int{1, 2, 7, 9, 10, 64} {
		if got := drive(t, in, piece); got != whole {
			t.Errorf("fed %d bytes at a time:\n%s\nat once:\n%s", piece, got, whole)
		}
	}
}

// A server that does not speak HTTP/2 fails the handshake, not a stream.
func TestDrivenNotHTTP2(t *testing.T) {
	c := NewDriven(func(*Stream) {})
	var s Stream
	c.Start(&s, []byte{0x82}, nil, nil)
	err := c.Feed([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
	if !IsProtocol(err) || c.Usable() {
		t.Errorf("err %v usable %v, want a protocol error and a dead connection", err, c.Usable())
	}
	if p := c.TakePending(); len(p) != 1 || p[0] != &s {
		t.Errorf("pending %v, want the unsent stream back", p)
	}
}

// Whatever a server sends after a valid handshake, in whatever pieces,
// Feed does not panic, ends no stream twice, and a connection it failed
// takes no more streams.
func FuzzDrivenFeed(f *testing.F) {
	ph := serverPhases(f)
	f.Add(ph[1], ph[2], 5)
	f.Add(ph[1][:20], ph[2], 3)
	f.Add([]byte("HTTP/1.1 200 OK\r\n\r\n"), []byte{}, 1)
	f.Add([]byte{0, 0, 4, 8, 0, 0, 0, 0, 0, 0, 0, 0, 1}, ph[2], 4)
	f.Fuzz(func(t *testing.T, a, b []byte, piece int) {
		if piece %= 64; piece < 0 {
			piece = -piece
		}
		drive(t, [][]byte{ph[0], a, b}, piece+1)
	})
}

// A first SETTINGS that cannot be applied fails the handshake: the
// connection never counts as ready.
func TestDrivenBadFirstSettings(t *testing.T) {
	var b bytes.Buffer
	fr := http2.NewFramer(&b, nil)
	if err := fr.WriteRawFrame(http2.FrameSettings, 0, 0, []byte{0, 4, 0x80, 0, 0, 0}); err != nil { // INITIAL_WINDOW_SIZE 2^31
		t.Fatal(err)
	}
	c := NewDriven(func(*Stream) {})
	if err := c.Feed(b.Bytes()); !IsProtocol(err) || c.Ready() || c.Usable() {
		t.Errorf("err %v ready %v usable %v, want a protocol error before the handshake's end", err, c.Ready(), c.Usable())
	}
}

// handshake returns a driven connection past its handshake, the server
// allowing large windows, and the streams it ended.
func handshake(t *testing.T, window uint32) (*Conn, *[]*Stream) {
	var ended []*Stream
	c := NewDriven(func(s *Stream) { ended = append(ended, s) })
	var b bytes.Buffer
	fr := http2.NewFramer(&b, nil)
	_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: window})
	if window > defaultWin {
		_ = fr.WriteWindowUpdate(0, window-defaultWin)
	}
	if err := c.Feed(b.Bytes()); err != nil || !c.Ready() {
		t.Fatalf("handshake: %v", err)
	}
	c.Wrote(len(c.Out()))
	return c, &ended
}

// A socket that takes all but a little of the queue each time does not
// make the queue grow.
func TestDrivenQueueStaysBounded(t *testing.T) {
	c, _ := handshake(t, 1<<30)
	streams := make([]Stream, 3000)
	body := bytes.Repeat([]byte("b"), 200)
	for i := range streams {
		c.Start(&streams[i], []byte{0x83, 0x86, 0x84}, nil, body)
		c.Wrote(len(c.Out()) - 1)
	}
	if n := cap(c.out.b); n > 3*bufSize {
		t.Errorf("queue of %d bytes after 3000 partial writes, want it bounded near %d", n, bufSize)
	}
	if got := len(c.Out()); got != 1 {
		t.Errorf("%d bytes left to write, want the 1 held back", got)
	}
}

// A stream the server answers before its body is all sent is reset, so
// that the server does not keep it open; one the server reset is not.
func TestDrivenEarlyAnswerResets(t *testing.T) {
	for _, serverResets := range []bool{false, true} {
		c, ended := handshake(t, defaultWin) // the body needs more window than this
		var s Stream
		c.Start(&s, []byte{0x83, 0x86, 0x84}, nil, make([]byte, 200<<10))
		c.Wrote(len(c.Out()))
		var b bytes.Buffer
		fr := http2.NewFramer(&b, nil)
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0x88}, EndHeaders: true, EndStream: true}) // :status 200
		if serverResets {
			_ = fr.WriteRSTStream(1, http2.ErrCodeNo)
		}
		if err := c.Feed(b.Bytes()); err != nil || len(*ended) != 1 || s.Status != 200 {
			t.Fatalf("err %v, %d ended, status %d", err, len(*ended), s.Status)
		}
		f, err := http2.NewFramer(nil, bytes.NewReader(c.Out())).ReadFrame()
		switch {
		case serverResets && err == nil:
			t.Errorf("sent %v after the server's reset, want nothing", f.Header())
		case !serverResets && (err != nil || f.Header().Type != http2.FrameRSTStream || f.Header().StreamID != 1):
			t.Errorf("sent %v (%v), want RST_STREAM on stream 1", f, err)
		}
	}
}
