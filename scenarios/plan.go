package scenarios

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	// A plan names IANA time zones; the embedded database makes them load
	// on machines (and slim containers) without /usr/share/zoneinfo.
	_ "time/tzdata"

	"gopkg.in/yaml.v3"
)

// Redundancy is how many replicas a plan keeps beyond what the peak needs.
type Redundancy string

const (
	// RedundancyNone plans exactly what the peak needs.
	RedundancyNone Redundancy = "none"
	// RedundancyN1 adds one replica, so the peak survives one lost pod.
	RedundancyN1 Redundancy = "n+1"
	// RedundancyN2 adds two replicas: one lost pod while another restarts
	// or rolls out.
	RedundancyN2 Redundancy = "n+2"
	// RedundancyZone survives the loss of one of a service's zones: the
	// need is multiplied by Z/(Z−1) before rounding.
	RedundancyZone Redundancy = "zone"
)

var redundancies = []string{string(RedundancyNone), string(RedundancyN1), string(RedundancyN2), string(RedundancyZone)}

// Plan defaults and limits.
const (
	// DefaultHeadroom is the share of a replica's capacity a plan keeps
	// unused at the peak when the file sets no headroom.
	DefaultHeadroom = 0.3
	// MaxHeadroom is the largest headroom a plan accepts: above it a
	// replica would run almost idle and the plan is surely a typo.
	MaxHeadroom = 0.95
	// DefaultRedundancy applies when the file sets no redundancy: a plan
	// that loses its peak to one crashed pod is not a plan.
	DefaultRedundancy = RedundancyN1
	// MaxFindFileSize bounds a find.json a plan reads its capacity from.
	MaxFindFileSize = 64 << 20
)

// Plan is a parsed and validated capacity plan: the peak a system must
// carry, and for each service what one replica sustains and how many entry
// requests become one request to it.
type Plan struct {
	Path       string
	Peak       Peak
	Headroom   float64    // fraction of capacity kept free at the peak, in [0, MaxHeadroom]
	Redundancy Redundancy // one of the Redundancy constants
	// MaxReplicas is budget.max_replicas: the default cap of every
	// service's autoscaler; 0 when the file sets no budget.
	MaxReplicas int
	Services    []PlanService // in file order
}

// Peak is the load the plan is for, at the system's entry.
type Peak struct {
	EntryQPS float64 // requests per second at the entry
	Window   *Window // nil when the file names no window
	Pos      Pos     // of the entry_qps value
}

// Window is when the peak happens. Start and End are in Location.
type Window struct {
	Start, End time.Time
	Location   *time.Location
	Timezone   string // the IANA name as written ("UTC" when not written)
	Pos        Pos    // of the window key
}

// PlanService is one service of a plan.
type PlanService struct {
	Name string
	// CapacityQPS is what one replica sustains within the SLO, in requests
	// per second (find's max_qps).
	CapacityQPS float64
	// CapacityFile is the find.json the capacity was read from, as
	// written in the plan (relative to the plan's directory); "" when the
	// capacity was written as a number.
	CapacityFile string
	Fanout       float64 // requests to this service per entry request, > 0
	Current      int     // replicas running now, ≥ 0
	Zones        int     // zones the replicas are spread over, ≥ 1 (1 when not written)
	// MaxReplicas caps this service's autoscaler; 0 means the plan's
	// MaxReplicas.
	MaxReplicas int
	// LowerBound: CapacityQPS was never measured at saturation (a drill
	// stopped by another service first), so the service sustains at least
	// that; it is not a plan's bottleneck while a measured service is.
	LowerBound bool
	Metric     string // the per-pod QPS metric name for the HPA; "" for the default
	Namespace  string // "" leaves the namespace to kubectl
	Deployment string // the scaled Deployment; "" means Name
	Pos        Pos    // of the service's key
}

// LoadPlan reads and parses the capacity plan at path. find.json files named
// by capacity: are resolved relative to path's directory.
func LoadPlan(path string) (*Plan, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read plan %s: %w", path, err)
	}
	return ParsePlan(path, data)
}

