package k6

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/gob"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/loadcap/loadcap/loadgen"
)

// memIntervals is how many intervals an ivLog keeps in memory before it
// writes the rest to its file: a short run (and the first seconds of a
// long one, when new request names still appear and rebuild replays
// often) never touches the disk.
const memIntervals = 120

// ivLog keeps every interval the collector received, in the order they
// arrived, for rebuild to replay into a new merger: the first
// memIntervals in memory, the rest gob-encoded in an unlinked temporary
// file, so that a k6 run of any length (a day's soak, a hundred agents)
// keeps flat memory. Should the file fail (no temporary directory, a
// full disk), the intervals from then on stay in memory: the run goes on
// and costs memory instead. Not safe for concurrent use (the collector
// is called one frame at a time).
type ivLog struct {
	mem  int              // intervals kept in memory; memIntervals when 0
	head []loggedInterval // the first mem
	tail []loggedInterval // after the file failed

	f      *os.File
	buf    bytes.Buffer
	enc    *gob.Encoder // into buf, one record at a time
	good   int64        // bytes of f that hold whole records
	inFile int          // records in them
	err    error        // why the file is not used; nil while it is
	remove string       // the file's name, when it could not be unlinked at once
}

type loggedInterval struct {
	part int
	si   *storedInterval
}

// spilled is a storedInterval as ivLog's file holds it.
type spilled struct {
	Part, T   int
	End, Busy time.Duration
	Dropped   int64
	VUs, Peak int
	Series    []spilledDelta
}

type spilledDelta struct {
	I                    int
	Completed, Failed    int64
	Sum                  time.Duration
	Hist                 *wireHist
	Classes              [loadgen.NumClasses]int64
	BytesSent, BytesRecv int64
}

// add logs part's interval si.
func (l *ivLog) add(part int, si *storedInterval) {
	if len(l.head) < cmp.Or(l.mem, memIntervals) {
		l.head = append(l.head, loggedInterval{part, si})
		return
	}
	if l.err == nil {
		if l.err = l.write(part, si); l.err == nil {
			return
		}
	}
	l.tail = append(l.tail, loggedInterval{part, si})
}

// write appends one record to the file, creating it first.
func (l *ivLog) write(part int, si *storedInterval) error {
	if l.f == nil {
		f, err := os.CreateTemp("", "loadcap-k6-intervals-*")
		if err != nil {
			return err
		}
		// Unlinked at once where the system allows it: nothing is left
		// behind however the process ends.
		if os.Remove(f.Name()) != nil {
			l.remove = f.Name()
		}
		l.f = f
		l.enc = gob.NewEncoder(&l.buf)
	}
	rec := spilled{Part: part, T: si.T, End: si.End, Busy: si.Busy, Dropped: si.Dropped, VUs: si.VUs, Peak: si.Peak}
	for _, d := range si.Series {
		rec.Series = append(rec.Series, spilledDelta{
			I: d.i, Completed: d.completed, Failed: d.failed, Sum: d.sum, Hist: encodeHist(d.hist),
			Classes: d.classes, BytesSent: d.bytesSent, BytesRecv: d.bytesRecv,
		})
	}
	l.buf.Reset()
	if err := l.enc.Encode(&rec); err != nil {
		return err
	}
	// One write a second per part, unbuffered: what the file holds is
	// known exactly (good), and a failed write leaves at most a cut
	// record after it, which is never read.
	if _, err := l.f.Write(l.buf.Bytes()); err != nil {
		return err
	}
	l.good += int64(l.buf.Len())
	l.inFile++
	return nil
}

// each calls fn with every interval logged, in the order they came.
func (l *ivLog) each(fn func(part int, si *storedInterval) error) error {
	for _, x := range l.head {
		if err := fn(x.part, x.si); err != nil {
			return err
		}
	}
	if l.inFile > 0 {
		if l.f == nil {
			return fmt.Errorf("k6 intervals file: read after close")
		}
		dec := gob.NewDecoder(bufio.NewReaderSize(io.NewSectionReader(l.f, 0, l.good), 64<<10))
		for range l.inFile {
			var rec spilled
			if err := dec.Decode(&rec); err != nil {
				return fmt.Errorf("k6 intervals file: %w", err)
			}
			si := &storedInterval{T: rec.T, End: rec.End, Busy: rec.Busy, Dropped: rec.Dropped, VUs: rec.VUs, Peak: rec.Peak}
			for _, d := range rec.Series {
				h, err := decodeHist(d.Hist)
				if err != nil {
					return fmt.Errorf("k6 intervals file: %w", err)
				}
				si.Series = append(si.Series, storedDelta{
					i: d.I, completed: d.Completed, failed: d.Failed, sum: d.Sum, hist: h,
					classes: d.Classes, bytesSent: d.BytesSent, bytesRecv: d.BytesRecv,
				})
			}
			if err := fn(rec.Part, si); err != nil {
				return err
			}
		}
	}
	for _, x := range l.tail {
		if err := fn(x.part, x.si); err != nil {
			return err
		}
	}
	return nil
}

// close removes the file.
func (l *ivLog) close() {
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
	if l.remove != "" {
		os.Remove(l.remove)
		l.remove = ""
	}
}
