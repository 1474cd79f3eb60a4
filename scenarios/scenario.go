package scenarios

import (
	"encoding/json"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.k6.io/k6/lib"
	"go.k6.io/k6/lib/executor"
	"go.k6.io/k6/lib/types"
	"gopkg.in/guregu/null.v3"
	"gopkg.in/yaml.v3"
)

// Model is how a scenario generates load.
type Model int

const (
	// Open is the arrival-rate model: requests start on a schedule whatever
	// the server's speed (constant-arrival-rate, ramping-arrival-rate).
	Open Model = iota + 1
	// Closed is the virtual-user model: each VU sends its next request when
	// the previous one finished (constant-vus, ramping-vus).
	Closed
)

// String returns "open" or "closed".
func (m Model) String() string {
	switch m {
	case Open:
		return "open"
	case Closed:
		return "closed"
	}
	return "Model(" + strconv.Itoa(int(m)) + ")"
}

// Scenario is one k6 scenario of the file.
type Scenario struct {
	Name     string
	Config   lib.ExecutorConfig // k6's config, validated with its Validate
	Workload Workload           // the executor, normalized for the engine
	Requests []int              // indices into File.Requests: this scenario's mix
	Pos      Pos

	cum []float64 // cumulative weights of Requests, for Pick
}

// Pick chooses the next request of the scenario's mix by weight, with the
// VU's random source. It returns an index into File.Requests and allocates
// nothing.
func (sc *Scenario) Pick(s *State) int {
	if len(sc.Requests) == 1 {
		return sc.Requests[0]
	}
	x := s.rng.Float64() * sc.cum[len(sc.cum)-1]
	i := sort.SearchFloat64s(sc.cum, x)
	if i < len(sc.cum) && sc.cum[i] == x {
		i++ // SearchFloat64s finds the first cum >= x; x belongs to the next bucket
	}
	return sc.Requests[min(i, len(sc.Requests)-1)]
}

// NewScenario builds a scenario in code (capacity find's steps) over f's
// requests: requests are indices into f.Requests, all of them when nil.
// The workload is taken as given; Config stays nil.
func (f *File) NewScenario(name string, w Workload, requests []int) Scenario {
	sc := Scenario{Name: name, Workload: w, Requests: requests}
	if sc.Requests == nil {
		for i := range f.Requests {
			sc.Requests = append(sc.Requests, i)
		}
	}
	if len(sc.Requests) > 0 {
		sc.weigh(f.Requests)
	}
	return sc
}

func (sc *Scenario) weigh(reqs []Request) {
	sc.cum = make([]float64, len(sc.Requests))
	total := 0.0
	for i, r := range sc.Requests {
		total += reqs[r].Weight
		sc.cum[i] = total
	}
}

// Workload is the executor turned into what the engine needs. Rates are per
// second (k6's rate/timeUnit converted); durations exclude startTime and
// gracefulStop.
type Workload struct {
	Model        Model
	StartTime    time.Duration
	GracefulStop time.Duration

	// Open model. constant-arrival-rate has StartRatePerSec equal to its one
	// stage's target; ramping-arrival-rate changes the rate linearly from
	// the previous target (StartRatePerSec first) to each stage's target.
	StartRatePerSec float64
	RateStages      []RateStage
	PreAllocatedVUs int
	MaxVUs          int // in-flight cap; k6 defaults it to PreAllocatedVUs

	// Closed model. constant-vus has StartVUs equal to its one stage's
	// target; ramping-vus moves linearly between targets like k6.
	StartVUs         int
	VUStages         []VUStage
	GracefulRampDown time.Duration
}

// RateStage moves the arrival rate linearly to TargetPerSec over Duration.
type RateStage struct {
	TargetPerSec float64
	Duration     time.Duration
}

// VUStage moves the number of VUs linearly to Target over Duration.
type VUStage struct {
	Target   int
	Duration time.Duration
}

// Duration is the sum of the stages, without startTime and gracefulStop.
func (w Workload) Duration() time.Duration {
	var d time.Duration
	for _, s := range w.RateStages {
		d += s.Duration
	}
	for _, s := range w.VUStages {
		d += s.Duration
	}
	return d
}