// ParsePlan parses a capacity plan held in data; path names it in errors and
// anchors relative find.json paths. Every problem is reported at once, as
// Errors.
func ParsePlan(path string, data []byte) (*Plan, error) {
	p := &parser{file: path, dir: filepath.Dir(path), budget: aliasBudget}
	var plan *Plan
	if root := p.decode(data); root != nil {
		plan = p.planFile(root)
	}
	if err := p.failed(data); err != nil {
		return nil, err
	}
	return plan, nil
}

var planRootKeys = []string{"peak", "headroom", "redundancy", "budget", "services"}

func (p *parser) planFile(root *yaml.Node) *Plan {
	plan := &Plan{Path: p.file, Headroom: DefaultHeadroom, Redundancy: DefaultRedundancy}
	pairs, ok := p.document(root, "a plan needs at least peak and services", planRootKeys)
	if !ok {
		return nil
	}

	if e, ok := find(pairs, "peak"); ok {
		p.planPeak(e.v, plan)
	} else {
		p.errorf(root, "peak", "is required: the entry_qps the plan is for")
	}
	if e, ok := find(pairs, "headroom"); ok {
		if h, ok := p.planHeadroom(e.v, "headroom"); ok {
			plan.Headroom = h
		}
	}
	if e, ok := find(pairs, "redundancy"); ok {
		if s, ok := p.str(e.v, "redundancy"); ok {
			r := strings.ToLower(strings.TrimSpace(s))
			if !planHas(redundancies, r) {
				p.errorf(e.v, "redundancy", "unknown redundancy %q%s; expected one of: %s",
					s, suggest(r, redundancies), strings.Join(redundancies, ", "))
			} else {
				plan.Redundancy = Redundancy(r)
			}
		}
	}
	if e, ok := find(pairs, "budget"); ok {
		if bp, ok := p.mapping(e.v, "budget"); ok {
			p.known(bp, "budget", "max_replicas")
			if m, ok := find(bp, "max_replicas"); ok {
				plan.MaxReplicas, _ = p.planReplicas(m.v, "budget.max_replicas", 1)
			}
		}
	}
	if e, ok := find(pairs, "services"); ok {
		plan.Services = p.planServices(e, plan)
	} else {
		p.errorf(root, "services", "is required: at least one service with its capacity")
	}
	return plan
}

