//go:build unix

package fetch

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ownDescriptor reports whether path names one of this process's own file
// descriptors (/dev/stdout, /dev/fd/N, /proc/self/fd/N…) and which one.
// Such a path is written through the descriptor, as stdout is: opening it
// anew would start a regular file at offset 0 (losing >> appends) and
// fails for a socket; replacing it would replace the file behind it.
func ownDescriptor(path string) (int, bool) {
	if !filepath.IsAbs(path) {
		return 0, false
	}
	p := filepath.Clean(path)
	switch p {
	case "/dev/stdin":
		return 0, true
	case "/dev/stdout":
		return 1, true
	case "/dev/stderr":
		return 2, true
	}
	dir, base := filepath.Split(p)
	n, err := strconv.Atoi(base)
	if err != nil || n < 0 || strconv.Itoa(n) != base {
		return 0, false
	}
	switch dir {
	case "/dev/fd/", "/proc/self/fd/", "/proc/thread-self/fd/", "/proc/" + strconv.Itoa(os.Getpid()) + "/fd/":
		return n, true
	}
	return 0, false
}

// kernelFollows reports whether the symlinks in dir are ones only the
// kernel can follow (Linux's /proc/PID/fd/N point at "pipe:[…]" and the
// like), so they are opened rather than resolved.
func kernelFollows(dir string) bool {
	return runtime.GOOS == "linux" && (dir == "/proc" || strings.HasPrefix(dir, "/proc/"))
}

// writable checks that path may be opened for writing without opening it:
// opening a FIFO would wait for a reader (or, closed again, end a reader's
// stream), opening some devices has effects, and opening a file wakes
// inotify watchers.
func writable(path string) error {
	const wOK = 2 // W_OK
	return syscall.Access(path, wOK)
}

// isNullDevice reports whether st is a character device with the null
// device's numbers: the real /dev/null or a node made with mknod.
func isNullDevice(st fs.FileInfo) bool {
	if st.Mode()&fs.ModeCharDevice == 0 {
		return false
	}
	null, err := os.Stat(os.DevNull)
	if err != nil || null.Mode()&fs.ModeCharDevice == 0 {
		return false
	}
	a, ok1 := st.Sys().(*syscall.Stat_t)
	b, ok2 := null.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && a.Rdev == b.Rdev
}

// openDescriptor returns a file for the process's descriptor fd, and
// whether it is a duplicate the caller must close. fd 1 and 2 are
// os.Stdout and os.Stderr themselves, so a closed pipe behaves as it does
// without -o.
func openDescriptor(fd int) (*os.File, bool, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		if errors.Is(err, syscall.EBADF) {
			return nil, false, fmt.Errorf("file descriptor %d is not open", fd)
		}
		return nil, false, fmt.Errorf("file descriptor %d: %v", fd, err)
	}
	// A descriptor the caller gave survived exec, so it cannot be
	// close-on-exec: one that is was opened by this process (the Go
	// runtime's poller, a file of its own), and writing the body there
	// would lose it, or worse.
	if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && flags&unix.FD_CLOEXEC != 0 {
		return nil, false, fmt.Errorf("file descriptor %d is not open (give the run one with %d>FILE)", fd, fd)
	}
	if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); err == nil && flags&unix.O_ACCMODE == unix.O_RDONLY {
		return nil, false, fmt.Errorf("file descriptor %d is open for reading only", fd)
	}
	switch fd {
	case 1:
		return os.Stdout, false, nil
	case 2:
		return os.Stderr, false, nil
	}
	// A duplicate, so no finalizer of ours ever closes the original.
	syscall.ForkLock.RLock()
	nfd, err := syscall.Dup(fd)
	if err == nil {
		syscall.CloseOnExec(nfd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, false, fmt.Errorf("file descriptor %d: %v", fd, err)
	}
	return os.NewFile(uintptr(nfd), "/dev/fd/"+strconv.Itoa(fd)), true, nil
}

// releaseFIFOWriter opens the read end of the FIFO at path without
// blocking, which lets a writer blocked in open(2) return; release closes
// it again.
func releaseFIFOWriter(path string) (release func(), ok bool) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, false
	}
	return func() { syscall.Close(fd) }, true
}

// isQuota reports a write refused by a disk quota.
func isQuota(err error) bool { return errors.Is(err, syscall.EDQUOT) }