// MaxVUsNeeded is the most VUs the scenario can use at once: MaxVUs in the
// open model, the largest of StartVUs and the stage targets in the closed one.
func (w Workload) MaxVUsNeeded() int {
	if w.Model == Open {
		return w.MaxVUs
	}
	n := w.StartVUs
	for _, s := range w.VUStages {
		n = max(n, s.Target)
	}
	return n
}

const (
	constantArrivalRate = "constant-arrival-rate"
	rampingArrivalRate  = "ramping-arrival-rate"
	constantVUs         = "constant-vus"
	rampingVUs          = "ramping-vus"
)

var supportedExecutors = []string{constantArrivalRate, rampingArrivalRate, constantVUs, rampingVUs}

var unsupportedExecutors = []string{"shared-iterations", "per-vu-iterations", "externally-controlled"}

// rejectedK6Keys are k6 scenario fields that mean nothing to loadcap: saying
// so beats ignoring them.
var rejectedK6Keys = map[string]string{
	"exec":    "exec names a JavaScript function; in loadcap every iteration sends one request from the mix (choose them with requests:)",
	"env":     "env sets JavaScript environment variables, which loadcap scenarios do not have",
	"tags":    "scenario tags are not supported yet; results are already split by scenario and request name",
	"options": "scenario options (browser) are not supported by loadcap",
}

// fieldTypes maps each supported executor to its k6 config fields (JSON name
// to Go type), read from k6's own structs so we follow its vocabulary.
var fieldTypes = func() map[string]map[string]reflect.Type {
	out := map[string]map[string]reflect.Type{}
	for name, cfg := range map[string]any{
		constantArrivalRate: executor.ConstantArrivalRateConfig{},
		rampingArrivalRate:  executor.RampingArrivalRateConfig{},
		constantVUs:         executor.ConstantVUsConfig{},
		rampingVUs:          executor.RampingVUsConfig{},
	} {
		m := map[string]reflect.Type{}
		collectFields(reflect.TypeOf(cfg), m)
		out[name] = m
	}
	return out
}()

func collectFields(t reflect.Type, m map[string]reflect.Type) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			collectFields(f.Type, m)
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			m[name] = f.Type
		}
	}
}

