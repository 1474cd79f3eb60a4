package scenarios

import (
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/loadcap/loadcap/scenarios/slo"
)

// Drill is a parsed and validated pre-sale drill plan (loadcap drill): the
// traffic, its stages, the guard, the window it may run in, the services
// to measure, the capacity plan to compute and the isolation checks.
type Drill struct {
	Path    string
	DrillID string // the shadow tag value
	Target  string // base URL of the entry service

	// Traffic: a recording (Replay, with Rewrite) or a scenario file whose
	// request mix is sent (Scenario).
	Replay   string
	Rewrite  string
	Scenario string
	MaxVUs   int // in-flight cap of the drill's open-model load

	Stages   []DrillStage
	Guard    DrillGuard
	Window   *DrillWindow // nil: any time
	Services []DrillService
	Capacity DrillCapacity
	// Isolation pre-flight and audit; nil when the plan has none.
	Isolation *DrillIsolation
}

// DrillStage is one step of the drill: a linear ramp to its rate, then a
// hold at it. The rate is absolute (Rate) or a multiple of the recorded
// peak second (Multiplier); exactly one is set.
type DrillStage struct {
	Name       string
	Rate       float64 // requests/s
	Multiplier float64
	Ramp, Hold time.Duration
	Pos        Pos
}

// DrillGuard is the plan's guard section.
type DrillGuard struct {
	Every      time.Duration // evaluation period
	Breaches   int           // consecutive bad evaluations that stop the drill (a rule may override)
	Prometheus string        // base URL of the Prometheus HTTP API; "" when no rule queries it
	SignalLoss time.Duration // Prometheus unreachable this long is a breach
	// SignalLossContinue keeps the drill going when the signal is lost.
	SignalLossContinue bool
	Rules              []DrillRule
	HotSwitchFile      string // the drill stops when this file exists
	HotSwitchListen    string // POST /stop on this address stops the drill
}

// DrillRule is one guard rule; exactly one of Drill, PromQL and Health is
// set.
type DrillRule struct {
	Name     string
	Drill    string  // an SLO expression over the drill's own traffic: "p(99)<500ms", "error<1%"
	PromQL   string  // an instant query
	Max, Min float64 // PromQL: the value must stay at or below Max / at or above Min (NaN: unset)
	Health   string  // a URL that must answer 2xx
	Breaches int     // 0: the guard's
	// OnNoData is what a PromQL answer without a usable sample (no series,
	// only NaN) does: NoDataStop (the default: no data for longer than the
	// signal-loss grace stops the drill, as an unreachable Prometheus
	// does) or NoDataIgnore (the rule's query may legitimately be empty).
	OnNoData string
	Pos      Pos
}

// What a PromQL guard rule does without data (DrillRule.OnNoData).
const (
	NoDataStop   = "stop"
	NoDataIgnore = "ignore"
)

// DrillWindow is when the drill may start.
type DrillWindow struct {
	Start, End time.Time
	Pos        Pos
}

// DrillService is a service whose capacity the drill measures.
type DrillService struct {
	Name    string
	Metrics string // its Prometheus text endpoint
	SLO     string // "" uses the drill's drill rules
	Current int    // replicas running now (for the plan's delta)
	Zones   int
	Pos     Pos
}

// DrillCapacity is the capacity plan computed at the end of the drill.
type DrillCapacity struct {
	PeakQPS     float64 // at the entry; 0: no plan
	Headroom    float64
	Redundancy  Redundancy
	MaxReplicas int
}

// DrillIsolation is the isolation pre-flight and audit.
type DrillIsolation struct {
	DSN      string
	Tables   []string
	IDOffset int64
	Audit    bool
}

// Drill defaults.
const (
	DefaultGuardEvery = time.Second
	// DefaultGuardBreaches with DefaultGuardEvery stops a drill 1-2 s after
	// a breach becomes visible.
	DefaultGuardBreaches   = 2
	DefaultSignalLossGrace = 10 * time.Second
	DefaultDrillMaxVUs     = 2000
)

// LoadDrill reads and parses the drill plan at path; files it names are
// resolved against path's directory.
func LoadDrill(path string) (*Drill, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read drill plan %s: %w", path, err)
	}
	return ParseDrill(path, data)
}

