// Package regularfile reads files that must be regular files, without
// ever blocking on one that is not (a FIFO, a device).
package regularfile

import (
	"fmt"
	"io"
	"os"
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
