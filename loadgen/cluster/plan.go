package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/loadcap/loadcap/scenarios"
)

// MaxPlanSize bounds a plan (the scenario file and the files it reads), as
// sent to every agent.
const MaxPlanSize = 512 << 20

// Plan is what every agent of a distributed run receives: the scenario file
// as written and every file it reads, so that agents need nothing but the
// loadcap binary. Agents parse it themselves, in a private directory.
type Plan struct {
	Name   string            // the scenario file's base name
	Source []byte            // the scenario file as written
	Files  map[string][]byte // CSV data, a replay's recording and rules, by slash-separated path relative to the file's directory
	Target string            // replaces the file's target: ("" keeps it), like run --target
}

// NewPlan reads f's scenario file (f.Path) and every file it refers to;
// target is run --target's value. Those files must lie in the scenario
// file's directory or below it, where each agent recreates them.
func NewPlan(f *scenarios.File, target string) (*Plan, error) {
	if f.Path == "" {
		return nil, fmt.Errorf("a distributed run needs a scenario file")
	}
	src, err := os.ReadFile(f.Path)
	if err != nil {
		return nil, fmt.Errorf("read scenario %s: %w", f.Path, err)
	}
	return NewPlanSource(f, src, target)
}

// NewPlanSource is NewPlan for a scenario that is not (or not only) on
// disk: src is f's source, as parsed at f.Path, which need not exist; the
// files f reads are read from disk as NewPlan does. A drill on agents
// ships its stages this way.
func NewPlanSource(f *scenarios.File, src []byte, target string) (*Plan, error) {
	if f.Path == "" {
		return nil, fmt.Errorf("a distributed run needs a scenario file")
	}
	p := &Plan{Name: filepath.Base(f.Path), Source: src, Files: map[string][]byte{}, Target: target}
	dir := filepath.Dir(f.Path)
	var paths []string
	for _, d := range f.Data {
		paths = append(paths, d.File)
	}
	seen := map[string]bool{}
	for _, r := range f.Requests {
		if r.GRPC == nil {
			continue
		}
		for _, src := range r.GRPC.ProtoSources { // the .proto and its imports
			if !seen[src] {
				seen[src] = true
				paths = append(paths, src)
			}
		}
	}
	if f.Replay != nil {
		paths = append(paths, f.Replay.File)
		if f.Replay.Rewrite != "" {
			paths = append(paths, f.Replay.Rewrite)
		}
	}
	size := int64(len(src))
	for _, path := range paths {
		rel, ok := inside(dir, path)
		if !ok {
			return nil, fmt.Errorf("%s: %s is outside the scenario's directory; a distributed run ships the files a scenario reads to every agent, so keep them beside it", f.Path, path)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Path, err)
		}
		if size += int64(len(b)); size > MaxPlanSize {
			return nil, fmt.Errorf("%s: the scenario and its files exceed %d MiB, too much to send to every agent", f.Path, MaxPlanSize>>20)
		}
		p.Files[filepath.ToSlash(rel)] = b
	}
	return p, nil
}

// inside returns path relative to dir when it lies in dir or below.
func inside(dir, path string) (string, bool) {
	rel, err := filepath.Rel(dir, path)
	if err != nil || !filepath.IsLocal(rel) {
		return "", false
	}
	return rel, true
}

// size is the plan's size in bytes.
func (p *Plan) size() int64 {
	n := int64(len(p.Source))
	for _, b := range p.Files {
		n += int64(len(b))
	}
	return n
}

// materialize writes the plan into dir and returns the scenario file's
// path there. Names that would leave dir are refused.
func (p *Plan) materialize(dir string) (string, error) {
	name := p.Name
	if name == "" {
		name = "scenario.yaml"
	}
	if name != filepath.Base(name) || !filepath.IsLocal(name) {
		return "", fmt.Errorf("scenario name %q is not a plain file name", p.Name)
	}
	if p.size() > MaxPlanSize {
		return "", fmt.Errorf("plan of %d MiB exceeds %d MiB", p.size()>>20, MaxPlanSize>>20)
	}
	for rel, b := range p.Files {
		local := filepath.FromSlash(rel)
		if !filepath.IsLocal(local) || strings.Contains(rel, "\\") {
			return "", fmt.Errorf("plan file %q is not a relative path inside the scenario's directory", rel)
		}
		path := filepath.Join(dir, local)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return "", err
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return "", err
		}
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, p.Source, 0o600); err != nil {
		return "", err
	}
	return path, nil
}

// confine refuses a parsed file that reads anything outside dir: an agent
// works only from what the plan shipped.
func confine(f *scenarios.File, dir string) error {
	check := func(path string) error {
		if _, ok := inside(dir, path); !ok {
			return fmt.Errorf("the scenario reads %s, outside its directory: a distributed run only reads files shipped beside the scenario", path)
		}
		return nil
	}
	for _, d := range f.Data {
		if err := check(d.File); err != nil {
			return err
		}
	}
	if r := f.Replay; r != nil {
		if err := check(r.File); err != nil {
			return err
		}
		if r.Rewrite != "" {
			return check(r.Rewrite)
		}
	}
	return nil
}