// ParseDrill parses a drill plan held in data. Every problem is reported
// at once, as Errors.
func ParseDrill(path string, data []byte) (*Drill, error) {
	p := &parser{file: path, dir: filepath.Dir(path), budget: aliasBudget}
	var d *Drill
	if root := p.decode(data); root != nil {
		d = p.drillFile(root)
	}
	if err := p.failed(data); err != nil {
		return nil, err
	}
	return d, nil
}

var drillRootKeys = []string{"drill_id", "target", "traffic", "stages", "maxVUs", "guard", "window", "services", "capacity", "isolation"}

func (p *parser) drillFile(root *yaml.Node) *Drill {
	d := &Drill{Path: p.file, MaxVUs: DefaultDrillMaxVUs,
		Guard:    DrillGuard{Every: DefaultGuardEvery, Breaches: DefaultGuardBreaches, SignalLoss: DefaultSignalLossGrace},
		Capacity: DrillCapacity{Headroom: DefaultHeadroom, Redundancy: DefaultRedundancy}}
	pairs, ok := p.document(root, "a drill needs at least drill_id, target, traffic and stages", drillRootKeys)
	if !ok {
		return nil
	}
	if e, ok := find(pairs, "drill_id"); ok {
		d.DrillID = p.drillID(e.v)
	} else {
		p.errorf(root, "drill_id", "is required: the shadow tag every drill request carries")
	}
	if e, ok := find(pairs, "target"); ok {
		d.Target = p.absURL(e.v, "target")
	} else {
		p.errorf(root, "target", "is required: the base URL of the entry service")
	}
	if e, ok := find(pairs, "traffic"); ok {
		p.drillTraffic(e.v, d)
	} else {
		p.errorf(root, "traffic", "is required: a replay: recording or a scenario: file")
	}
	if e, ok := find(pairs, "stages"); ok {
		d.Stages = p.drillStages(e.v, d.Replay != "")
	} else {
		p.errorf(root, "stages", "is required: at least one stage (rate or multiplier, ramp, hold)")
	}
	if e, ok := find(pairs, "maxVUs"); ok {
		if v, ok := p.integer(e.v, "maxVUs"); ok {
			if v < 1 || v > 1_000_000 {
				p.errorf(e.v, "maxVUs", "must be between 1 and 1000000, got %d", v)
			} else {
				d.MaxVUs = int(v)
			}
		}
	}
	if e, ok := find(pairs, "guard"); ok {
		p.drillGuard(e.v, &d.Guard)
	}
	if e, ok := find(pairs, "window"); ok {
		d.Window = p.drillWindow(e)
	}
	if e, ok := find(pairs, "services"); ok {
		d.Services = p.drillServices(e.v)
	}
	if e, ok := find(pairs, "capacity"); ok {
		p.drillCapacity(e.v, &d.Capacity)
		if d.Capacity.PeakQPS > 0 && len(d.Services) == 0 {
			p.errorf(e.k, "capacity", "plans replicas per service: list the services to measure under services:")
		}
	}
	if e, ok := find(pairs, "isolation"); ok {
		d.Isolation = p.drillIsolation(e.v)
	}
	return d
}

// absURL reads an absolute http(s) URL.
func (p *parser) absURL(n *yaml.Node, path string) string {
	s, ok := p.str(n, path)
	if !ok {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.errorf(n, path, "%q is not an absolute http(s) URL", s)
		return ""
	}
	return s
}

// relFile reads a path relative to the plan's directory.
func (p *parser) relFile(n *yaml.Node, path string) string {
	s, ok := p.str(n, path)
	if !ok {
		return ""
	}
	if strings.TrimSpace(s) == "" {
		p.errorf(n, path, "must name a file")
		return ""
	}
	if !filepath.IsAbs(s) {
		s = filepath.Join(p.dir, s)
	}
	return s
}

func (p *parser) drillTraffic(n *yaml.Node, d *Drill) {
	pairs, ok := p.mapping(n, "traffic")
	if !ok {
		return
	}
	p.known(pairs, "traffic", "replay", "scenario", "rewrite")
	for _, e := range pairs {
		path := join("traffic", e.key)
		switch e.key {
		case "replay":
			d.Replay = p.relFile(e.v, path)
		case "scenario":
			d.Scenario = p.relFile(e.v, path)
		case "rewrite":
			d.Rewrite = p.relFile(e.v, path)
		}
	}
	_, hasReplay := find(pairs, "replay")
	_, hasScenario := find(pairs, "scenario")
	switch {
	case hasReplay == hasScenario:
		p.errorf(n, "traffic", "needs exactly one of replay: (a recording) or scenario: (a scenario file's request mix)")
	case hasScenario && d.Rewrite != "":
		e, _ := find(pairs, "rewrite")
		p.errorf(e.k, "traffic.rewrite", "applies to a replay: recording, not to a scenario")
	}
}