// fieldList is the keys an executor takes, for messages, in a stable order.
func fieldList(exec string) []string {
	var out []string
	for k := range fieldTypes[exec] {
		if _, rejected := rejectedK6Keys[k]; !rejected && k != "executor" {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return append(out, "requests")
}

func (p *parser) scenarios(e kv, reqs []Request, hasReqs bool) []Scenario {
	pairs, ok := p.mapping(e.v, "scenarios")
	if !ok {
		return nil
	}
	if len(pairs) == 0 {
		p.errorf(e.k, "scenarios", "needs at least one scenario")
		return nil
	}
	var out []Scenario
	for _, sp := range pairs {
		p.scenarioNames[sp.key] = true
		if sc, ok := p.scenario(sp, reqs, hasReqs); ok {
			out = append(out, sc)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Workload.StartTime, out[j].Workload.StartTime
		if a != b {
			return a < b
		}
		return out[i].Name < out[j].Name
	})
	return out
}

func (p *parser) scenario(e kv, reqs []Request, hasReqs bool) (Scenario, bool) {
	path := join("scenarios", e.key)
	sc := Scenario{Name: e.key, Pos: posOf(e.k)}
	pairs, ok := p.mapping(e.v, path)
	if !ok {
		return sc, false
	}
	ex, ok := find(pairs, "executor")
	if !ok {
		p.errorf(e.k, join(path, "executor"), "is required: one of %s", strings.Join(supportedExecutors, ", "))
		return sc, false
	}
	exec, ok := p.str(ex.v, join(path, "executor"))
	if !ok {
		return sc, false
	}
	if _, supported := fieldTypes[exec]; !supported {
		for _, u := range unsupportedExecutors {
			if exec == u {
				p.errorf(ex.v, join(path, "executor"), "k6's %s executor is not supported by loadcap yet; use one of %s",
					exec, strings.Join(supportedExecutors, ", "))
				return sc, false
			}
		}
		p.errorf(ex.v, join(path, "executor"), "unknown executor %q%s; use one of %s",
			exec, suggest(exec, supportedExecutors), strings.Join(supportedExecutors, ", "))
		return sc, false
	}

	good := true // every k6 field parsed
	subsetOK := true
	fields := map[string]any{"executor": exec}
	for _, kvp := range pairs {
		kp := join(path, kvp.key)
		switch kvp.key {
		case "executor":
			continue
		case "requests":
			sc.Requests, subsetOK = p.subset(kvp, kp, reqs, hasReqs)
			continue
		}
		if why, rejected := rejectedK6Keys[kvp.key]; rejected {
			p.errorf(kvp.k, kp, "%s", why)
			good = false
			continue
		}
		v, badNode, msg := p.toJSON(kvp.v, 0)
		if msg != "" {
			if badNode == nil {
				badNode = kvp.k
			}
			p.errorf(badNode, kp, "%s", msg)
			good = false
			continue
		}
		if err := probe(e.key, map[string]any{"executor": exec, kvp.key: v}); err != nil {
			good = false
			switch {
			case isUnknownField(err):
				p.unknownScenarioKey(kvp, kp, exec)
			case kvp.key == "stages":
				p.stageErrors(kvp, kp, e.key, exec)
			default:
				p.errorf(kvp.v, kp, "%s", valueMsg(exec, kvp.key, fieldTypes[exec][kvp.key], kvp.v, err))
			}
			continue
		}
		fields[kvp.key] = v
	}
	if !good {
		return sc, false
	}

	raw, err := json.Marshal(map[string]any{e.key: fields})
	var cfgs lib.ScenarioConfigs
	if err == nil {
		err = json.Unmarshal(raw, &cfgs)
	}
	if err != nil || cfgs[e.key] == nil {
		p.errorf(e.k, path, "k6 rejected the scenario: %v", err)
		return sc, false
	}
	sc.Config = cfgs[e.key]
	for _, verr := range sc.Config.Validate() {
		key, stage, sub := k6Key(verr.Error())
		pos, kpath := p.locate(e, pairs, key, stage, sub)
		p.errAt(pos, kpath, "%s", verr.Error())
		good = false
	}
	if !good || !subsetOK {
		return sc, false
	}
	if sc.Workload, ok = workload(sc.Config); !ok {
		p.errorf(ex.v, join(path, "executor"), "executor %s is not supported", exec)
		return sc, false
	}
	if sc.Workload.Model == Open && sc.Workload.MaxVUs <= 0 {
		key := "maxVUs"
		if _, ok := find(pairs, key); !ok {
			key = "preAllocatedVUs"
		}
		pos, kpath := p.locate(e, pairs, key, -1, "")
		p.errAt(pos, kpath, "must be more than 0: with no VUs no request can ever be in flight")
		return sc, false
	}
	if sc.Requests == nil {
		for i := range reqs {
			sc.Requests = append(sc.Requests, i)
		}
	}
	if len(sc.Requests) > 0 {
		sc.weigh(reqs)
	}
	return sc, hasReqs
}

// probe runs fields through k6's own parser (lib.ScenarioConfigs, strict
// about unknown fields).
func probe(name string, fields map[string]any) error {
	raw, err := json.Marshal(map[string]any{name: fields})
	if err != nil {
		return err
	}
	var cfgs lib.ScenarioConfigs
	return json.Unmarshal(raw, &cfgs)
}

func isUnknownField(err error) bool {
	return strings.Contains(err.Error(), "unknown field")
}

func (p *parser) unknownScenarioKey(kvp kv, kpath, exec string) {
	var owners []string
	for _, other := range supportedExecutors {
		if _, ok := fieldTypes[other][kvp.key]; ok && other != exec {
			owners = append(owners, other)
		}
	}
	if len(owners) > 0 {
		p.errorf(kvp.k, kpath, "%s has no %s (that is a field of %s); it takes: %s",
			exec, kvp.key, strings.Join(owners, ", "), strings.Join(fieldList(exec), ", "))
		return
	}
	p.errorf(kvp.k, kpath, "unknown key%s; %s takes: %s",
		suggest(kvp.key, fieldList(exec)), exec, strings.Join(fieldList(exec), ", "))
}

// stageErrors narrows a k6 error about stages down to the stage and field.
func (p *parser) stageErrors(kvp kv, kpath, name, exec string) {
	seq := resolve(kvp.v)
	if seq.Kind != yaml.SequenceNode {
		p.errorf(seq, kpath, "must be a list of stages like {duration: 30s, target: 10}, got %s", describe(seq))
		return
	}
	for i, el := range seq.Content {
		el = resolve(el)
		ep := index(kpath, i)
		v, _, _ := p.toJSON(el, 0)
		if probe(name, map[string]any{"executor": exec, "stages": []any{v}}) == nil {
			continue
		}
		pairs, ok := p.mapping(el, ep)
		if !ok {
			continue
		}
		reported := false
		for _, f := range pairs {
			fv, _, _ := p.toJSON(f.v, 0)
			err := probe(name, map[string]any{"executor": exec, "stages": []any{map[string]any{f.key: fv}}})
			if err == nil {
				continue
			}
			reported = true
			if isUnknownField(err) {
				p.errorf(f.k, join(ep, f.key), "unknown key%s; a stage takes duration and target",
					suggest(f.key, []string{"duration", "target"}))
				continue
			}
			ft := reflect.TypeFor[types.NullDuration]()
			if f.key == "target" {
				ft = reflect.TypeFor[null.Int]()
			}
			p.errorf(f.v, join(ep, f.key), "%s", valueMsg(exec, f.key, ft, f.v, err))
		}
		if !reported {
			p.errorf(el, ep, "invalid stage")
		}
	}
}

// valueMsg explains a k6 type error in terms of the YAML the user wrote.
func valueMsg(exec, key string, t reflect.Type, n *yaml.Node, err error) string {
	got := describe(n)
	switch t {
	case reflect.TypeFor[null.Int]():
		msg := "must be an integer, got " + got
		if rn := resolve(n); rn != nil && rn.Tag == "!!float" &&
			(exec == constantArrivalRate || exec == rampingArrivalRate) &&
			(key == "rate" || key == "startRate" || key == "target") {
			msg += "; for a fractional rate raise timeUnit (rate: 1 with timeUnit: 2s is 0.5/s)"
		}
		return msg
	case reflect.TypeFor[types.NullDuration]():
		return "must be a duration such as 30s or 1m30s (a bare number means milliseconds), got " + got
	case reflect.TypeFor[[]executor.Stage]():
		return "must be a list of stages like {duration: 30s, target: 10}, got " + got
	}
	return err.Error()
}

var stageNum = regexp.MustCompile(`stage (\d+)`)

// k6Key finds the config key a k6 validation message is about: a top-level
// key, or stage (0-based) and sub key ("duration", "target") within stages.
func k6Key(msg string) (key string, stage int, sub string) {
	m := strings.ToLower(msg)
	stage = -1
	has := func(s string) bool { return strings.Contains(m, s) }
	switch {
	case has("scenario name"):
		return "", -1, ""
	case has("either startvus or one of the stages"), has("at least one stage"):
		return "stages", -1, ""
	}
	if sm := stageNum.FindStringSubmatch(m); sm != nil {
		n, _ := strconv.Atoi(sm[1])
		switch {
		case has("duration"):
			sub = "duration"
		case has("target"):
			sub = "target"
		}
		return "stages", n - 1, sub
	}
	for _, k := range []string{"maxVUs", "preAllocatedVUs", "startVUs", "startRate", "timeUnit",
		"startTime", "gracefulStop", "gracefulRampDown"} {
		if has(strings.ToLower(k)) {
			return k, -1, ""
		}
	}
	switch {
	case has("start vus"):
		return "startVUs", -1, ""
	case has("iteration rate"):
		return "rate", -1, ""
	case has("number of vus"):
		return "vus", -1, ""
	case has("duration"):
		return "duration", -1, ""
	case has("exec"):
		return "exec", -1, ""
	case has("type"):
		return "executor", -1, ""
	}
	return "", -1, ""
}

// locate finds the position of key (and stage/sub within stages) in a
// scenario, falling back to the nearest enclosing node that exists.
func (p *parser) locate(sc kv, pairs []kv, key string, stage int, sub string) (Pos, string) {
	path := join("scenarios", sc.key)
	if key == "" {
		return posOf(sc.k), path
	}
	kpath := join(path, key)
	e, ok := find(pairs, key)
	if !ok {
		return posOf(sc.k), kpath
	}
	if stage < 0 {
		return posOf(e.k), kpath
	}
	kpath = index(kpath, stage)
	seq := resolve(e.v)
	if seq == nil || seq.Kind != yaml.SequenceNode || stage >= len(seq.Content) {
		return posOf(e.k), kpath
	}
	el := resolve(seq.Content[stage])
	if sub == "" {
		return posOf(el), kpath
	}
	kpath = join(kpath, sub)
	if el.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(el.Content); i += 2 {
			if k := resolve(el.Content[i]); k != nil && k.Value == sub {
				return posOf(k), kpath
			}
		}
	}
	return posOf(el), kpath
}

// subset parses a scenario's requests: list of request names.
func (p *parser) subset(kvp kv, kpath string, reqs []Request, hasReqs bool) ([]int, bool) {
	seq := resolve(kvp.v)
	if seq.Kind == yaml.ScalarNode && seq.Tag != "!!null" {
		// A single name is accepted as a one-element list.
		seq = &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{seq}}
	}
	if seq.Kind != yaml.SequenceNode || len(seq.Content) == 0 {
		p.errorf(kvp.k, kpath, "must be a non-empty list of request names, got %s", describe(kvp.v))
		return nil, false
	}
	var out []int
	good := true
	seen := map[string]bool{}
	names := p.declaredList
	for i, n := range seq.Content {
		ip := index(kpath, i)
		name, ok := p.str(n, ip)
		if !ok {
			good = false
			continue
		}
		if seen[name] {
			p.errorf(n, ip, "request %q is listed twice", name)
			good = false
			continue
		}
		seen[name] = true
		found := -1
		for j, r := range reqs {
			if r.Name == name {
				found = j
			}
		}
		switch {
		case found >= 0:
			out = append(out, found)
		case p.declared[name] || !hasReqs:
			good = false // the request itself has problems, reported there
		default:
			p.errorf(n, ip, "unknown request %q%s; requests: %s", name, suggest(name, names), strings.Join(names, ", "))
			good = false
		}
	}
	return out, good
}

