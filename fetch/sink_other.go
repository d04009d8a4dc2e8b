//go:build !unix

package fetch

import (
	"errors"
	"io/fs"
	"os"
)

// ownDescriptor reports false: outside Unix no path names a descriptor.
func ownDescriptor(path string) (int, bool) { return 0, false }

// kernelFollows reports false: there is no /proc.
func kernelFollows(dir string) bool { return false }

// writable checks that path may be opened for writing by opening it
// (without creating or truncating it) and closing it again: there is no
// access(2).
func writable(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return unwrapPathError(err)
	}
	return f.Close()
}

// isNullDevice reports whether st is the null device (NUL).
func isNullDevice(st fs.FileInfo) bool {
	null, err := os.Stat(os.DevNull)
	return err == nil && os.SameFile(st, null)
}

// openDescriptor is never reached: ownDescriptor reports false.
func openDescriptor(fd int) (*os.File, bool, error) {
	return nil, false, errors.New("not supported on this system")
}

// releaseFIFOWriter reports false: no blocked open can be released.
func releaseFIFOWriter(path string) (release func(), ok bool) { return nil, false }

// isQuota: no quota errno to tell apart here.
func isQuota(error) bool { return false }