func (p *parser) drillStages(n *yaml.Node, replay bool) []DrillStage {
	seq := resolve(n)
	if seq.Kind != yaml.SequenceNode || len(seq.Content) == 0 {
		p.errorf(n, "stages", "must be a non-empty list of stages, got %s", describe(n))
		return nil
	}
	var out []DrillStage
	names := map[string]int{}
	for i, sn := range seq.Content {
		path := index("stages", i)
		pairs, ok := p.mapping(sn, path)
		if !ok {
			continue
		}
		p.known(pairs, path, "name", "rate", "multiplier", "ramp", "hold")
		st := DrillStage{Name: fmt.Sprintf("stage-%d", i+1), Pos: posOf(resolve(sn))}
		for _, e := range pairs {
			kp := join(path, e.key)
			switch e.key {
			case "name":
				if s, ok := p.str(e.v, kp); ok {
					if first, dup := names[s]; dup {
						p.errorf(e.v, kp, "duplicate stage name %q (first is stages[%d])", s, first)
					}
					names[s] = i
					st.Name = s
				}
			case "rate", "multiplier":
				if v, ok := p.number(e.v, kp); ok {
					if math.IsNaN(v) || v <= 0 || v > 1e7 {
						p.errorf(e.v, kp, "must be more than 0 (and at most 1e7), got %v", v)
					} else if e.key == "rate" {
						st.Rate = v
					} else {
						st.Multiplier = v
					}
				}
			case "ramp", "hold":
				if v, ok := p.duration(e.v, kp); ok {
					if v < 0 || v > 24*time.Hour {
						p.errorf(e.v, kp, "must be between 0 and 24h, got %v", v)
					} else if e.key == "ramp" {
						st.Ramp = v
					} else {
						st.Hold = v
					}
				}
			}
		}
		_, hasRate := find(pairs, "rate")
		me, hasMult := find(pairs, "multiplier")
		switch {
		case hasRate == hasMult:
			p.errorf(sn, path, "needs exactly one of rate: (requests/s) or multiplier: (of the recording's peak second)")
		case hasMult && !replay:
			p.errorf(me.k, join(path, "multiplier"), "multiplies the recorded peak: it needs traffic.replay; give rate: for a scenario")
		}
		if _, ok := find(pairs, "hold"); !ok {
			p.errorf(sn, join(path, "hold"), "is required: how long the stage holds its rate")
		} else if st.Ramp+st.Hold <= 0 {
			p.errorf(sn, path, "lasts no time: give hold: (and ramp:) a duration")
		}
		out = append(out, st)
	}
	return out
}

func (p *parser) drillGuard(n *yaml.Node, g *DrillGuard) {
	pairs, ok := p.mapping(n, "guard")
	if !ok {
		return
	}
	p.known(pairs, "guard", "every", "breaches", "prometheus", "signal_loss", "rules", "hot_switch")
	if e, ok := find(pairs, "every"); ok {
		if v, ok := p.duration(e.v, "guard.every"); ok {
			if v < 100*time.Millisecond || v > time.Minute {
				p.errorf(e.v, "guard.every", "must be between 100ms and 1m, got %v", v)
			} else {
				g.Every = v
			}
		}
	}
	if e, ok := find(pairs, "breaches"); ok {
		g.Breaches = p.breaches(e.v, "guard.breaches")
	}
	if e, ok := find(pairs, "prometheus"); ok {
		g.Prometheus = p.absURL(e.v, "guard.prometheus")
	}
	if e, ok := find(pairs, "signal_loss"); ok {
		if sp, ok := p.mapping(e.v, "guard.signal_loss"); ok {
			p.known(sp, "guard.signal_loss", "grace", "action")
			if ge, ok := find(sp, "grace"); ok {
				if v, ok := p.duration(ge.v, "guard.signal_loss.grace"); ok {
					if v <= 0 {
						p.errorf(ge.v, "guard.signal_loss.grace", "must be more than 0")
					} else {
						g.SignalLoss = v
					}
				}
			}
			if ae, ok := find(sp, "action"); ok {
				if s, ok := p.str(ae.v, "guard.signal_loss.action"); ok {
					switch s {
					case "stop":
					case "continue":
						g.SignalLossContinue = true
					default:
						p.errorf(ae.v, "guard.signal_loss.action", "unknown action %q: stop (fail safe) or continue", s)
					}
				}
			}
		}
	}
	if e, ok := find(pairs, "hot_switch"); ok {
		if hp, ok := p.mapping(e.v, "guard.hot_switch"); ok {
			p.known(hp, "guard.hot_switch", "file", "listen")
			if fe, ok := find(hp, "file"); ok {
				g.HotSwitchFile = p.relFile(fe.v, "guard.hot_switch.file")
			}
			if le, ok := find(hp, "listen"); ok {
				g.HotSwitchListen, _ = p.str(le.v, "guard.hot_switch.listen")
			}
		}
	}
	if e, ok := find(pairs, "rules"); ok {
		g.Rules = p.drillRules(e.v)
	}
	for _, r := range g.Rules {
		if r.PromQL != "" && g.Prometheus == "" {
			p.errAt(r.Pos, "guard.prometheus", "is required: rule %q queries Prometheus", r.Name)
			break
		}
	}
}

