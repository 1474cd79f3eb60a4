package scenarios

import (
	"fmt"
	"path/filepath"
)

// Confined makes Parse refuse every file the scenario names (data: files,
// a gRPC call's proto: and import_paths:, the .proto files those import,
// a replay's file: and rewrite:, k6.script) that does not lie in the
// scenario file's directory or below, before anything is opened: an agent
// parses a coordinator's plan this way, so that the plan reads only the
// files shipped with it. A path outside gets the same error whether it
// exists or not, and nothing of its content. The check is lexical: the
// directory must hold no symbolic links (an agent writes the plan's files
// into a fresh one).
func Confined() Option { return func(p *parser) { p.confined = true } }

// outside reports whether a confined parse must refuse path (absolute, or
// joined to the file's directory): it leaves the file's directory.
func (p *parser) outside(path string) bool {
	if !p.confined {
		return false
	}
	return !insideDir(p.dir, path)
}

// insideDir reports whether path lies in dir or below, lexically.
func insideDir(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && filepath.IsLocal(rel)
}

// outsideMsg is the error for a file a confined parse refuses; written as
// the file has it, so it says nothing the file does not.
func outsideMsg(written string) string {
	return fmt.Sprintf("%s is outside the scenario's directory: only files beside the scenario are read (an agent reads only the files shipped with its plan)", written)
}
