//go:build unix

package atomicfile

import (
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// processGone reports whether no process pid exists (kill(pid, 0) finds
// none); a process of another user (EPERM) exists.
func processGone(pid int) bool {
	return pid > 0 && syscall.Kill(pid, 0) == syscall.ESRCH
}

// ownedByMe reports whether this process's user owns the file: another
// user's leftovers in a shared directory are theirs to clean.
func ownedByMe(st fs.FileInfo) bool {
	sys, ok := st.Sys().(*syscall.Stat_t)
	return ok && int(sys.Uid) == os.Getuid()
}

// umask is the process's file mode creation mask: from /proc/self/status
// where Linux has it (reading it changes nothing), else by setting it and
// setting it back, which a file made by another thread in between would
// see: NewFileMode asks once, before refetch makes files.
func umask() fs.FileMode {
	if data, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "Umask:"); ok {
				if m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
					return fs.FileMode(m) & fs.ModePerm
				}
			}
		}
	}
	old := syscall.Umask(0o022)
	syscall.Umask(old)
	return fs.FileMode(old) & fs.ModePerm
}