func (p *parser) breaches(n *yaml.Node, path string) int {
	v, ok := p.integer(n, path)
	if !ok {
		return 0
	}
	if v < 1 || v > 100 {
		p.errorf(n, path, "must be between 1 and 100 consecutive evaluations, got %d", v)
		return 0
	}
	return int(v)
}

func (p *parser) drillRules(n *yaml.Node) []DrillRule {
	seq := resolve(n)
	if seq.Kind != yaml.SequenceNode {
		p.errorf(n, "guard.rules", "must be a list of rules, got %s", describe(n))
		return nil
	}
	var out []DrillRule
	for i, rn := range seq.Content {
		path := index("guard.rules", i)
		pairs, ok := p.mapping(rn, path)
		if !ok {
			continue
		}
		p.known(pairs, path, "name", "drill", "promql", "max", "min", "health", "breaches", "on_no_data")
		r := DrillRule{Name: fmt.Sprintf("rule-%d", i+1), Max: math.NaN(), Min: math.NaN(), Pos: posOf(resolve(rn))}
		kinds := 0
		for _, e := range pairs {
			kp := join(path, e.key)
			switch e.key {
			case "name":
				r.Name, _ = p.str(e.v, kp)
			case "drill":
				kinds++
				if s, ok := p.str(e.v, kp); ok {
					if msg := checkSLO(s); msg != "" {
						p.errorf(e.v, kp, "%s", msg)
					}
					r.Drill = s
				}
			case "promql":
				kinds++
				if s, ok := p.str(e.v, kp); ok && strings.TrimSpace(s) == "" {
					p.errorf(e.v, kp, "is empty")
				} else {
					r.PromQL = s
				}
			case "max", "min":
				if v, ok := p.number(e.v, kp); ok {
					if e.key == "max" {
						r.Max = v
					} else {
						r.Min = v
					}
				}
			case "health":
				kinds++
				r.Health = p.absURL(e.v, kp)
			case "breaches":
				r.Breaches = p.breaches(e.v, kp)
			case "on_no_data":
				if s, ok := p.str(e.v, kp); ok {
					if s != NoDataStop && s != NoDataIgnore {
						p.errorf(e.v, kp, "unknown value %q: stop (no data longer than the signal-loss grace stops the drill) or ignore", s)
					} else {
						r.OnNoData = s
					}
				}
			}
		}
		if kinds != 1 {
			p.errorf(rn, path, "needs exactly one of drill: (an SLO over the drill's traffic), promql: (with max: or min:) or health: (a URL)")
		}
		_, hasMax := find(pairs, "max")
		_, hasMin := find(pairs, "min")
		if r.PromQL != "" && !hasMax && !hasMin {
			p.errorf(rn, join(path, "max"), "is required with promql: (or min:): the limit the query's value must respect")
		}
		if r.PromQL == "" && (hasMax || hasMin) {
			p.errorf(rn, path, "max:/min: apply to promql: rules")
		}
		if e, ok := find(pairs, "on_no_data"); ok && r.PromQL == "" {
			p.errorf(e.v, join(path, "on_no_data"), "applies to promql: rules")
		}
		out = append(out, r)
	}
	return out
}

// checkSLO checks an SLO in the language the guard and capacity find
// judge by ("p(99)<500ms,error<1%"); "" when it parses.
func checkSLO(s string) string {
	if _, err := slo.Parse(s); err != nil {
		return err.Error()
	}
	return ""
}

func (p *parser) drillWindow(e kv) *DrillWindow {
	const path = "window"
	pairs, ok := p.mapping(e.v, path)
	if !ok {
		return nil
	}
	p.known(pairs, path, "start", "end", "timezone")
	loc := time.UTC
	if tz, ok := find(pairs, "timezone"); ok {
		if s, ok := p.str(tz.v, path+".timezone"); ok {
			l, msg := planLocation(s)
			if msg != "" {
				p.errorf(tz.v, path+".timezone", "%s", msg)
				return nil
			}
			loc = l
		}
	}
	w := &DrillWindow{Pos: posOf(e.k)}
	for _, k := range []string{"start", "end"} {
		ke, ok := find(pairs, k)
		if !ok {
			p.errorf(e.k, path+"."+k, "is required")
			return nil
		}
		s, ok := p.str(ke.v, path+"."+k)
		if !ok {
			return nil
		}
		t, ok := parseWindowTime(s, loc)
		if !ok {
			p.errorf(ke.v, path+"."+k, "%q is not a time: use 2006-01-02T15:04:05 (in timezone) or RFC 3339", s)
			return nil
		}
		if k == "start" {
			w.Start = t
		} else {
			w.End = t
		}
	}
	if !w.End.After(w.Start) {
		p.errorf(e.k, path, "ends (%s) before it starts (%s)", w.End.Format(time.RFC3339), w.Start.Format(time.RFC3339))
		return nil
	}
	return w
}

