package reports

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/loadcap/loadcap/capacity"
	"github.com/loadcap/loadcap/internal/cli"
)

// MaxResultFile bounds a JSON result ReadInputs reads.
const MaxResultFile = 512 << 20

// ReadInputs reads result files into one report's inputs, sorting them
// by what they hold: the run (the first run.json), its baseline (the
// second), a find result, a plan result. Its errors carry exit codes
// (internal/cli): 104 for a file that is not a result, 2 for one too many.
func ReadInputs(paths []string) (HTMLInput, error) {
	var in HTMLInput
	for _, p := range paths {
		data, err := readLimited(p)
		if err != nil {
			return in, cli.WithCode(cli.ExitInvalid, err)
		}
		var probe struct {
			Schema string          `json:"schema"`
			MaxQPS json.RawMessage `json:"max_qps"`
			Steps  json.RawMessage `json:"steps"`
		}
		if err := json.Unmarshal(data, &probe); err != nil {
			return in, cli.WithCode(cli.ExitInvalid, fmt.Errorf("%s: not a JSON result: %v", p, err))
		}
		switch {
		case probe.Schema == Schema:
			r, err := ParseRun(p, data)
			if err != nil {
				return in, cli.WithCode(cli.ExitInvalid, err)
			}
			switch {
			case in.Run == nil:
				in.Run = r
			case in.Baseline == nil:
				in.Baseline = r
			default:
				return in, cli.WithCode(cli.ExitUsage, fmt.Errorf("%s: a third run result; give the run and at most one baseline", p))
			}
		case probe.Schema == capacity.PlanSchema:
			if in.Plan != nil {
				return in, cli.WithCode(cli.ExitUsage, fmt.Errorf("%s: a second plan result", p))
			}
			var pr capacity.PlanResult
			if err := strictJSON(data, &pr); err != nil {
				return in, cli.WithCode(cli.ExitInvalid, fmt.Errorf("%s: %v", p, err))
			}
			in.Plan = &pr
		case probe.MaxQPS != nil && probe.Steps != nil:
			if in.Find != nil {
				return in, cli.WithCode(cli.ExitUsage, fmt.Errorf("%s: a second find result", p))
			}
			var fr capacity.FindResult
			if err := strictJSON(data, &fr); err != nil {
				return in, cli.WithCode(cli.ExitInvalid, fmt.Errorf("%s: %v", p, err))
			}
			in.Find = &fr
		default:
			return in, cli.WithCode(cli.ExitInvalid, fmt.Errorf("%s: neither a run result (%s), a find result (max_qps, steps) nor a plan result (%s)", p, Schema, capacity.PlanSchema))
		}
	}
	return in, nil
}

func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	return dec.Decode(v)
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxResultFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if len(data) > MaxResultFile {
		return nil, fmt.Errorf("%s: larger than %d MiB", path, MaxResultFile>>20)
	}
	return data, nil
}