func planHas(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func (p *parser) planPeak(n *yaml.Node, plan *Plan) {
	pairs, ok := p.mapping(n, "peak")
	if !ok {
		return
	}
	p.known(pairs, "peak", "entry_qps", "window")
	if e, ok := find(pairs, "entry_qps"); ok {
		plan.Peak.Pos = posOf(resolve(e.v))
		if v, ok := p.number(e.v, "peak.entry_qps"); ok {
			if v <= 0 {
				p.errorf(e.v, "peak.entry_qps", "must be more than 0 requests/s, got %v", v)
			} else {
				plan.Peak.EntryQPS = v
			}
		}
	} else {
		p.errorf(n, "peak.entry_qps", "is required: the peak rate at the entry, in requests/s")
	}
	if e, ok := find(pairs, "window"); ok {
		plan.Peak.Window = p.planWindow(e)
	}
}

// planWindowLayouts are the accepted forms of a window's start and end, read in
// the window's time zone. RFC 3339 with an offset is accepted too.
var planWindowLayouts = []string{
	"2006-01-02T15:04:05",
	"2006-01-02T15:04",
	"2006-01-02 15:04:05",
	"2006-01-02 15:04",
}

// planMaxWindow bounds a sale window: the KEDA cron trigger repeats every year,
// so a window of a year or more has no cron form.
const planMaxWindow = 365 * 24 * time.Hour

func (p *parser) planWindow(e kv) *Window {
	const path = "peak.window"
	pairs, ok := p.mapping(e.v, path)
	if !ok {
		return nil
	}
	if isNull(e.v) {
		p.errorf(e.k, path, "needs start and end")
		return nil
	}
	p.known(pairs, path, "start", "end", "timezone")
	w := &Window{Timezone: "UTC", Location: time.UTC, Pos: posOf(e.k)}
	good := true
	if tz, ok := find(pairs, "timezone"); ok {
		good = false
		if s, ok := p.str(tz.v, path+".timezone"); ok {
			if loc, msg := planLocation(s); msg != "" {
				p.errorf(tz.v, path+".timezone", "%s", msg)
			} else {
				w.Timezone, w.Location, good = s, loc, true
			}
		}
	}
	at := func(key string) (time.Time, bool) {
		e, ok := find(pairs, key)
		if !ok {
			p.errAt(w.Pos, path+"."+key, "is required")
			return time.Time{}, false
		}
		s, ok := p.str(e.v, path+"."+key)
		if !ok {
			return time.Time{}, false
		}
		t, ok := planTime(strings.TrimSpace(s), w.Location)
		if !ok {
			p.errorf(e.v, path+"."+key, "%q is not a time: write it as 2026-11-11T00:00:00 (in the window's timezone)", s)
		}
		return t, ok
	}
	start, okStart := at("start")
	end, okEnd := at("end")
	if !okStart || !okEnd || !good {
		return nil
	}
	w.Start, w.End = start, end
	endKey, _ := find(pairs, "end")
	switch {
	case !end.After(start):
		p.errorf(endKey.v, path+".end", "must be after start (%s)", start.Format(time.RFC3339))
		return nil
	case end.Sub(start) >= planMaxWindow:
		p.errorf(endKey.v, path+".end", "the window must be shorter than a year (the pre-scaling cron repeats yearly)")
		return nil
	}
	return w
}

// planLocation loads an IANA time zone, or returns a message for the user.
func planLocation(name string) (*time.Location, string) {
	switch strings.TrimSpace(name) {
	case "":
		return nil, "must name a time zone such as Asia/Shanghai or UTC"
	case "Local":
		return nil, `"Local" depends on the machine: name the zone, such as Asia/Shanghai or UTC`
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Sprintf("unknown time zone %q: use an IANA name such as Asia/Shanghai, Europe/Berlin or UTC", name)
	}
	return loc, ""
}

func planTime(s string, loc *time.Location) (time.Time, bool) {
	for _, layout := range planWindowLayouts {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, true
		}
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.In(loc), true
	}
	return time.Time{}, false
}

// planHeadroom reads a fraction (0.3) or a percentage ("30%").
func (p *parser) planHeadroom(n *yaml.Node, path string) (float64, bool) {
	n = resolve(n)
	var h float64
	pct := false
	if n != nil && n.Kind == yaml.ScalarNode && n.Tag == "!!str" && strings.HasSuffix(strings.TrimSpace(n.Value), "%") {
		v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(n.Value), "%")), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			p.errorf(n, path, "must be a percentage such as 30%% or a fraction such as 0.3, got %s", describe(n))
			return 0, false
		}
		h, pct = v/100, true
	} else {
		v, ok := p.number(n, path)
		if !ok {
			return 0, false
		}
		h = v
	}
	if h < 0 || h > MaxHeadroom {
		hint := ""
		if !pct && h > 1 && h <= 95 {
			hint = fmt.Sprintf(" (for a percentage write %v%%)", h)
		}
		p.errorf(n, path, "must be between 0 and %v (0%%–%v%%), got %s%s", MaxHeadroom, MaxHeadroom*100, n.Value, hint)
		return 0, false
	}
	return h, true
}

// planReplicas reads a replica count of at least lo.
func (p *parser) planReplicas(n *yaml.Node, path string, lo int64) (int, bool) {
	v, ok := p.integer(n, path)
	if !ok {
		return 0, false
	}
	if v < lo {
		p.errorf(n, path, "must be %d or more, got %d", lo, v)
		return 0, false
	}
	if v > math.MaxInt32 {
		p.errorf(n, path, "must be at most %d (Kubernetes counts replicas in int32), got %d", math.MaxInt32, v)
		return 0, false
	}
	return int(v), true
}

// planDNSLabel is an RFC 1123 label, the form of Kubernetes object names and
// namespaces; planDNSSubdomain allows dots between labels.
var (
	planDNSLabel     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	planDNSSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	planMetricName   = regexp.MustCompile(`^[A-Za-z_:][A-Za-z0-9_:./-]*$`)
)

var planServiceKeys = []string{"capacity", "fanout", "current", "zones", "max_replicas", "metric", "namespace", "deployment"}

func (p *parser) planServices(e kv, plan *Plan) []PlanService {
	pairs, ok := p.mapping(e.v, "services")
	if !ok {
		return nil
	}
	if len(pairs) == 0 {
		p.errorf(e.k, "services", "needs at least one service")
		return nil
	}
	var out []PlanService
	targets := map[string]Pos{} // namespace/deployment → first service's position
	for _, se := range pairs {
		path := join("services", se.key)
		s, ok := p.planService(se, path, plan)
		if !ok {
			continue
		}
		key := s.Namespace + "/" + s.Deployment
		if s.Deployment == "" {
			key = s.Namespace + "/" + s.Name
		}
		if first, dup := targets[key]; dup {
			p.errAt(s.Pos, path, "scales the same deployment as the service at line %d: two autoscalers on one deployment fight each other", first.Line)
			continue
		}
		targets[key] = s.Pos
		out = append(out, s)
	}
	return out
}

func (p *parser) planService(e kv, path string, plan *Plan) (PlanService, bool) {
	s := PlanService{Name: e.key, Fanout: 1, Zones: 1, Pos: posOf(e.k)}
	good := true
	bad := func() { good = false }
	if !planDNSLabel.MatchString(e.key) || len(e.key) > 63 {
		p.errorf(e.k, path, "%q: a service name becomes a Kubernetes object name: lowercase letters, digits and -, at most 63, starting and ending with a letter or digit", e.key)
		bad()
	}
	pairs, ok := p.mapping(e.v, path)
	if !ok {
		return s, false
	}
	p.known(pairs, path, planServiceKeys...)

	if c, ok := find(pairs, "capacity"); ok {
		if !p.planCapacity(c, join(path, "capacity"), &s) {
			bad()
		}
	} else {
		p.errorf(e.k, join(path, "capacity"), "is required: the requests/s one replica sustains, or a find.json to read it from")
		bad()
	}
	if f, ok := find(pairs, "fanout"); ok {
		if v, ok := p.number(f.v, join(path, "fanout")); !ok {
			bad()
		} else if v <= 0 {
			p.errorf(f.v, join(path, "fanout"), "must be more than 0 (requests to this service per entry request), got %v", v)
			bad()
		} else {
			s.Fanout = v
		}
	}
	if c, ok := find(pairs, "current"); ok {
		if s.Current, ok = p.planReplicas(c.v, join(path, "current"), 0); !ok {
			bad()
		}
	} else {
		p.errorf(e.k, join(path, "current"), "is required: the replicas running now")
		bad()
	}
	if z, ok := find(pairs, "zones"); ok {
		if s.Zones, ok = p.planReplicas(z.v, join(path, "zones"), 1); !ok {
			s.Zones = 0
			bad()
		} else if plan.Redundancy == RedundancyZone && s.Zones < 2 {
			p.errorf(z.v, join(path, "zones"), "redundancy zone needs a service spread over at least 2 zones, got %d", s.Zones)
			bad()
		}
	} else if plan.Redundancy == RedundancyZone {
		p.errorf(e.k, join(path, "zones"), "is required with redundancy zone: the number of zones (2 or more) the replicas are spread over")
		bad()
	}
	if m, ok := find(pairs, "max_replicas"); ok {
		if s.MaxReplicas, ok = p.planReplicas(m.v, join(path, "max_replicas"), 1); !ok {
			bad()
		}
	}
	if m, ok := find(pairs, "metric"); ok {
		if v, ok := p.str(m.v, join(path, "metric")); !ok {
			bad()
		} else if !planMetricName.MatchString(v) {
			p.errorf(m.v, join(path, "metric"), "%q is not a metric name: letters, digits and _ : . / -, starting with a letter, _ or :", v)
			bad()
		} else {
			s.Metric = v
		}
	}
	if m, ok := find(pairs, "namespace"); ok {
		if v, ok := p.str(m.v, join(path, "namespace")); !ok {
			bad()
		} else if !planDNSLabel.MatchString(v) || len(v) > 63 {
			p.errorf(m.v, join(path, "namespace"), "%q is not a Kubernetes namespace: lowercase letters, digits and -, at most 63", v)
			bad()
		} else {
			s.Namespace = v
		}
	}
	if m, ok := find(pairs, "deployment"); ok {
		if v, ok := p.str(m.v, join(path, "deployment")); !ok {
			bad()
		} else if !planDNSSubdomain.MatchString(v) || len(v) > 253 {
			p.errorf(m.v, join(path, "deployment"), "%q is not a Kubernetes object name: lowercase letters, digits, - and .", v)
			bad()
		} else {
			s.Deployment = v
		}
	}
	return s, good
}