func parseWindowTime(s string, loc *time.Location) (time.Time, bool) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, true
	}
	for _, layout := range planWindowLayouts {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

func (p *parser) drillServices(n *yaml.Node) []DrillService {
	pairs, ok := p.mapping(n, "services")
	if !ok {
		return nil
	}
	var out []DrillService
	for _, e := range pairs {
		path := join("services", e.key)
		sp, ok := p.mapping(e.v, path)
		if !ok {
			continue
		}
		p.known(sp, path, "metrics", "slo", "current", "zones")
		s := DrillService{Name: e.key, Pos: posOf(e.k), Zones: 1}
		if m, ok := find(sp, "metrics"); ok {
			s.Metrics = p.absURL(m.v, join(path, "metrics"))
		} else {
			p.errorf(e.k, join(path, "metrics"), "is required: the service's Prometheus text endpoint")
		}
		if m, ok := find(sp, "slo"); ok {
			if v, ok := p.str(m.v, join(path, "slo")); ok {
				if msg := checkSLO(v); msg != "" {
					p.errorf(m.v, join(path, "slo"), "%s", msg)
				}
				s.SLO = v
			}
		}
		for _, k := range []string{"current", "zones"} {
			if m, ok := find(sp, k); ok {
				if v, ok := p.integer(m.v, join(path, k)); ok {
					if v < 0 || v > 100000 || (k == "zones" && v < 1) {
						p.errorf(m.v, join(path, k), "must be between %d and 100000, got %d", map[bool]int{true: 1, false: 0}[k == "zones"], v)
					} else if k == "current" {
						s.Current = int(v)
					} else {
						s.Zones = int(v)
					}
				}
			}
		}
		out = append(out, s)
	}
	return out
}

func (p *parser) drillCapacity(n *yaml.Node, c *DrillCapacity) {
	pairs, ok := p.mapping(n, "capacity")
	if !ok {
		return
	}
	p.known(pairs, "capacity", "peak_qps", "headroom", "redundancy", "max_replicas")
	if e, ok := find(pairs, "peak_qps"); ok {
		if v, ok := p.number(e.v, "capacity.peak_qps"); ok {
			if v <= 0 || math.IsNaN(v) {
				p.errorf(e.v, "capacity.peak_qps", "must be more than 0 requests/s, got %v", v)
			} else {
				c.PeakQPS = v
			}
		}
	} else {
		p.errorf(n, "capacity.peak_qps", "is required: the sale's peak at the entry, in requests/s")
	}
	if e, ok := find(pairs, "headroom"); ok {
		if h, ok := p.planHeadroom(e.v, "capacity.headroom"); ok {
			c.Headroom = h
		}
	}
	if e, ok := find(pairs, "redundancy"); ok {
		if s, ok := p.str(e.v, "capacity.redundancy"); ok {
			r := strings.ToLower(strings.TrimSpace(s))
			if !planHas(redundancies, r) {
				p.errorf(e.v, "capacity.redundancy", "unknown redundancy %q%s; expected one of: %s", s, suggest(r, redundancies), strings.Join(redundancies, ", "))
			} else {
				c.Redundancy = Redundancy(r)
			}
		}
	}
	if e, ok := find(pairs, "max_replicas"); ok {
		c.MaxReplicas, _ = p.planReplicas(e.v, "capacity.max_replicas", 1)
	}
}

func (p *parser) drillIsolation(n *yaml.Node) *DrillIsolation {
	pairs, ok := p.mapping(n, "isolation")
	if !ok {
		return nil
	}
	p.known(pairs, "isolation", "dsn", "tables", "id_offset", "audit")
	iso := &DrillIsolation{Audit: true}
	if e, ok := find(pairs, "dsn"); ok {
		iso.DSN, _ = p.str(e.v, "isolation.dsn")
	} else {
		p.errorf(n, "isolation.dsn", "is required: the database to check and audit (postgres://…, mysql://… or sqlite:PATH)")
	}
	if e, ok := find(pairs, "tables"); ok {
		seq := resolve(e.v)
		if seq.Kind != yaml.SequenceNode || len(seq.Content) == 0 {
			p.errorf(e.v, "isolation.tables", "must be a non-empty list of production tables")
		} else {
			for i, tn := range seq.Content {
				if s, ok := p.str(tn, index("isolation.tables", i)); ok {
					iso.Tables = append(iso.Tables, s)
				}
			}
		}
	} else {
		p.errorf(n, "isolation.tables", "is required: the production tables whose shadow twins are checked")
	}
	if e, ok := find(pairs, "id_offset"); ok {
		if v, ok := p.integer(e.v, "isolation.id_offset"); ok {
			if v < 0 {
				p.errorf(e.v, "isolation.id_offset", "can't be negative")
			} else {
				iso.IDOffset = v
			}
		}
	}
	if e, ok := find(pairs, "audit"); ok {
		iso.Audit, _ = p.boolean(e.v, "isolation.audit")
	}
	return iso
}

// Duration is the drill's planned length: every stage's ramp and hold.
func (d *Drill) Duration() time.Duration {
	var t time.Duration
	for _, s := range d.Stages {
		t += s.Ramp + s.Hold
	}
	return t
}

// StageAt returns the index of the stage running at offset t, len(Stages)
// after the last.
func (d *Drill) StageAt(t time.Duration) int {
	var end time.Duration
	for i, s := range d.Stages {
		end += s.Ramp + s.Hold
		if t < end {
			return i
		}
	}
	return len(d.Stages)
}

// Workload turns the stages into one open-model workload: each stage ramps
// linearly from the previous rate to its own (peak×multiplier when the
// stage gives a multiplier of the recording's peak second), then holds it.
func (d *Drill) Workload(recordedPeak float64) Workload {
	w := Workload{Model: Open, GracefulStop: 30 * time.Second, MaxVUs: d.MaxVUs, PreAllocatedVUs: min(d.MaxVUs, 100)}
	for _, s := range d.Stages {
		r := d.StageRate(s, recordedPeak)
		if s.Ramp > 0 {
			w.RateStages = append(w.RateStages, RateStage{TargetPerSec: r, Duration: s.Ramp})
		}
		if s.Hold > 0 {
			if s.Ramp == 0 {
				// A step: jump to the rate at once (a zero-length ramp).
				w.RateStages = append(w.RateStages, RateStage{TargetPerSec: r, Duration: 0})
			}
			w.RateStages = append(w.RateStages, RateStage{TargetPerSec: r, Duration: s.Hold})
		}
	}
	return w
}

// StageRate is a stage's rate in requests/s.
func (d *Drill) StageRate(s DrillStage, recordedPeak float64) float64 {
	if s.Multiplier > 0 {
		return s.Multiplier * recordedPeak
	}
	return s.Rate
}