// workload derives the engine's view from a validated k6 config. It returns
// false for a config type it does not know.
func workload(cfg lib.ExecutorConfig) (Workload, bool) {
	w := Workload{StartTime: cfg.GetStartTime(), GracefulStop: cfg.GetGracefulStop()}
	perSec := func(rate int64, unit types.NullDuration) float64 {
		return float64(rate) * float64(time.Second) / float64(unit.TimeDuration())
	}
	maxVUs := func(pre, mx null.Int) int {
		if !mx.Valid {
			return int(pre.Int64)
		}
		return int(mx.Int64)
	}
	switch c := cfg.(type) {
	case *executor.ConstantArrivalRateConfig:
		r := perSec(c.Rate.Int64, c.TimeUnit)
		w.Model = Open
		w.StartRatePerSec = r
		w.RateStages = []RateStage{{TargetPerSec: r, Duration: c.Duration.TimeDuration()}}
		w.PreAllocatedVUs = int(c.PreAllocatedVUs.Int64)
		w.MaxVUs = maxVUs(c.PreAllocatedVUs, c.MaxVUs)
	case *executor.RampingArrivalRateConfig:
		w.Model = Open
		w.StartRatePerSec = perSec(c.StartRate.Int64, c.TimeUnit)
		for _, s := range c.Stages {
			w.RateStages = append(w.RateStages, RateStage{TargetPerSec: perSec(s.Target.Int64, c.TimeUnit), Duration: s.Duration.TimeDuration()})
		}
		w.PreAllocatedVUs = int(c.PreAllocatedVUs.Int64)
		w.MaxVUs = maxVUs(c.PreAllocatedVUs, c.MaxVUs)
	case executor.ConstantVUsConfig:
		w.Model = Closed
		w.StartVUs = int(c.VUs.Int64)
		w.VUStages = []VUStage{{Target: int(c.VUs.Int64), Duration: c.Duration.TimeDuration()}}
	case executor.RampingVUsConfig:
		w.Model = Closed
		w.StartVUs = int(c.StartVUs.Int64)
		for _, s := range c.Stages {
			w.VUStages = append(w.VUStages, VUStage{Target: int(s.Target.Int64), Duration: s.Duration.TimeDuration()})
		}
		w.GracefulRampDown = c.GetGracefulRampDown()
	case *executor.ConstantVUsConfig:
		return workload(*c)
	case *executor.RampingVUsConfig:
		return workload(*c)
	default:
		return w, false
	}
	return w, true
}
