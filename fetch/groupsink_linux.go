package fetch

import (
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// syncFiles makes files durable with one syncfs(2) per file system they
// are on (a batch's files usually share one directory, so one file is
// asked for its file system per directory), and returns each file's error.
// syncfs reports write-back errors since Linux 5.8.
func syncFiles(files []*os.File) []error {
	errs := make([]error, len(files))
	type fsGroup struct {
		fd      *os.File
		members []int
	}
	var groups []*fsGroup
	byDev := map[uint64]*fsGroup{}
	byDir := map[string]*fsGroup{}
	for i, f := range files {
		dir := filepath.Dir(f.Name())
		g := byDir[dir]
		if g == nil {
			var st unix.Stat_t
			if err := fstat(f, &st); err != nil {
				errs[i] = err
				continue
			}
			if g = byDev[uint64(st.Dev)]; g == nil {
				g = &fsGroup{fd: f}
				byDev[uint64(st.Dev)] = g
				groups = append(groups, g)
			}
			byDir[dir] = g
		}
		g.members = append(g.members, i)
	}
	for _, g := range groups {
		if syncfs(g.fd) != nil {
			// No syncfs, or a write-back error somewhere on the file
			// system (perhaps in another program's file): fsync each file,
			// which says exactly which of ours failed.
			fs := make([]*os.File, len(g.members))
			for k, i := range g.members {
				fs[k] = files[i]
			}
			for k, err := range syncParallel(fs) {
				errs[g.members[k]] = err
			}
		}
	}
	return errs
}

func fstat(f *os.File, st *unix.Stat_t) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Fstat(int(fd), st) }); err != nil {
		return err
	}
	return serr
}

func syncfs(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = unix.Syncfs(int(fd))
			if serr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return serr
}
