package scenarios

import (
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

const (
	// DefaultQuickDuration is how long Quick runs when no duration is given.
	DefaultQuickDuration = 30 * time.Second
	// DefaultQuickMaxVUs caps the requests in flight of a Quick open-model
	// run when no MaxVUs is given.
	DefaultQuickMaxVUs = 1000
)

// QuickOptions describe an ad hoc run against one URL (loadcap run --url).
type QuickOptions struct {
	URL     string // absolute http(s) URL; its path and query may hold generators
	Method  string // default GET
	Body    string // may hold generators; "" for none
	Headers map[string]string

	RatePerSec      float64       // > 0: open model (constant-arrival-rate) at this rate
	Duration        time.Duration // default DefaultQuickDuration
	VUs             int           // closed model (constant-vus) when RatePerSec is 0; default 1
	MaxVUs          int           // open model: in-flight cap, default DefaultQuickMaxVUs
	PreAllocatedVUs int           // open model: default min(MaxVUs, rate/10+10)

	Timeout  time.Duration // per request, default DefaultTimeout
	HTTP2    bool
	Insecure bool
}

// Quick builds a File with one scenario and one request, both named
// "default", from command-line options. It goes through the same k6 configs
// and validation as a scenario file; problems come back as Errors whose Path
// names the option ("url", "rate", "maxVUs", ...).
func Quick(o QuickOptions) (*File, error) {
	p := &parser{budget: aliasBudget, declared: map[string]bool{}, scenarioNames: map[string]bool{}}
	if math.IsNaN(o.RatePerSec) || math.IsInf(o.RatePerSec, 0) || o.RatePerSec < 0 {
		p.errAt(Pos{}, "rate", "must be a finite number, 0 or more")
	}
	if o.Duration < 0 {
		p.errAt(Pos{}, "duration", "can't be negative")
	}
	if o.Timeout < 0 {
		p.errAt(Pos{}, "timeout", "can't be negative")
	}
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	if o.Duration == 0 {
		o.Duration = DefaultQuickDuration
	}

	sc := []*yaml.Node{}
	if o.RatePerSec > 0 {
		rate, unit := rateAndUnit(o.RatePerSec)
		maxVUs := o.MaxVUs
		if maxVUs == 0 {
			maxVUs = max(DefaultQuickMaxVUs, o.PreAllocatedVUs)
		}
		pre := o.PreAllocatedVUs
		if pre == 0 {
			pre = min(maxVUs, int(math.Ceil(o.RatePerSec/10))+10)
		}
		sc = append(sc,
			ystr("executor"), ystr(constantArrivalRate),
			ystr("rate"), yint(rate),
			ystr("timeUnit"), ystr(unit.String()),
			ystr("duration"), ystr(o.Duration.String()),
			ystr("preAllocatedVUs"), yint(int64(pre)),
			ystr("maxVUs"), yint(int64(maxVUs)),
		)
	} else {
		vus := o.VUs
		if vus == 0 {
			vus = 1
		}
		sc = append(sc,
			ystr("executor"), ystr(constantVUs),
			ystr("vus"), yint(int64(vus)),
			ystr("duration"), ystr(o.Duration.String()),
		)
	}

	req := []*yaml.Node{ystr("name"), ystr("default"), ystr("url"), ystr(o.URL)}
	if o.Method != "" {
		req = append(req, ystr("method"), ystr(o.Method))
	}
	if o.Body != "" {
		req = append(req, ystr("body"), ystr(o.Body))
	}
	if len(o.Headers) > 0 {
		names := make([]string, 0, len(o.Headers))
		for k := range o.Headers {
			names = append(names, k)
		}
		sort.Strings(names)
		var hs []*yaml.Node
		for _, k := range names {
			hs = append(hs, ystr(k), ystr(o.Headers[k]))
		}
		req = append(req, ystr("headers"), ymap(hs...))
	}
	httpSec := []*yaml.Node{ystr("http2"), ybool(o.HTTP2), ystr("insecureSkipTLSVerify"), ybool(o.Insecure)}
	if o.Timeout > 0 {
		httpSec = append(httpSec, ystr("timeout"), ystr(o.Timeout.String()))
	}
	root := ymap(
		ystr("http"), ymap(httpSec...),
		ystr("scenarios"), ymap(ystr("default"), ymap(sc...)),
		ystr("requests"), &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: []*yaml.Node{ymap(req...)}},
	)
	f := p.parseFile(root)
	if len(p.errs) > 0 {
		for _, e := range p.errs {
			for _, prefix := range []string{"requests[0].", "scenarios.default.", "http."} {
				e.Path = strings.TrimPrefix(e.Path, prefix)
			}
		}
		p.errs.sort()
		return nil, p.errs
	}
	f.Target = o.URL
	return f, nil
}

// rateAndUnit expresses a per-second rate as k6's integer rate per timeUnit.
func rateAndUnit(perSec float64) (int64, time.Duration) {
	for _, k := range []int64{1, 10, 100, 1000} {
		x := perSec * float64(k)
		if r := math.Round(x); r >= 1 && math.Abs(x-r) <= 1e-9*x && r < math.MaxInt64/2 {
			return int64(r), time.Duration(k) * time.Second
		}
	}
	if perSec >= 1 {
		return int64(math.Min(math.Round(perSec*1000), math.MaxInt64/2)), 1000 * time.Second
	}
	// Slower than one per second: one request per 1/perSec.
	return 1, time.Duration(math.Min(float64(time.Second)/perSec, math.MaxInt64/2))
}

func ystr(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

func yint(i int64) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(i, 10)}
}

func ybool(b bool) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(b)}
}

func ymap(kvs ...*yaml.Node) *yaml.Node {
	return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: kvs}
}
