package drill

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/loadcap/loadcap/scenarios"
)

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// Scenario writes the drill's scenario as a scenario file: parsed, it
// is the scenario Prepare builds (the stages as one
// ramping-arrival-rate scenario, tagged with the drill id, no thresholds),
// so that agents, which run scenario files, run the drill. path is where
// the source is to be parsed: beside the file it is made from (the
// recording, or the plan's scenario), whose relative file references it
// keeps; nothing is written there. peak is the recording's peak second
// (Prepare's), for stages given as multipliers of it.
func Scenario(d *scenarios.Drill, peak float64) (path string, src []byte, err error) {
	name := "loadcap-drill-" + unsafeName.ReplaceAllString(d.DrillID, "_") + ".yaml"
	var doc *yaml.Node
	if d.Scenario != "" {
		b, err := os.ReadFile(d.Scenario)
		if err != nil {
			return "", nil, err
		}
		var n yaml.Node
		if err := yaml.Unmarshal(b, &n); err != nil {
			return "", nil, fmt.Errorf("%s: %w", d.Scenario, err)
		}
		if n.Kind != yaml.DocumentNode || len(n.Content) != 1 || n.Content[0].Kind != yaml.MappingNode {
			return "", nil, fmt.Errorf("%s: not a scenario file (a YAML mapping)", d.Scenario)
		}
		doc = n.Content[0]
		for _, k := range []string{"target", "drill_id", "thresholds", "scenarios"} {
			deleteKey(doc, k)
		}
		path = filepath.Join(filepath.Dir(d.Scenario), name)
	} else {
		dir := filepath.Dir(d.Replay)
		path = filepath.Join(dir, name)
		replay := &yaml.Node{Kind: yaml.MappingNode}
		addStr(replay, "file", filepath.ToSlash(filepath.Base(d.Replay)))
		addStr(replay, "mode", "rate")
		if d.Rewrite != "" {
			rel, err := filepath.Rel(dir, d.Rewrite)
			if err != nil || !filepath.IsLocal(rel) {
				return "", nil, fmt.Errorf("%s: rewrite rules %s: keep them beside the recording %s or below it: agents get the files the recording's directory holds", d.Path, d.Rewrite, d.Replay)
			}
			addStr(replay, "rewrite", filepath.ToSlash(rel))
		}
		addInt(replay, "maxVUs", int64(d.MaxVUs))
		addInt(replay, "preAllocatedVUs", int64(min(d.MaxVUs, 100)))
		addStr(replay, "gracefulStop", (30 * time.Second).String())
		doc = &yaml.Node{Kind: yaml.MappingNode}
		add(doc, "replay", replay)
	}
	if d.Target != "" {
		addStr(doc, "target", d.Target)
	}
	addStr(doc, "drill_id", d.DrillID)
	scen := &yaml.Node{Kind: yaml.MappingNode}
	add(scen, "drill", workloadNode(d.Workload(peak)))
	add(doc, "scenarios", scen)
	head := &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{doc},
		HeadComment: fmt.Sprintf("loadcap drill %s: the stages of %s, as its agents run them", d.DrillID, filepath.Base(d.Path))}
	out, err := yaml.Marshal(head)
	if err != nil {
		return "", nil, err
	}
	return path, out, nil
}

// workloadNode is w, an open-model workload, as a k6
// ramping-arrival-rate scenario. k6's rates are integers per timeUnit:
// fractional rates go per 1000 s, to a thousandth of a request a second.
func workloadNode(w scenarios.Workload) *yaml.Node {
	unit, scale := time.Second, 1.0
	for _, st := range append([]scenarios.RateStage{{TargetPerSec: w.StartRatePerSec}}, w.RateStages...) {
		if st.TargetPerSec != math.Trunc(st.TargetPerSec) {
			unit, scale = 1000*time.Second, 1000
		}
	}
	n := &yaml.Node{Kind: yaml.MappingNode}
	addStr(n, "executor", "ramping-arrival-rate")
	addInt(n, "startRate", int64(math.Round(w.StartRatePerSec*scale)))
	addStr(n, "timeUnit", unit.String())
	addInt(n, "preAllocatedVUs", int64(w.PreAllocatedVUs))
	addInt(n, "maxVUs", int64(w.MaxVUs))
	addStr(n, "gracefulStop", w.GracefulStop.String())
	stages := &yaml.Node{Kind: yaml.SequenceNode}
	for _, st := range w.RateStages {
		s := &yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle}
		addInt(s, "target", int64(math.Round(st.TargetPerSec*scale)))
		addStr(s, "duration", st.Duration.String())
		stages.Content = append(stages.Content, s)
	}
	add(n, "stages", stages)
	return n
}

func add(m *yaml.Node, key string, v *yaml.Node) {
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
}

func addStr(m *yaml.Node, key, v string) {
	add(m, key, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v})
}

func addInt(m *yaml.Node, key string, v int64) {
	add(m, key, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(v, 10)})
}

// deleteKey removes key and its value from mapping m.
func deleteKey(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}
