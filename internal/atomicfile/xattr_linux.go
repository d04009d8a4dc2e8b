package atomicfile

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// KeepAttrs gives f the extended attributes of the file at path, the file
// f will replace: its POSIX ACL (system.posix_acl_access), its user.*
// attributes and, where the process may set it, its security label. A
// rename makes a new file, which would have none of them, and an ACL can
// deny access that the mode bits alone would give: without it, a file
// whose owning group was refused would become readable by that group.
// Call it after Chmod: setting an ACL sets the mode's group bits (its
// mask). A file system without extended attributes has none to keep. An
// ACL that cannot be set is an error (the file would be wider open than
// the one it replaces); other attributes that cannot be set are skipped.
func (f *File) KeepAttrs(path string) error {
	return copyAttrs(func(dst []byte) (int, error) { return unix.Listxattr(path, dst) },
		func(name string, dst []byte) (int, error) { return unix.Getxattr(path, name, dst) }, int(f.Fd()))
}

// copyAttrs copies the attributes listed by list and read by get to the
// open file fd.
func copyAttrs(list func([]byte) (int, error), get func(string, []byte) (int, error), fd int) error {
	names, err := readAll(list)
	if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.ENOENT) {
		return nil // no attributes here, or no file to take them from
	}
	if err != nil {
		return fmt.Errorf("reading the extended attributes of the file replaced: %v", err)
	}
	for _, name := range strings.Split(strings.TrimRight(string(names), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		value, err := readAll(func(dst []byte) (int, error) { return get(name, dst) })
		if err == nil {
			err = unix.Fsetxattr(fd, name, value, 0)
		}
		if err != nil && name == "system.posix_acl_access" {
			return fmt.Errorf("keeping the file's ACL: %v", err)
		}
		// Others (trusted.*, a security label, without the privilege)
		// are skipped.
	}
	return nil
}

// readAll calls read with a buffer large enough for its answer: a first
// call with none asks for the size (which may grow before the second).
func readAll(read func([]byte) (int, error)) ([]byte, error) {
	for range 4 {
		n, err := read(nil)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, nil
		}
		buf := make([]byte, n)
		n, err = read(buf)
		if errors.Is(err, unix.ERANGE) {
			continue // grew meanwhile
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
	return nil, unix.ERANGE
}

// copyAttrsFd copies the attributes of the open file src to dst (an
// unnamed temporary file's to its named copy).
func copyAttrsFd(src, dst int) error {
	return copyAttrs(func(b []byte) (int, error) { return unix.Flistxattr(src, b) },
		func(name string, b []byte) (int, error) { return unix.Fgetxattr(src, name, b) }, dst)
}
