package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// createUnnamed opens an unnamed file in dir (O_TMPFILE) to become the
// file base there: it has no name until linkUnnamed gives it one, so a
// crash leaves nothing.
func createUnnamed(dir, base string) (*os.File, error) {
	for {
		fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		// The name is only for messages and for filepath.Dir: the file
		// has none in dir. It is the file it will become, so that a
		// failed write ("file too large") names what a person knows.
		if base == "" {
			base = ".refetch-unnamed"
		}
		return os.NewFile(uintptr(fd), filepath.Join(dir, base)), nil
	}
}

// linkUnnamed gives f the name newpath: linkat through /proc/self/fd,
// which needs no privilege, else AT_EMPTY_PATH, which needs
// CAP_DAC_READ_SEARCH (a container's root without /proc has it).
func linkUnnamed(f *os.File, newpath string) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) {
		lerr = unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(int(fd)), unix.AT_FDCWD, newpath, unix.AT_SYMLINK_FOLLOW)
		if lerr != nil && !errors.Is(lerr, unix.EEXIST) {
			if err := unix.Linkat(int(fd), "", unix.AT_FDCWD, newpath, unix.AT_EMPTY_PATH); err == nil {
				lerr = nil
			}
		}
	}); err != nil {
		return err
	}
	if lerr != nil {
		return &os.LinkError{Op: "link", Old: f.Name(), New: newpath, Err: lerr}
	}
	return nil
}

// rename is rename(2) itself (os.Rename first looks at newpath, one more
// lookup, only to refuse a directory, which rename(2) refuses too).
func rename(oldpath, newpath string) error {
	for {
		err := unix.Rename(oldpath, newpath)
		if err != unix.EINTR {
			if err != nil {
				return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
			}
			return nil
		}
	}
}
