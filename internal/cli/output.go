package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// outputMode is the mode of every file loadcap writes: results are for
// others to read.
const outputMode = 0o644

// WriteAtomic writes path with write, through a temporary file in the same
// directory that is synced and renamed into place: a reader never sees
// half a file, and when write fails (or anything else does) the previous
// file at path is left as it was. The error of write is returned as it
// is; the others name path.
func WriteAtomic(path string, write func(io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	writing.Store(tmp.Name(), struct{}{})
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
		writing.Delete(tmp.Name())
	}()
	// CreateTemp makes the file private.
	if err := tmp.Chmod(outputMode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	bw := bufio.NewWriterSize(tmp, 64<<10)
	if err := write(bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// The rename is durable once the directory is; not every file system
	// can sync a directory, and the file is in place either way.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// writing holds the temporary files of the WriteAtomic calls under way.
var writing sync.Map

// RemoveTemporaries removes the temporary files of the WriteAtomic calls
// still under way, whose files are left as they were: for a process that
// exits at once (a second signal) without waiting for them.
func RemoveTemporaries() {
	writing.Range(func(name, _ any) bool {
		os.Remove(name.(string))
		return true
	})
}

// CheckOutput verifies, before any work starts, that path can be written
// by WriteAtomic: its directory exists, is a directory and takes a new
// file (one is created and removed), and path is not a directory. The
// error names path; the caller adds the flag it came from.
func CheckOutput(path string) error {
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("cannot write %s: directory %s does not exist", path, dir)
	case err != nil:
		return fmt.Errorf("cannot write %s: %w", path, err)
	case !fi.IsDir():
		return fmt.Errorf("cannot write %s: %s is not a directory", path, dir)
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("cannot write %s: it is a directory", path)
	}
	f, err := os.CreateTemp(dir, ".loadcap-check-*")
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the name is CreateTemp's, not the user's
		}
		return fmt.Errorf("cannot write %s: directory %s is not writable: %w", path, dir, err)
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}
