package scenarios

import (
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ReplayMode is how a replay source turns a recording into arrivals.
type ReplayMode int

const (
	// ReplayTimed keeps the recorded inter-arrival times, compressed by Speed:
	// the recording's own bursts are the schedule.
	ReplayTimed ReplayMode = iota + 1
	// ReplayRate cycles the recorded requests in order at the arrival rate of
	// the file's k6 scenarios.
	ReplayRate
)

// String returns "timed" or "rate".
func (m ReplayMode) String() string {
	switch m {
	case ReplayTimed:
		return "timed"
	case ReplayRate:
		return "rate"
	}
	return fmt.Sprintf("ReplayMode(%d)", int(m))
}

// Replay limits.
const (
	MinReplaySpeed = 0.1
	MaxReplaySpeed = 100.0
	MaxAmplify     = 100
	// DefaultReplayMaxVUs caps the requests in flight of a timed replay
	// when the file sets no maxVUs.
	DefaultReplayMaxVUs = 1000
)

// ReplayScenario names the scenario a timed replay runs as.
const ReplayScenario = "replay"

// Replay is a file's replay: section: requests come from a recording
// instead of requests:. The recording is read by internal/capture, which
// also fills File.Requests (one per route) before the engine starts.
type Replay struct {
	File    string // the recording, resolved against the scenario file's directory
	Format  string // "jsonl" (default), "nginx", "har", "goreplay"
	Mode    ReplayMode
	Speed   float64 // timed: recorded time is divided by it
	Amplify int     // copies of each request, each in its own shadow-ID space
	Rewrite string  // rule file, resolved like File; "" for none
	// ReplayTimed mode: the in-flight cap and the VUs started up front.
	PreAllocatedVUs int
	MaxVUs          int
	GracefulStop    time.Duration
	Pos             Pos
}

// Shadow tag protocol (docs/ARCHITECTURE.md): every request a drill generates carries
// the drill id in this header and as this W3C Baggage member.
const (
	ShadowHeader     = "X-Loadcap-Shadow"
	ShadowBaggageKey = "loadcap.shadow"
)

// drillIDPattern: the tag travels in HTTP headers, gRPC metadata, baggage
// and table rows, so it is a short token.
var drillIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidDrillID reports whether id can be a shadow tag value.
func ValidDrillID(id string) bool { return drillIDPattern.MatchString(id) }

var replayKeys = []string{"file", "format", "mode", "speed", "amplify", "rewrite", "preAllocatedVUs", "maxVUs", "gracefulStop"}

var replayFormats = []string{"jsonl", "nginx", "har", "goreplay"}

func (p *parser) drillID(n *yaml.Node) string {
	s, ok := p.str(n, "drill_id")
	if !ok {
		return ""
	}
	if !ValidDrillID(s) {
		p.errorf(n, "drill_id", "%q is not a valid drill id: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", s)
		return ""
	}
	return s
}

// replay parses the replay: section. A timed replay gets its scenario here
// (its rate and duration are set from the recording later, by
// SetReplayRequests).
func (p *parser) replay(n *yaml.Node) *Replay {
	pairs, ok := p.mapping(n, "replay")
	if !ok {
		return nil
	}
	p.known(pairs, "replay", replayKeys...)
	r := &Replay{Mode: ReplayTimed, Speed: 1, Amplify: 1, Pos: posOf(n), Format: "jsonl", MaxVUs: DefaultReplayMaxVUs, GracefulStop: 30 * time.Second}
	preSet := false
	for _, e := range pairs {
		path := join("replay", e.key)
		switch e.key {
		case "file", "rewrite":
			s, ok := p.str(e.v, path)
			if !ok {
				continue
			}
			if strings.TrimSpace(s) == "" {
				p.errorf(e.v, path, "must name a file")
				continue
			}
			written := s
			if !filepath.IsAbs(s) {
				s = filepath.Join(p.dir, s)
			}
			if p.outside(s) {
				p.errorf(e.v, path, "%s", outsideMsg(written))
				continue
			}
			if e.key == "file" {
				r.File = s
			} else {
				r.Rewrite = s
			}
		case "format":
			if s, ok := p.str(e.v, path); ok {
				if !slices.Contains(replayFormats, s) {
					p.errorf(e.v, path, "unknown format %q%s; one of %s", s, suggest(s, replayFormats), strings.Join(replayFormats, ", "))
				}
				r.Format = s
			}
		case "mode":
			if s, ok := p.str(e.v, path); ok {
				switch s {
				case "timed":
					r.Mode = ReplayTimed
				case "rate":
					r.Mode = ReplayRate
				default:
					p.errorf(e.v, path, "unknown mode %q: timed (keep the recorded inter-arrival times) or rate (cycle the recorded mix at the scenarios' arrival rate)", s)
				}
			}
		case "speed":
			if v, ok := p.number(e.v, path); ok {
				if math.IsNaN(v) || v < MinReplaySpeed || v > MaxReplaySpeed {
					p.errorf(e.v, path, "must be between %g and %g, got %g", MinReplaySpeed, MaxReplaySpeed, v)
				} else {
					r.Speed = v
				}
			}
		case "amplify":
			if v, ok := p.integer(e.v, path); ok {
				if v < 1 || v > MaxAmplify {
					p.errorf(e.v, path, "must be between 1 and %d, got %d", MaxAmplify, v)
				} else {
					r.Amplify = int(v)
				}
			}
		case "gracefulStop":
			if d, ok := p.duration(e.v, path); ok {
				if d < 0 {
					p.errorf(e.v, path, "can't be negative")
				} else {
					r.GracefulStop = d
				}
			}
		case "preAllocatedVUs", "maxVUs":
			if v, ok := p.integer(e.v, path); ok {
				if v < 1 || v > 1_000_000 {
					p.errorf(e.v, path, "must be between 1 and 1000000, got %d", v)
				} else if e.key == "maxVUs" {
					r.MaxVUs = int(v)
				} else {
					r.PreAllocatedVUs, preSet = int(v), true
				}
			}
		}
	}
	if r.File == "" {
		p.errorf(n, "replay.file", "is required: the recording to replay (loadcap shadow import writes one)")
	}
	if !preSet {
		r.PreAllocatedVUs = min(r.MaxVUs, 100)
	}
	if r.PreAllocatedVUs > r.MaxVUs {
		p.errorf(n, "replay.preAllocatedVUs", "%d is more than maxVUs %d", r.PreAllocatedVUs, r.MaxVUs)
	}
	return r
}

// replayChecks reports what a replay: excludes: its own requests:, and,
// when timed, k6 scenarios (the recording is the schedule).
func (p *parser) replayChecks(root *yaml.Node, pairs []kv, r *Replay) {
	if e, ok := find(pairs, "requests"); ok {
		if n := resolve(e.v); n != nil && n.Kind == yaml.SequenceNode {
			for i, item := range n.Content {
				if it := resolve(item); it != nil && it.Kind == yaml.MappingNode {
					for j := 0; j+1 < len(it.Content); j += 2 {
						if k, v := resolve(it.Content[j]), resolve(it.Content[j+1]); k != nil && v != nil && k.Value == "protocol" && v.Value == "grpc" {
							p.errorf(v, join(index("requests", i), "protocol"), "replay is HTTP-only: a recording can't be replayed as gRPC calls")
						}
					}
				}
			}
		}
		p.errorf(e.k, "requests", "a file with replay: takes its requests from the recording; remove requests:")
	}
	_, hasScenarios := find(pairs, "scenarios")
	switch {
	case r.Mode == ReplayTimed && hasScenarios:
		e, _ := find(pairs, "scenarios")
		p.errorf(e.k, "scenarios", "a timed replay follows the recording's own arrival times; remove scenarios:, or set replay.mode: rate to replay at their rate")
	case r.Mode == ReplayRate && !hasScenarios:
		p.errorf(root, "scenarios", "is required with replay.mode: rate: the k6 scenarios give the arrival rate")
	}
}

// Tag makes every request of f carry the shadow tag drillID (as drill_id:
// does); "" leaves f untagged.
func (f *File) Tag(drillID string) {
	if f.DrillID != "" && f.DrillID != drillID {
		// The file's own drill_id tag gives way to this one.
		f.Headers = slices.DeleteFunc(f.Headers, func(h Header) bool {
			return strings.EqualFold(h.Name, ShadowHeader) ||
				(strings.EqualFold(h.Name, "Baggage") && h.Value.String() == ShadowBaggageKey+"="+f.DrillID)
		})
	}
	f.DrillID = drillID
	shadowHeaders(f)
}

// shadowHeaders tags every request with the drill id (docs/ARCHITECTURE.md's tag
// protocol), unless the file sets the header itself.
func shadowHeaders(f *File) {
	if f.DrillID == "" || hasHeaderNamed(f.Headers, ShadowHeader) {
		return
	}
	f.Headers = append(f.Headers,
		Header{Name: ShadowHeader, Value: literal(f.DrillID)},
		Header{Name: "Baggage", Value: literal(ShadowBaggageKey + "=" + f.DrillID)})
}

func hasHeaderNamed(hs []Header, name string) bool {
	for _, h := range hs {
		if strings.EqualFold(h.Name, name) {
			return true
		}
	}
	return false
}

// literal is a template without generators.
func literal(s string) *Template {
	t, _ := compileTemplate(s, rawMode, &dataEnv{failed: map[string]bool{}})
	return t
}

// RecordingStats is what a replay needs to know of its recording before
// it starts: how many requests, over how long, and the route names.
type RecordingStats struct {
	Count int64
	Span  time.Duration // first to last recorded request
}

// SetReplayRequests installs a replay's request names (one Request per
// route; the engine takes each request from the recording, so only Name
// and Pos matter) and, for a timed replay, its scenario: open model, the
// recording's span plus its last second, divided by Speed, at the recording's mean rate scaled by
// Speed and Amplify (the rate only sizes the engine's buffers; arrivals
// follow the recording).
func (f *File) SetReplayRequests(names []string, st RecordingStats) error {
	if f.Replay == nil {
		return fmt.Errorf("%s: no replay: section", f.Path)
	}
	if len(names) == 0 {
		return fmt.Errorf("%s: the recording %s holds no requests", f.Path, f.Replay.File)
	}
	f.Requests = f.Requests[:0]
	for _, n := range names {
		f.Requests = append(f.Requests, Request{Name: n, Method: "GET", Weight: 1, Pos: f.Replay.Pos})
	}
	r := f.Replay
	if r.Mode == ReplayTimed {
		// Access logs time requests to the second: the recording covers
		// its last second whole, so its last requests are not cut off.
		span := time.Duration(float64(st.Span+time.Second) / r.Speed)
		if span < time.Millisecond {
			span = time.Millisecond
		}
		rate := float64(st.Count*int64(r.Amplify)) / span.Seconds()
		w := Workload{
			Model:           Open,
			GracefulStop:    r.GracefulStop,
			StartRatePerSec: rate,
			RateStages:      []RateStage{{TargetPerSec: rate, Duration: span}},
			PreAllocatedVUs: r.PreAllocatedVUs,
			MaxVUs:          r.MaxVUs,
		}
		f.Scenarios = []Scenario{f.NewScenario(ReplayScenario, w, nil)}
		return nil
	}
	for i := range f.Scenarios {
		sc := &f.Scenarios[i]
		sc.Requests = sc.Requests[:0]
		for j := range f.Requests {
			sc.Requests = append(sc.Requests, j)
		}
		sc.weigh(f.Requests)
	}
	return nil
}
