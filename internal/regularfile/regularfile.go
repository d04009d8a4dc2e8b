// Package regularfile reads small files that must be regular files,
// without ever blocking on one that is not (a FIFO, a device), and
// replaces them atomically.
package regularfile

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// Read reads the file at path, which must be a regular file. A
// state file or stale entry that became a FIFO (or a device) would
// otherwise block the read for ever, holding the key's lock; opening
// without waiting (O_NONBLOCK: a FIFO's open does not wait for a writer)
// and checking what was opened makes it an unreadable file instead, which
// the callers report and replace or skip.
func Read(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, &os.PathError{Op: "read", Path: path, Err: fmt.Errorf("not a regular file (%s)", st.Mode().Type())}
	}
	return io.ReadAll(f)
}

// WriteAtomic replaces path with data through a temporary file (mode
// 0600) in the same directory and a rename, so readers see the old or the
// new content, never a mix. It does not fsync.
func WriteAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), path)
	}
	if werr != nil {
		os.Remove(tmp.Name())
	}
	return werr
}
