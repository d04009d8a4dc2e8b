//go:build unix

package atomicfile

import (
	"io/fs"
	"os"
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
