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
	if isPlan(path) {
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

func isPlan(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	var top map[string]yaml.Node
	if yaml.Unmarshal(b, &top) != nil {
		return false
	}
	_, peak := top["peak"]
	_, services := top["services"]
	_, scen := top["scenarios"]
	return (peak || services) && !scen
}
