package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/loadcap/loadcap/scenarios"
	"github.com/loadcap/loadcap/shadow/capture"
)

func newValidateCmd(st *state) *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check scenario and capacity plan files: every problem, each with file:line:col (exit 104 if any)",
		Args:  args(cobra.MinimumNArgs(1)),
		RunE: func(_ *cobra.Command, files []string) error {
			bad := 0
			for _, path := range files {
				summary, err := validateFile(path)
				if err != nil {
					bad++
					fmt.Fprintln(st.stderr, err)
					continue
				}
				fmt.Fprintf(st.stdout, "%s: ok (%s)\n", path, summary)
			}
			if bad > 0 {
				return withCode(exitInvalid, fmt.Errorf("%d of %d files invalid", bad, len(files)))
			}
			return nil
		},
	}
}

// validateFile checks one file as what it is: a capacity plan when its
// top level has peak: or services:, else a scenario.
func validateFile(path string) (string, error) {
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