// planCapacity reads capacity: a number of requests/s, or the path of a
// find.json whose max_qps is the capacity.
func (p *parser) planCapacity(e kv, path string, s *PlanService) bool {
	n := resolve(e.v)
	if n != nil && n.Kind == yaml.ScalarNode && (n.Tag == "!!int" || n.Tag == "!!float") {
		v, ok := p.number(n, path)
		if !ok {
			return false
		}
		if v <= 0 {
			p.errorf(n, path, "must be more than 0 requests/s per replica, got %v", v)
			return false
		}
		s.CapacityQPS = v
		return true
	}
	name, ok := p.str(n, path)
	if !ok {
		return false
	}
	name = strings.TrimSpace(name)
	if v, err := strconv.ParseFloat(name, 64); err == nil {
		// A quoted number is still a number.
		if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			p.errorf(n, path, "must be more than 0 requests/s per replica, got %s", describe(n))
			return false
		}
		s.CapacityQPS = v
		return true
	}
	if name == "" {
		p.errorf(n, path, "must be a number of requests/s or the path of a find.json, got %s", describe(n))
		return false
	}
	file := name
	if !filepath.IsAbs(file) {
		file = filepath.Join(p.dir, file)
	}
	qps, msg := readFindMaxQPS(file)
	if msg != "" {
		// Reported at the key, as the brief of the file names it.
		p.errorf(e.k, path, "find.json %s: %s", name, msg)
		return false
	}
	s.CapacityQPS, s.CapacityFile = qps, name
	return true
}

// readFindMaxQPS reads max_qps from the find.json at file (the output of
// capacity find). It returns a message for the user on failure.
func readFindMaxQPS(file string) (float64, string) {
	// Stat before opening, so that a FIFO or a device never blocks the
	// parse, and the open file again in case it was swapped meanwhile.
	st, err := os.Stat(file)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, "does not exist"
		}
		return 0, fmt.Sprintf("cannot read: %v", err)
	}
	if !st.Mode().IsRegular() {
		return 0, "is not a regular file"
	}
	fh, err := os.Open(file)
	if err != nil {
		return 0, fmt.Sprintf("cannot read: %v", err)
	}
	defer fh.Close()
	if st, err := fh.Stat(); err != nil || !st.Mode().IsRegular() {
		return 0, "is not a regular file"
	}
	data, err := io.ReadAll(io.LimitReader(fh, MaxFindFileSize+1))
	if err != nil {
		return 0, fmt.Sprintf("cannot read: %v", err)
	}
	if len(data) > MaxFindFileSize {
		return 0, fmt.Sprintf("is larger than %d MiB", MaxFindFileSize>>20)
	}
	var doc struct {
		MaxQPS *json.RawMessage `json:"max_qps"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return 0, fmt.Sprintf("is not valid find output (JSON): %v", err)
	}
	if doc.MaxQPS == nil {
		return 0, `has no "max_qps": is it the --out of capacity find?`
	}
	var v float64
	if err := json.Unmarshal(*doc.MaxQPS, &v); err != nil {
		return 0, fmt.Sprintf(`"max_qps" must be a number, got %s`, clip(string(*doc.MaxQPS)))
	}
	if v <= 0 {
		return 0, fmt.Sprintf(`"max_qps" is %v: no step of the search met the SLO, so there is no capacity to plan with`, v)
	}
	return v, ""
}
