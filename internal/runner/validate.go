package runner

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/loadcap/loadcap/internal/capture"
	"github.com/loadcap/loadcap/loadgen/k6"
	"github.com/loadcap/loadcap/scenarios"
)

// Validate checks one file as a run would load it and says in a few
// words what it holds: a k6 script is archived by k6 itself (its init
// code runs, imports and options resolve, nothing is sent); a drill plan,
// a capacity plan or a scenario file is parsed with every problem at
// file:line:col, and the files it refers to (a recording and its rewrite
// rules, a scenario, a script) are checked too.
func Validate(ctx context.Context, path string) (string, error) {
	if IsScript(path) {
		return validateScript(ctx, path)
	}
	return validateFile(ctx, path)
}

// IsScript reports whether a run's file is a k6 script (or k6 archive)
// rather than a scenario file, by its extension.
func IsScript(file string) bool {
	switch strings.ToLower(filepath.Ext(file)) {
	case ".js", ".mjs", ".cjs", ".ts", ".tar":
		return true
	}
	return false
}

// validateFile checks one file as what it is: a drill plan, a capacity
// plan or a scenario (fileKind).
func validateFile(ctx context.Context, path string) (string, error) {
	switch fileKind(path) {
	case "drill":
		d, err := scenarios.LoadDrill(path)
		if err != nil {
			return "", err
		}
		if err := checkDrillFiles(d); err != nil {
			return "", err
		}
		return fmt.Sprintf("drill plan, %d stages over %v, %d guard rules", len(d.Stages), d.Duration(), len(d.Guard.Rules)), nil
	case "plan":
		p, err := scenarios.LoadPlan(path)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("capacity plan, %d services", len(p.Services)), nil
	}
	f, err := scenarios.Load(path)
	if err != nil {
		return "", err
	}
	if f.K6Script != "" {
		if _, err := validateScript(ctx, f.K6Script); err != nil {
			return "", &scenarios.Error{File: path, Pos: f.K6Pos, Path: "k6.script", Msg: err.Error()}
		}
		return fmt.Sprintf("%d scenarios driving k6 script %s, %d thresholds", len(f.Scenarios), f.K6Script, len(f.Thresholds)), nil
	}
	if r := f.Replay; r != nil {
		if r.Rewrite != "" {
			if _, err := capture.LoadRules(r.Rewrite); err != nil {
				return "", err
			}
		}
		if _, err := os.Stat(r.File); err != nil {
			return "", &scenarios.Error{File: path, Pos: r.Pos, Path: "replay.file", Msg: err.Error()}
		}
		return fmt.Sprintf("replay of %s (%s), %d thresholds", r.File, r.Mode, len(f.Thresholds)), nil
	}
	return fmt.Sprintf("%d scenarios, %d requests, %d thresholds", len(f.Scenarios), len(f.Requests), len(f.Thresholds)), nil
}

// fileKind tells a drill plan (traffic: and stages:), a capacity plan
// (peak: or services: without scenarios:) and a scenario apart by their
// top-level keys.
func fileKind(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "scenario"
	}
	var top map[string]yaml.Node
	if yaml.Unmarshal(b, &top) != nil {
		return "scenario"
	}
	has := func(k string) bool { _, ok := top[k]; return ok }
	switch {
	case has("stages") || has("traffic"):
		return "drill"
	case (has("peak") || has("services")) && !has("scenarios"):
		return "plan"
	}
	return "scenario"
}

// checkDrillFiles checks what a drill plan refers to: the recording exists
// and its rewrite rules parse, or the scenario file parses.
func checkDrillFiles(d *scenarios.Drill) error {
	if d.Replay != "" {
		if _, err := os.Stat(d.Replay); err != nil {
			return err
		}
	}
	if d.Rewrite != "" {
		if _, err := capture.LoadRules(d.Rewrite); err != nil {
			return err
		}
	}
	if d.Scenario != "" {
		if _, err := scenarios.Load(d.Scenario, scenarios.WithTarget(d.Target)); err != nil {
			return err
		}
	}
	return nil
}

// validateScript has k6 load the script as a run would, by archiving
// it (in the k6 child, with nothing reaching the network): syntax errors,
// missing imports and invalid options come back as k6 words them.
func validateScript(ctx context.Context, path string) (string, error) {
	if strings.HasSuffix(strings.ToLower(path), ".tar") {
		if _, err := os.Stat(path); err != nil {
			return "", err
		}
		return "k6 archive", nil
	}
	dir, err := os.MkdirTemp("", "loadcap-validate-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	if err := k6.Archive(ctx, path, filepath.Join(dir, "script.tar")); err != nil {
		return "", err // names the script and carries k6's message
	}
	return "k6 script, loaded by k6", nil
}
