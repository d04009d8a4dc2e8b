// Package fileinput reads the files a user names as input to a run
// (-d @file, -d @-, --fallback-file, --cacert) into memory, bounded: a
// device such as /dev/zero, or a pipe that never ends, would otherwise
// grow the process until the system kills it, before any request is sent.
package fileinput

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// Max is the most read from one input file: 256 MiB. Request bodies and
// fallback bodies are held whole (a retry sends the body again, a fallback
// is printed when everything else failed); a CA bundle is a few hundred KiB.
const Max = 256 << 20

// TooLargeError is an input larger than the bound it was read with.
type TooLargeError struct {
	Limit int64
}

func (e *TooLargeError) Error() string {
	size := fmt.Sprintf("%d bytes", e.Limit)
	if e.Limit >= 1<<20 && e.Limit%(1<<20) == 0 {
		size = fmt.Sprintf("%d MiB", e.Limit>>20)
	}
	return "larger than " + size + ", the most refetch reads into memory"
}

// Read reads the file at path, which may be a regular file, a FIFO (a
// shell's <(...)) or a device, up to limit bytes. A regular file is judged
// by its size before anything is read; anything else is read until it
// ends or passes limit. Errors are *os.PathError, with a *TooLargeError
// inside when the input is over the limit.
func Read(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > limit {
		return nil, &os.PathError{Op: "read", Path: path, Err: &TooLargeError{Limit: limit}}
	}
	data, err := ReadFrom(f, limit)
	var tooLarge *TooLargeError
	if errors.As(err, &tooLarge) {
		return nil, &os.PathError{Op: "read", Path: path, Err: err}
	}
	return data, err // a read error is a *os.PathError already
}

// ReadFrom reads r (standard input, an open file) to its end, up to limit
// bytes; more is a *TooLargeError, found after reading one byte past the
// limit and no more.
func ReadFrom(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, &TooLargeError{Limit: limit}
	}
	return data, nil
}
