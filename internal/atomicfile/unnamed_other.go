//go:build !linux

package atomicfile

import (
	"errors"
	"os"
)

var errNoUnnamed = errors.New("no unnamed files here")

// createUnnamed: only Linux has O_TMPFILE; the named file is made instead.
func createUnnamed(string, string) (*os.File, error) { return nil, errNoUnnamed }

func linkUnnamed(*os.File, string) error { return errNoUnnamed }

func rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }
